"""Bearer tokens resolved by the chat service, for the dispatcher."""

from __future__ import annotations

from rpcchat.domain.service import ChatService, Session
from rpcchat.errors import Unauthorized
from rpcchat.jsonrpc.context import CallContext, Principal


class ServiceAuthenticator:
    """Adapts `ChatService.authenticate` (an in-memory lookup) to the dispatcher."""

    def __init__(self, service: ChatService) -> None:
        self.service = service

    async def authenticate(self, token: str) -> Principal:
        session = self.service.authenticate(token)
        return Principal(session.user, str(session.session_id))


def session_of(service: ChatService, ctx: CallContext) -> Session:
    """The caller's session (the dispatcher has already checked the token)."""
    if ctx.token is None:
        raise Unauthorized("missing token")
    return service.authenticate(ctx.token)

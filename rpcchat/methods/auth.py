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
        return Principal(session.user, str(session.session_id), session)


def session_of(service: ChatService, ctx: CallContext) -> Session:
    """The caller's session, as the dispatcher resolved it; checked again (by id, cheaply)
    because an earlier call of the same batch may have revoked it with `disconnect`."""
    principal = ctx.principal
    if principal is None or not isinstance(principal.handle, Session):
        raise Unauthorized("missing token")
    return service.live_session(principal.handle)

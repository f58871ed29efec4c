"""connect, disconnect, status."""

from __future__ import annotations

from typing import Annotated, cast

from rpcchat.config import ServerConfig
from rpcchat.domain.service import ChatService
from rpcchat.errors import InvalidParams, Unauthorized
from rpcchat.jsonrpc import Auth, CallContext, Doc, Length, Range, rpc_method
from rpcchat.methods.auth import session_of
from rpcchat.wire_types import ConnectResult, OkResult, StatusResult


class AccountMethods:
    def __init__(self, service: ChatService, config: ServerConfig) -> None:
        self.service = service
        self.max_history = max(200, config.history)

    @rpc_method("connect", auth=Auth.NONE, errors=(Unauthorized,),
                summary="Log in (creating the account on first use) and get a new token")
    async def connect(
        self, ctx: CallContext,
        name: Annotated[str, Length(1, 32), Doc("User name; unique regardless of case")],
        password: Annotated[str, Length(1, 1024)],
        history: Annotated[int, Range(ge=0, le="max_history"),
                           Doc("How many of general's newest messages to return")] | None = None,
    ) -> ConnectResult:
        result = cast(ConnectResult, await self.service.connect(name, password, history))
        ctx.acting_as = result["user"]  # the stored spelling, checked: safe to log
        return result

    @rpc_method("disconnect", summary="Revoke this client's token")
    async def disconnect(self, ctx: CallContext) -> OkResult:
        return cast(OkResult, await self.service.disconnect(session_of(self.service, ctx)))

    @rpc_method("status", auth=Auth.OPTIONAL, errors=(InvalidParams,),
                summary="Server figures; with a token also the caller's own state")
    async def status(self, ctx: CallContext) -> StatusResult:
        session = session_of(self.service, ctx) if ctx.principal is not None else None
        return cast(StatusResult, await self.service.status(session))

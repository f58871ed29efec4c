"""report."""

from __future__ import annotations

from typing import Annotated, TypedDict, cast

from rpcchat.domain.moderation import REASON_MAX
from rpcchat.domain.service import ChatService
from rpcchat.errors import NotFound
from rpcchat.jsonrpc import CallContext, Doc, Length, rpc_method
from rpcchat.methods.auth import session_of


class ReportResult(TypedDict):
    user: str
    warnings: Annotated[int, Doc("Reports counted against the user since its last ban")]
    banned_until: float | None


class ModerationMethods:
    def __init__(self, service: ChatService) -> None:
        self.service = service

    @rpc_method("report", errors=(NotFound,),
                summary="Report a user; enough distinct reporters ban it for a while",
                description="Each reporter counts once per user (a repeat changes nothing); "
                            "reporting yourself is -32602. The reported user alone gets "
                            "user.warned / user.banned events; reporters stay anonymous.")
    async def report(
        self, ctx: CallContext,
        user: Annotated[str, Length(1, 32), Doc("The user to report")],
        reason: Annotated[str, Length(0, REASON_MAX)] | None = None,
    ) -> ReportResult:
        return cast(ReportResult, await self.service.rules.report(
            session_of(self.service, ctx), user, reason))

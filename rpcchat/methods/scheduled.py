"""scheduled.list, scheduled.cancel (scheduling itself is `send` with `at` or `delay`)."""

from __future__ import annotations

from typing import Annotated, TypedDict, cast

from rpcchat import wire_types
from rpcchat.domain.service import ChatService
from rpcchat.errors import Conflict, NotFound
from rpcchat.jsonrpc import CallContext, Doc, Length, rpc_method
from rpcchat.methods.auth import session_of


class Scheduled(wire_types.Scheduled):
    reason: Annotated[str | None, Doc(
        "Why the server cancelled it at delivery: banned, rate_limited, not_member, "
        "chat_gone; null otherwise")]


class ScheduledListResult(TypedDict):
    scheduled: list[Scheduled]


class ScheduledResult(TypedDict):
    scheduled: Scheduled


class ScheduledMethods:
    def __init__(self, service: ChatService) -> None:
        self.service = service

    @rpc_method("scheduled.list", summary="The caller's pending scheduled messages, soonest first")
    async def list_pending(self, ctx: CallContext) -> ScheduledListResult:
        return cast(ScheduledListResult, await self.service.rules.scheduled_list(
            session_of(self.service, ctx)))

    @rpc_method("scheduled.cancel", errors=(NotFound, Conflict),
                summary="Cancel one of the caller's pending scheduled messages",
                description="Someone else's id is -32003 like an unknown one. Once sent or "
                            "cancelled: -32004 with data {status, message_id}.")
    async def cancel(
        self, ctx: CallContext,
        id: Annotated[str, Length(1, 64), Doc("The Scheduled's id")],
    ) -> ScheduledResult:
        return cast(ScheduledResult, await self.service.rules.scheduled_cancel(
            session_of(self.service, ctx), id))

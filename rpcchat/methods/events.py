"""poll: the blocking long-poll."""

from __future__ import annotations

from typing import Annotated, cast

from rpcchat.domain.service import ChatService
from rpcchat.errors import CursorAhead
from rpcchat.jsonrpc import CallContext, Doc, Range, rpc_method
from rpcchat.methods.auth import session_of
from rpcchat.wire_types import PollResult


class EventMethods:
    def __init__(self, service: ChatService) -> None:
        self.service = service

    @rpc_method("poll", errors=(CursorAhead,),
                summary="Events after `since` (acknowledging it), waiting up to `timeout` s")
    async def poll(
        self, ctx: CallContext,
        since: Annotated[int, Range(ge=0), Doc("Default: the user's read cursor")] | None = None,
        timeout: Annotated[float, Range(ge=0, le=60)] = 30,
        limit: Annotated[int, Range(ge=1, le=500)] = 100,
    ) -> PollResult:
        session = session_of(self.service, ctx)
        return cast(PollResult, await self.service.poll(
            session, since=since, timeout=timeout, limit=limit, wait=not ctx.in_batch))

"""send (now or scheduled), comment, history."""

from __future__ import annotations

from typing import Annotated, NotRequired, TypedDict, cast

from rpcchat.config import ServerConfig
from rpcchat.domain.service import ChatService
from rpcchat.errors import Banned, Forbidden, NotFound, RateLimited, TooLarge
from rpcchat.jsonrpc import CallContext, Doc, Length, Range, rpc_method
from rpcchat.methods.auth import session_of
from rpcchat.methods.scheduled import Scheduled
from rpcchat.wire_types import HistoryResult, Message, MessageResult

ClientMsgId = Annotated[str, Length(1, 64),
                        Doc("Makes a retry return the first result instead of a second message")]


class SendResult(TypedDict):
    message: NotRequired[Annotated[Message, Doc("The message (sent now)")]]
    scheduled: NotRequired[Annotated[Scheduled, Doc("With at or delay: the pending message")]]


class MessageMethods:
    def __init__(self, service: ChatService, config: ServerConfig) -> None:
        self.service = service
        self.max_text = config.max_text

    @rpc_method("send", errors=(Forbidden, NotFound, RateLimited, Banned, TooLarge),
                summary="Send a message to general, to a user (to) or to a chat (chat)",
                description="With at or delay the message is scheduled instead: the result "
                            "is {scheduled} and it is delivered then as a normal message.")
    async def send(
        self, ctx: CallContext,
        text: Annotated[str, Length(1, "max_text", too_large="text")],
        to: Annotated[str, Doc("A user: opens or reuses the 1-to-1 chat")] | None = None,
        chat: Annotated[str, Doc("A chat id; general when neither to nor chat")] | None = None,
        at: Annotated[float, Doc("Deliver at this time (Unix seconds, in the future)")]
        | None = None,
        delay: Annotated[float, Range(gt=0), Doc("Deliver after this many seconds")]
        | None = None,
        client_msg_id: ClientMsgId | None = None,
    ) -> SendResult:
        session = session_of(self.service, ctx)
        return cast(SendResult, await self.service.send(
            session, text, to=to, chat=chat, client_msg_id=client_msg_id, at=at, delay=delay))

    @rpc_method("comment", errors=(Forbidden, NotFound, RateLimited, Banned, TooLarge),
                summary="Comment on a message: a message in the same chat whose parent it is",
                description="Comments on comments are allowed (the parent is that comment). "
                            "A comment expires with its parent at the latest.")
    async def comment(
        self, ctx: CallContext,
        message_id: Annotated[int, Range(ge=1), Doc("The message commented on")],
        text: Annotated[str, Length(1, "max_text", too_large="text")],
        client_msg_id: ClientMsgId | None = None,
    ) -> MessageResult:
        session = session_of(self.service, ctx)
        return cast(MessageResult, await self.service.rules.comment(
            session, message_id, text, client_msg_id))

    @rpc_method("history", errors=(Forbidden, NotFound),
                summary="Messages of a chat, oldest first, before a message id")
    async def history(
        self, ctx: CallContext,
        chat: str = "general",
        before: Annotated[int, Range(ge=1), Doc("Only messages with a smaller id")] | None = None,
        limit: Annotated[int, Range(ge=1, le=200)] = 50,
    ) -> HistoryResult:
        session = session_of(self.service, ctx)
        return cast(HistoryResult, await self.service.history(
            session, chat=chat, before=before, limit=limit))

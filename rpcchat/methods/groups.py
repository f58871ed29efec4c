"""chat.create, chat.invite, chat.link, chat.join, chat.requests, chat.approve,
chat.decline, chat.leave."""

from __future__ import annotations

from typing import Annotated, cast

from rpcchat.domain.service import ChatService
from rpcchat.errors import Conflict, Forbidden, NotFound
from rpcchat.jsonrpc import CallContext, Doc, Length, rpc_method
from rpcchat.methods.auth import session_of
from rpcchat.wire_types import ChatResult, JoinResult, LinkResult, OkResult, RequestsResult

ChatId = Annotated[str, Length(1, 200), Doc("A group chat's id, as chat.create returned it")]
UserName = Annotated[str, Length(1, 32), Doc("A user name")]


class GroupMethods:
    def __init__(self, service: ChatService) -> None:
        self.service = service

    @rpc_method("chat.create", errors=(NotFound,),
                summary="Create a group chat owned by the caller, with initial members")
    async def create(
        self, ctx: CallContext,
        name: Annotated[str, Length(1, 100), Doc("The chat's name")],
        members: Annotated[list[UserName], Length(0, 1000),
                           Doc("Users added at once; an unknown one fails the call")] | None
        = None,
    ) -> ChatResult:
        return cast(ChatResult, await self.service.groups.create(
            session_of(self.service, ctx), name, members))

    @rpc_method("chat.invite", errors=(Forbidden, NotFound, Conflict),
                summary="Add a user to a group chat at once (owner only)")
    async def invite(self, ctx: CallContext, chat: ChatId, user: UserName) -> ChatResult:
        return cast(ChatResult, await self.service.groups.invite(
            session_of(self.service, ctx), chat, user))

    @rpc_method("chat.link", errors=(Forbidden, NotFound),
                summary="The chat's join link and its token (owner only)")
    async def link(
        self, ctx: CallContext, chat: ChatId,
        reset: Annotated[bool, Doc("Replace the link: the old one stops working")] = False,
    ) -> LinkResult:
        return cast(LinkResult, await self.service.groups.link(
            session_of(self.service, ctx), chat, reset))

    @rpc_method("chat.join", errors=(NotFound,),
                summary="Ask to join the chat of a link; the owner approves or declines")
    async def join(
        self, ctx: CallContext,
        link: Annotated[str, Length(1, 300), Doc("The join link, or just its token")],
    ) -> JoinResult:
        return cast(JoinResult, await self.service.groups.join(
            session_of(self.service, ctx), link))

    @rpc_method("chat.requests", errors=(Forbidden, NotFound),
                summary="Pending join requests, oldest first (owner only)")
    async def requests(self, ctx: CallContext, chat: ChatId) -> RequestsResult:
        return cast(RequestsResult, await self.service.groups.requests(
            session_of(self.service, ctx), chat))

    @rpc_method("chat.approve", errors=(Forbidden, NotFound),
                summary="Let a requester in (owner only)")
    async def approve(self, ctx: CallContext, chat: ChatId, user: UserName) -> ChatResult:
        return cast(ChatResult, await self.service.groups.approve(
            session_of(self.service, ctx), chat, user))

    @rpc_method("chat.decline", errors=(Forbidden, NotFound),
                summary="Turn a requester away (owner only); it may ask again")
    async def decline(self, ctx: CallContext, chat: ChatId, user: UserName) -> OkResult:
        return cast(OkResult, await self.service.groups.decline(
            session_of(self.service, ctx), chat, user))

    @rpc_method("chat.leave", errors=(Forbidden, NotFound),
                summary="Leave a group chat (an owner hands it to the oldest member)")
    async def leave(self, ctx: CallContext, chat: ChatId) -> OkResult:
        return cast(OkResult, await self.service.groups.leave(
            session_of(self.service, ctx), chat))

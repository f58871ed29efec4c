"""Group chats: create, invite, join links with owner approval, leave.

Rules (the contract's, plus the decisions it leaves open):
- The creator owns the chat; initial members join at once. Every chat has one join link,
  made with the chat (its token has 192 random bits); `chat.link` hands it to the owner.
- `chat.join` with the link (or its bare token) files a request the owner approves or
  declines. Until then the requester is no member and sees nothing of the chat. Joining
  again while pending is a no-op; a member joining gets status "member".
- Everything in a chat needs membership (-32002 otherwise); owner-only actions need the
  owner (-32002). An unknown chat is -32003.
- Leaving: general and direct chats cannot be left (-32002). An owner who leaves hands the
  chat to the oldest remaining member (earliest join, then oldest account), announced with
  a `chat.owner_changed` event. When the last member leaves, the chat is closed: its link
  stops working and pending requests are declined.

Membership periods (join seq, leave seq) decide what a user sees, exactly as for every
other chat: events from its join on, none after it left (the leave event included).
"""

from __future__ import annotations

import logging
import secrets
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from rpcchat.domain.ids import opaque_id
from rpcchat.domain import validation
from rpcchat.domain.chatcore import ChatCore
from rpcchat.domain.group_file_records import (
    DropChatLink,
    EndJoinRequest,
    GroupFileState,
    NewChatLink,
    NewJoinRequest,
    SetChatOwner,
)
from rpcchat.domain.records import (
    EVENT_CHAT_JOINED,
    KIND_GROUP,
    Change,
    EventRecord,
    JoinChat,
    LeaveChat,
    NewChat,
    NewEvent,
    Wire,
)
from rpcchat.domain.state import ChatState, UserState
from rpcchat.errors import Conflict, Forbidden, InvalidParams, NotFound

if TYPE_CHECKING:
    from rpcchat.domain.service import Actor

logger = logging.getLogger(__name__)

EVENT_CHAT_LEFT = "chat.left"
EVENT_JOIN_REQUEST = "chat.join_request"
EVENT_JOIN_DECLINED = "chat.join_declined"
EVENT_OWNER_CHANGED = "chat.owner_changed"

GROUP_ID_PREFIX = "g:"
LINK_PREFIX = "rpcchat:join/"
LINK_TOKEN_BYTES = 24  # 192 bits
GROUP_ID_BYTES = 12
GROUP_NAME_MAX = 100
LINK_MAX = 300
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def group_name(value: object) -> str:
    """A chat name: 1-100 characters of text without control characters, trimmed."""
    name = unicodedata.normalize("NFC", validation.require_str(value, "name")).strip()
    if not 1 <= len(name) <= GROUP_NAME_MAX:
        raise InvalidParams("name", f"must be 1 to {GROUP_NAME_MAX} characters")
    if any(unicodedata.category(char) == "Cc" for char in name):
        raise InvalidParams("name", "must not contain control characters")
    return name


def link_token(value: object) -> str:
    """The token of a join link: accepts `rpcchat:join/<token>`, any URL or path ending in
    `/join/<token>` (or `/<token>`), or the bare token."""
    text = validation.require_str(value, "link").strip()
    if not 1 <= len(text) <= LINK_MAX:
        raise InvalidParams("link", f"must be 1 to {LINK_MAX} characters")
    token = text.rstrip("/").rsplit("/", 1)[-1]
    if not token or not set(token) <= _TOKEN_CHARS:
        raise InvalidParams("link", "is not a join link")
    return token


def join_link(token: str) -> str:
    return f"{LINK_PREFIX}{token}"


@dataclass(slots=True)
class _Undo:
    """In-memory steps to take back when a write fails."""

    steps: list[Callable[[], object]] = field(default_factory=list)

    def add(self, step: Callable[[], object]) -> None:
        self.steps.append(step)

    def __call__(self) -> None:
        for step in reversed(self.steps):
            step()


class GroupChats:
    """The group chat methods. Results are shaped like the contract's;
    the JSON-RPC layer adds server_time."""

    def __init__(self, core: ChatCore) -> None:
        self._core = core
        self._link_of_chat: dict[str, str] = {}
        self._chat_of_link: dict[str, str] = {}
        # chat id -> requester id -> when it asked; insertion order is request order.
        self._requests: dict[str, dict[int, float]] = {}

    def load(self, state: GroupFileState) -> None:
        for link in state.links:
            self._remember_link(link.chat_id, link.token)
        for request in state.requests:
            self._requests.setdefault(request.chat_id, {})[request.user_id] = request.ts
        logger.info("group chats loaded: %d links, %d pending join requests",
                    len(self._link_of_chat), sum(map(len, self._requests.values())))

    def _remember_link(self, chat_id: str, token: str) -> None:
        self._link_of_chat[chat_id] = token
        self._chat_of_link[token] = chat_id

    def _forget_link(self, chat_id: str) -> str | None:
        token = self._link_of_chat.pop(chat_id, None)
        if token is not None:
            self._chat_of_link.pop(token, None)
        return token

    def _result(self, **fields: object) -> Wire:
        return dict(fields)

    # --- create and invite -------------------------------------------------------------

    async def create(self, actor: Actor, name: object, members: object = None) -> Wire:
        """A new group owned by the caller, with `members` in it at once. Result: {chat}."""
        core = self._core
        core.ensure_running()
        me = core.actor(actor)
        title = group_name(name)
        invited = [user for user in self._users_named(members) if user is not me]
        chat_id = self._new_chat_id()
        token = opaque_id(LINK_TOKEN_BYTES)
        now = core.clock.time()
        chat = ChatState(chat_id, KIND_GROUP, title, me.user_id, now)
        everyone = [me, *invited]
        first = core.next_seq()
        seqs = [first, *(core.next_seq() for _ in invited)]
        events = [self._event(seq, EVENT_CHAT_JOINED, now, chat_id, member.name, me)
                  for seq, member in zip(seqs, everyone)]
        # Everyone joins at the first event, so each sees every member's chat.joined.
        core.chats[chat_id] = chat
        for member in everyone:
            member.memberships[chat_id] = [(first, None)]
            chat.members[member.user_id] = None
        self._remember_link(chat_id, token)

        def forget() -> None:
            core.chats.pop(chat_id, None)
            for member in everyone:
                member.memberships.pop(chat_id, None)
            self._forget_link(chat_id)

        changes: list[Change] = [
            NewChat(chat_id, KIND_GROUP, title, me.user_id, now),
            *(JoinChat(chat_id, member.user_id, first) for member in everyone),
            NewChatLink(chat_id, token, now),
            *(NewEvent(event) for event in events),
        ]
        await self._commit(changes, events, forget, "creating a group chat")
        logger.info("group created: chat=%s owner=%s members=%d", chat_id, me.name,
                    len(everyone))
        return self._result(chat=core.chat_wire(chat, me))

    async def invite(self, actor: Actor, chat: object, user: object) -> Wire:
        """The owner adds `user` at once. Result: {chat}."""
        core = self._core
        me, group = self._owner_and_chat(actor, chat)
        other = self._user_named(user, "user")
        if other.is_member(group.chat_id):
            raise Conflict(f"{other.name} is already a member of {group.chat_id}")
        await self._add_member(group, other, me, "inviting to a group chat")
        logger.info("group invite: chat=%s user=%s by=%s", group.chat_id, other.name, me.name)
        return self._result(chat=core.chat_wire(group, me))

    # --- links and requests ------------------------------------------------------------

    async def link(self, actor: Actor, chat: object, reset: bool = False) -> Wire:
        """The chat's join link (owner only). Result: {link, token}. With `reset` the link
        is replaced by a new one and the old one stops working (a leaked link)."""
        me, group = self._owner_and_chat(actor, chat)
        token = self._link_of_chat.get(group.chat_id)
        if token is None or reset:
            # Only chats created before links existed lack one.
            token = await self._new_link(group)
        return self._result(link=join_link(token), token=token)

    async def _new_link(self, group: ChatState) -> str:
        token = opaque_id(LINK_TOKEN_BYTES)
        old = self._forget_link(group.chat_id)
        self._remember_link(group.chat_id, token)
        undo = _Undo()  # steps run last first: drop the new link, then restore the old
        if old is not None:
            undo.add(partial(self._remember_link, group.chat_id, old))
        undo.add(partial(self._forget_link, group.chat_id))
        await self._commit([DropChatLink(group.chat_id),
                            NewChatLink(group.chat_id, token, self._core.clock.time())], [],
                           undo, "creating a join link")
        logger.info("chat.link: chat=%s link %s", group.chat_id,
                    "replaced" if old is not None else "created")
        return token

    async def join(self, actor: Actor, link: object) -> Wire:
        """Ask to join the chat of a link. Result: {status: pending|member, chat}: a member gets
        the whole Chat object; a requester only {id, name}, as it sees nothing else yet."""
        core = self._core
        core.ensure_running()
        me = core.actor(actor)
        chat_id = self._chat_of_link.get(link_token(link))
        group = core.chats.get(chat_id) if chat_id is not None else None
        if group is None or group.owner_id is None:
            raise NotFound("no such join link")
        summary = {"id": group.chat_id, "name": group.name}
        if me.is_member(group.chat_id):
            return self._result(status="member", chat=core.chat_wire(group, me))
        pending = self._requests.setdefault(group.chat_id, {})
        if me.user_id in pending:
            return self._result(status="pending", chat=summary)
        now = core.clock.time()
        event = EventRecord(core.next_seq(), EVENT_JOIN_REQUEST, now,
                            {"chat": group.chat_id, "user": me.name},
                            target_id=group.owner_id, actor_id=me.user_id)
        pending[me.user_id] = now
        undo = _Undo()
        undo.add(partial(pending.pop, me.user_id, None))
        await self._commit([NewJoinRequest(group.chat_id, me.user_id, now), NewEvent(event)],
                           [event], undo, "asking to join a group chat")
        logger.info("join request: chat=%s user=%s", group.chat_id, me.name)
        return self._result(status="pending", chat=summary)

    async def requests(self, actor: Actor, chat: object) -> Wire:
        """Pending join requests, oldest first (owner only). Result: {requests}."""
        me, group = self._owner_and_chat(actor, chat)
        users = self._core.users_by_id
        pending = self._requests.get(group.chat_id, {})
        return self._result(requests=[{"user": users[user_id].name, "ts": ts}
                                      for user_id, ts in pending.items()])

    async def approve(self, actor: Actor, chat: object, user: object) -> Wire:
        """The owner lets a requester in. Result: {chat}."""
        core = self._core
        me, group = self._owner_and_chat(actor, chat)
        other = self._requester(group, user)
        await self._add_member(group, other, me, "approving a join request")
        logger.info("join approved: chat=%s user=%s", group.chat_id, other.name)
        return self._result(chat=core.chat_wire(group, me))

    async def decline(self, actor: Actor, chat: object, user: object) -> Wire:
        """The owner turns a requester away; it may ask again. Result: {ok}."""
        core = self._core
        me, group = self._owner_and_chat(actor, chat)
        other = self._requester(group, user)
        undo = _Undo()
        changes, events = self._decline_requests(group, [other], core.clock.time(), undo)
        await self._commit(changes, events, undo, "declining a join request")
        logger.info("join declined: chat=%s user=%s", group.chat_id, other.name)
        return self._result(ok=True)

    def _decline_requests(
        self, group: ChatState, requesters: Sequence[UserState], now: float, undo: _Undo
    ) -> tuple[list[Change], list[EventRecord]]:
        pending = self._requests.get(group.chat_id, {})
        changes: list[Change] = []
        events: list[EventRecord] = []
        for requester in requesters:
            asked_at = pending.pop(requester.user_id)
            undo.add(partial(pending.__setitem__, requester.user_id, asked_at))
            event = EventRecord(self._core.next_seq(), EVENT_JOIN_DECLINED, now,
                                {"chat": group.chat_id}, target_id=requester.user_id)
            changes += [EndJoinRequest(group.chat_id, requester.user_id), NewEvent(event)]
            events.append(event)
        return changes, events

    # --- leave -------------------------------------------------------------------------

    async def leave(self, actor: Actor, chat: object) -> Wire:
        """Leave a group chat. Result: {ok}."""
        core = self._core
        core.ensure_running()
        me = core.actor(actor)
        group = core.member_chat(me, validation.chat_id(chat))
        if group.kind != KIND_GROUP:
            raise Forbidden(f"the {group.kind} chat cannot be left")
        now = core.clock.time()
        undo = _Undo()
        left = self._event(core.next_seq(), EVENT_CHAT_LEFT, now, group.chat_id, me.name, me)
        self._end_membership(group, me, left.seq, undo)
        changes: list[Change] = [LeaveChat(group.chat_id, me.user_id, left.seq), NewEvent(left)]
        events = [left]
        if group.owner_id == me.user_id:
            more_changes, more_events = self._hand_over(group, me, now, undo)
            changes += more_changes
            events += more_events
        await self._commit(changes, events, undo, "leaving a group chat",
                           also_wake=me.user_id)
        logger.info("group left: chat=%s user=%s", group.chat_id, me.name)
        return self._result(ok=True)

    def _end_membership(self, group: ChatState, me: UserState, seq: int, undo: _Undo) -> None:
        intervals = me.memberships[group.chat_id]
        joined = intervals[-1][0]
        intervals[-1] = (joined, seq)
        del group.members[me.user_id]

        def rejoin() -> None:
            intervals[-1] = (joined, None)
            group.members[me.user_id] = None

        undo.add(rejoin)

    def _hand_over(
        self, group: ChatState, owner: UserState, now: float, undo: _Undo
    ) -> tuple[list[Change], list[EventRecord]]:
        """The owner is leaving: the oldest member takes over, or the chat closes."""
        users = self._core.users_by_id
        remaining = [users[user_id] for user_id in group.members]
        undo.add(lambda: setattr(group, "owner_id", owner.user_id))
        if remaining:
            successor = min(remaining, key=lambda user: (user.joined_seq(group.chat_id),
                                                         user.user_id))
            group.owner_id = successor.user_id
            event = self._event(self._core.next_seq(), EVENT_OWNER_CHANGED, now,
                                group.chat_id, successor.name, owner, field_name="owner")
            logger.info("group owner changed: chat=%s owner=%s", group.chat_id, successor.name)
            return [SetChatOwner(group.chat_id, successor.user_id), NewEvent(event)], [event]
        group.owner_id = None
        token = self._forget_link(group.chat_id)
        if token is not None:
            undo.add(lambda: self._remember_link(group.chat_id, token))
        requesters = [users[user_id] for user_id in self._requests.get(group.chat_id, {})]
        changes, events = self._decline_requests(group, requesters, now, undo)
        logger.info("group closed: chat=%s (its last member left)", group.chat_id)
        return [SetChatOwner(group.chat_id, None), DropChatLink(group.chat_id), *changes], events

    # --- shared steps ------------------------------------------------------------------

    async def _add_member(self, group: ChatState, user: UserState, by: UserState,
                          what: str) -> None:
        core = self._core
        now = core.clock.time()
        joined = self._event(core.next_seq(), EVENT_CHAT_JOINED, now, group.chat_id,
                             user.name, by)
        intervals = user.memberships.setdefault(group.chat_id, [])
        intervals.append((joined.seq, None))
        group.members[user.user_id] = None
        changes: list[Change] = [JoinChat(group.chat_id, user.user_id, joined.seq),
                                 NewEvent(joined)]
        pending = self._requests.get(group.chat_id, {})
        asked_at = pending.pop(user.user_id, None)
        if asked_at is not None:
            changes.append(EndJoinRequest(group.chat_id, user.user_id))

        def forget() -> None:
            if intervals and intervals[-1] == (joined.seq, None):
                intervals.pop()
            if not intervals:
                user.memberships.pop(group.chat_id, None)
            group.members.pop(user.user_id, None)
            if asked_at is not None:
                pending[user.user_id] = asked_at

        await self._commit(changes, [joined], forget, what)

    async def _commit(self, changes: Sequence[Change], events: Sequence[EventRecord],
                      undo: Callable[[], None], what: str,
                      also_wake: int | None = None) -> None:
        """Queue the changes (no await before this since seqs were taken), publish the
        events once committed, undo the in-memory steps if the write fails."""
        core = self._core

        def publish() -> None:
            feed = core.feed()
            if events:
                feed.publish(events)
            if also_wake is not None:
                # A user who just left is no member any more, so publishing does not wake
                # its waiting poll for the chat.left it still sees.
                feed.hub.wake_users([also_wake])

        applied = core.writes.submit(changes, on_commit=publish, on_failure=undo)
        await core.writes.wait(applied, what)

    def _event(self, seq: int, kind: str, now: float, chat_id: str, user: str,
               actor: UserState, field_name: str = "user") -> EventRecord:
        return EventRecord(seq, kind, now, {"chat": chat_id, field_name: user},
                           chat_id=chat_id, actor_id=actor.user_id)

    def _new_chat_id(self) -> str:
        while True:
            chat_id = GROUP_ID_PREFIX + secrets.token_urlsafe(GROUP_ID_BYTES)
            if chat_id not in self._core.chats:
                return chat_id

    def _owner_and_chat(self, actor: Actor, chat: object) -> tuple[UserState, ChatState]:
        """The caller and its group chat `chat`, for what only the chat's owner may do."""
        self._core.ensure_running()
        me = self._core.actor(actor)
        group = self._core.member_chat(me, validation.chat_id(chat))
        if group.owner_id != me.user_id:
            raise Forbidden(f"only the owner of {group.chat_id} may do this")
        return me, group

    def _user_named(self, value: object, field_name: str) -> UserState:
        name = validation.user_name(value, field_name)
        user = self._core.users_by_key.get(validation.name_key(name))
        if user is None:
            raise NotFound(f"no such user: {name}")
        return user

    def _users_named(self, names: object) -> list[UserState]:
        if names is None:
            return []
        if not isinstance(names, list):
            raise InvalidParams("members", "must be a list of user names")
        found: dict[int, UserState] = {}
        for name in names:
            user = self._user_named(name, "members")
            found.setdefault(user.user_id, user)
        return list(found.values())

    def _requester(self, group: ChatState, value: object) -> UserState:
        user = self._user_named(value, "user")
        if user.user_id not in self._requests.get(group.chat_id, {}):
            raise NotFound(f"no pending join request from {user.name} in {group.chat_id}")
        return user

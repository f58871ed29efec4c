"""What feature modules (group chats, files, message rules) build on: the chat service's
indexes and write path.

`ChatService` builds one `ChatCore` and hands it to each feature. The mappings are the
service's live indexes (shared, not copies); the callables are its own methods, so every
feature follows exactly the rules of the service (membership checks, the message-creation
path, seq allocation, publishing in commit order).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from rpcchat.clock import Clock
from rpcchat.config import ServerConfig
from rpcchat.domain import validation
from rpcchat.domain.feed import EventFeed
from rpcchat.domain.records import Wire
from rpcchat.domain.state import ChatState, UserState
from rpcchat.domain.store import Store
from rpcchat.domain.writes import WritePipeline
from rpcchat.errors import InvalidParams, NotFound

if TYPE_CHECKING:
    from rpcchat.domain.service import Actor


def direct_chat_id(first: str, second: str) -> str:
    """`dm:<a>:<b>` with the two display names in code-point order (stable: names never
    change; unique: names are unique and contain no ':')."""
    low, high = sorted((first, second))
    return f"dm:{low}:{high}"


def direct_partner(users_by_key: Mapping[str, UserState], me: UserState,
                   recipient: str) -> tuple[UserState, str]:
    """The user `me` writes to with `to`, and the id of their direct chat (which may not
    exist yet)."""
    other = users_by_key.get(validation.name_key(recipient))
    if other is None:
        raise NotFound(f"no such user: {recipient}")
    if other is me:
        raise InvalidParams("to", "cannot send a direct message to yourself")
    return other, direct_chat_id(me.name, other.name)


class PostMessage(Protocol):
    """The service's message-creation path (the one `send` uses): checks the sender may
    post there, allocates, queues; returns the Message and the future of its commit."""

    def __call__(self, me: UserState, body: str, recipient: str | None, chat_ref: str,
                 request_id: str | None, *, file: Wire | None = None,
                 ) -> tuple[Wire, asyncio.Future[None]]: ...


@dataclass(frozen=True, slots=True)
class ChatCore:
    clock: Clock
    config: ServerConfig
    store: Store
    writes: WritePipeline
    users_by_id: Mapping[int, UserState]
    users_by_key: Mapping[str, UserState]
    chats: dict[str, ChatState]
    # A Session or a user name -> the acting user (Unauthorized when unknown).
    actor: Callable[[Actor], UserState]
    # A chat id -> the chat, if the user is a member (NotFound, Forbidden otherwise).
    member_chat: Callable[[UserState, str], ChatState]
    # The contract's Chat object as `viewer` sees it.
    chat_wire: Callable[[ChatState, UserState], Wire]
    next_seq: Callable[[], int]
    # The current event feed (the service replaces it once, while loading).
    feed: Callable[[], EventFeed]
    post_message: PostMessage
    ensure_running: Callable[[], None]

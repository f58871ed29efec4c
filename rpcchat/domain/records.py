"""Plain data exchanged between the chat service and its Store.

`Change` values describe writes; a list of them is applied atomically by `Store.submit`.
The `*Row` values and `Snapshot` are what the store hands back when the service starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from rpcchat.domain.feature_records import FeatureChange
from rpcchat.domain.group_file_records import GroupFileChange

GENERAL = "general"

KIND_GENERAL = "general"
KIND_DIRECT = "direct"
KIND_GROUP = "group"

EVENT_MESSAGE = "message"
EVENT_CHAT_JOINED = "chat.joined"

# The records made for every message (EventRecord, NewMessage, NewEvent,
# RememberClientMsgId) are plain slotted dataclasses: frozen=True would make each one set
# its fields through object.__setattr__, a large part of the cost of a send. They are
# never changed once built, and nothing hashes them (an EventRecord holds a dict anyway).

Wire = dict[str, Any]
"""A JSON-ready object shaped like the wire contract (a Message, an Event ...)."""

Interval = tuple[int, Union[int, None]]
"""A membership period: (seq of the join event, seq of the leave event or None)."""


@dataclass(slots=True)
class EventRecord:
    """One entry of the event log. Addressed to a chat's members or to one user."""

    seq: int
    type: str
    ts: float
    data: Wire
    chat_id: str | None = None
    target_id: int | None = None
    actor_id: int | None = None
    expires_at: float | None = None


def is_visible(
    user_id: int,
    memberships: Mapping[str, Sequence[Interval]],
    seq: int,
    chat_id: str | None,
    target_id: int | None,
) -> bool:
    """Whether a user sees an event: one addressed to a user is that user's alone; a chat
    event is seen by those who were members when it happened (join seq <= seq <= leave)."""
    if target_id is not None:
        return target_id == user_id
    if chat_id is None:
        return False
    for joined, left in memberships.get(chat_id, ()):
        if joined <= seq and (left is None or seq <= left):
            return True
    return False


# --- changes -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewUser:
    user_id: int
    name: str
    name_key: str
    password_hash: str
    created_at: float
    cursor: int


@dataclass(frozen=True, slots=True)
class NewSession:
    session_id: int
    user_id: int
    token_hash: str
    created_at: float


@dataclass(frozen=True, slots=True)
class RevokeSession:
    session_id: int
    revoked_at: float


@dataclass(frozen=True, slots=True)
class NewChat:
    chat_id: str
    kind: str
    name: str
    owner_id: int | None
    created_at: float


@dataclass(frozen=True, slots=True)
class JoinChat:
    chat_id: str
    user_id: int
    joined_seq: int


@dataclass(frozen=True, slots=True)
class LeaveChat:
    chat_id: str
    user_id: int
    left_seq: int


@dataclass(slots=True)
class NewMessage:
    message_id: int
    chat_id: str
    sender_id: int
    text: str
    ts: float
    seq: int
    parent_id: int | None = None
    file_id: str | None = None
    file: Wire | None = None
    client_msg_id: str | None = None
    expires_at: float | None = None


@dataclass(slots=True)
class NewEvent:
    event: EventRecord


@dataclass(frozen=True, slots=True)
class AdvanceCursor:
    """The user's read marker becomes max(stored, cursor)."""

    user_id: int
    cursor: int


@dataclass(slots=True)
class RememberClientMsgId:
    user_id: int
    client_msg_id: str
    message_id: int
    created_at: float


Change = Union[
    NewUser, NewSession, RevokeSession, NewChat, JoinChat, LeaveChat, NewMessage, NewEvent,
    AdvanceCursor, RememberClientMsgId, GroupFileChange, FeatureChange,
]
# The types of Change defined here (GROUP_FILE_ and FEATURE_CHANGE_TYPES: the rest).
CORE_CHANGE_TYPES = (
    NewUser, NewSession, RevokeSession, NewChat, JoinChat, LeaveChat, NewMessage, NewEvent,
    AdvanceCursor, RememberClientMsgId,
)


# --- what the service loads at start ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserRow:
    user_id: int
    name: str
    name_key: str
    password_hash: str
    created_at: float
    cursor: int


@dataclass(frozen=True, slots=True)
class SessionRow:
    session_id: int
    user_id: int
    token_hash: str


@dataclass(frozen=True, slots=True)
class ChatRow:
    chat_id: str
    kind: str
    name: str
    owner_id: int | None
    created_at: float


@dataclass(frozen=True, slots=True)
class MembershipRow:
    chat_id: str
    user_id: int
    joined_seq: int
    left_seq: int | None


@dataclass(frozen=True, slots=True)
class MessageMark:
    """Enough of a message event to count unread messages."""

    seq: int
    chat_id: str
    sender_id: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    users: list[UserRow] = field(default_factory=list)
    sessions: list[SessionRow] = field(default_factory=list)
    chats: list[ChatRow] = field(default_factory=list)
    memberships: list[MembershipRow] = field(default_factory=list)  # ascending joined_seq
    recent_events: list[EventRecord] = field(default_factory=list)  # ascending seq
    window_floor: int = 0  # every event with seq > window_floor is in recent_events
    last_seq: int = 0
    last_message_id: int = 0
    last_session_id: int = 0  # revoked sessions included: ids are never reused
    message_marks: list[MessageMark] = field(default_factory=list)  # ascending seq
    recent_general: list[Wire] = field(default_factory=list)  # Messages, oldest first

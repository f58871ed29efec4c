"""Plain data of group chats and file uploads exchanged between the service and its Store.

The `Change` values describe writes (they are members of `records.Change`, applied
atomically with any other changes of the same `Store.submit`); the `*Row` values are what
the store hands back when the service starts. Kept apart from records.py so the group and
file features stay in their own modules; this module imports nothing from records.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union


# --- changes -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetChatOwner:
    chat_id: str
    owner_id: int | None


@dataclass(frozen=True, slots=True)
class NewChatLink:
    chat_id: str
    token: str
    created_at: float


@dataclass(frozen=True, slots=True)
class DropChatLink:
    chat_id: str


@dataclass(frozen=True, slots=True)
class NewJoinRequest:
    chat_id: str
    user_id: int
    ts: float


@dataclass(frozen=True, slots=True)
class EndJoinRequest:
    """A pending request was approved, declined or overtaken by an invitation."""

    chat_id: str
    user_id: int


@dataclass(frozen=True, slots=True)
class NewUpload:
    upload_id: str
    user_id: int
    name: str
    size: int
    content_type: str
    sha256: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class UploadProgress:
    """Bytes received so far; `touched_at` restarts the idle timer of the upload."""

    upload_id: str
    received: int
    touched_at: float


@dataclass(frozen=True, slots=True)
class EndUpload:
    """The upload was finished (its bytes now belong to a message) or discarded."""

    upload_id: str


GroupFileChange = Union[
    SetChatOwner, NewChatLink, DropChatLink, NewJoinRequest, EndJoinRequest, NewUpload,
    UploadProgress, EndUpload,
]
GROUP_FILE_CHANGE_TYPES = (
    SetChatOwner, NewChatLink, DropChatLink, NewJoinRequest, EndJoinRequest, NewUpload,
    UploadProgress, EndUpload,
)


# --- what the service loads at start ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatLinkRow:
    chat_id: str
    token: str


@dataclass(frozen=True, slots=True)
class JoinRequestRow:
    chat_id: str
    user_id: int
    ts: float


@dataclass(frozen=True, slots=True)
class UploadRow:
    upload_id: str
    user_id: int
    name: str
    size: int
    content_type: str
    sha256: str | None
    received: int
    created_at: float
    touched_at: float


@dataclass(frozen=True, slots=True)
class GroupFileState:
    links: list[ChatLinkRow] = field(default_factory=list)
    requests: list[JoinRequestRow] = field(default_factory=list)  # ascending ts
    uploads: list[UploadRow] = field(default_factory=list)  # unfinished ones only
    # Uploads whose file a message already carries: a crash hit between the message and
    # the end of its upload. The service ends them.
    finished_upload_ids: list[str] = field(default_factory=list)
    # Files carried by messages that have not expired at the time given to the loader.
    live_file_ids: set[str] = field(default_factory=set)


FileMessage = dict[str, Any]
"""The Message (wire shape) that carries a file."""

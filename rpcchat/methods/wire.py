"""Wire shapes of the contract (../shared/API.md, "Objects"), as TypedDicts.

They type the handlers' results and give `rpc.discover` its result schemas.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

File = TypedDict("File", {"id": str, "name": str, "size": int, "content_type": str,
                          "sha256": str})

Message = TypedDict("Message", {
    "id": int, "chat": str, "from": str, "text": str, "ts": float, "parent": int | None,
    "file": File | None, "client_msg_id": str | None, "expires_at": float | None,
})


class Chat(TypedDict):
    id: str
    kind: Literal["general", "direct", "group"]
    name: str
    owner: str | None
    members: list[str]
    unread: int


class Event(TypedDict):
    seq: int
    type: str
    ts: float
    data: dict[str, Any]


class Rate(TypedDict):
    limit: int | None
    remaining: int | None
    resets_at: float | None


class ServerInfo(TypedDict):
    version: str
    uptime: float
    users: int
    online: int


class Me(TypedDict):
    name: str
    chats: list[Chat]
    warnings: int
    banned_until: float | None
    rate: Rate
    cursor: int


class ConnectResult(TypedDict):
    token: str
    user: str
    cursor: int
    history: list[Message]
    unread: int


class OkResult(TypedDict):
    ok: bool


class _StatusBase(TypedDict):
    server: ServerInfo


class StatusResult(_StatusBase, total=False):
    me: Me


class MessageResult(TypedDict):
    message: Message


class HistoryResult(TypedDict):
    messages: list[Message]
    more: bool


class PollResult(TypedDict):
    events: list[Event]
    next: int
    more: bool
    unread: int

"""Wire shapes of the contract (../shared/API.md, "Objects" and the methods' results), as
TypedDicts, shared by the server's handlers and the client.

The class names are the schema titles `rpc.discover` publishes. The dispatcher stamps every
result object with `server_time`, so it is not part of these shapes (the client adds it).
This module imports nothing from the server, so the client can use it on its own.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

# --- objects --------------------------------------------------------------------------------

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


class Scheduled(TypedDict):
    id: str
    chat: str
    text: str
    deliver_at: float
    status: Literal["pending", "sent", "cancelled"]
    message_id: int | None


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


class ChatSummary(TypedDict):
    id: str
    name: str


class JoinRequest(TypedDict):
    user: str
    ts: float


# --- results --------------------------------------------------------------------------------

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


class BeginResult(TypedDict):
    upload_id: str
    chunk_size: int
    offset: int


class PutResult(TypedDict):
    offset: int


class GetResult(TypedDict):
    data: str  # base64, as on the wire
    offset: int
    size: int
    eof: bool
    file: File


class ChatResult(TypedDict):
    chat: Chat


class LinkResult(TypedDict):
    link: str
    token: str


class JoinResult(TypedDict):
    status: Literal["pending", "member"]
    chat: ChatSummary


class RequestsResult(TypedDict):
    requests: list[JoinRequest]

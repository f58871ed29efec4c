"""The chat domain: accounts, sessions, chats, messages, events, long-poll and storage.

Pure asyncio with a Python API; the JSON-RPC handlers call `ChatService`.
"""

from rpcchat.domain.chatcore import direct_chat_id
from rpcchat.domain.passwords import PasswordHasher, ScryptHasher
from rpcchat.domain.service import ChatService, Session
from rpcchat.domain.sqlite_store import SqliteStore
from rpcchat.domain.store import Store

__all__ = [
    "ChatService",
    "PasswordHasher",
    "ScryptHasher",
    "Session",
    "SqliteStore",
    "Store",
    "direct_chat_id",
]

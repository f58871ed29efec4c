"""The storage interface of the chat service.

The service talks to storage only through `Store`, so another backend (a networked
database) can replace `SqliteStore` without touching the service or the RPC handlers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from rpcchat.domain.group_file_records import FileMessage, GroupFileState
from rpcchat.domain.records import Change, EventRecord, Interval, Snapshot, Wire

T = TypeVar("T")


class Store(Protocol):
    async def open(self, *, window: int, recent_general: int) -> Snapshot:
        """Prepare storage (create, migrate) and return what the in-memory indexes need:
        the newest `window` events and the newest `recent_general` messages of `general`."""

    def submit(self, changes: Sequence[Change]) -> asyncio.Future[None]:
        """Queue `changes` to be applied atomically; the future resolves once they are
        durable (or fails with the storage error), and may be resolved already when this
        returns. Calls are applied in the order they were submitted, and every read sees
        every write acknowledged before it. Must be called on the event loop; never
        blocks it for long."""

    async def message_history(
        self, chat_id: str, before: int | None, limit: int
    ) -> tuple[list[Wire], bool]:
        """Up to `limit` newest Messages of a chat with id < `before`, oldest first, and
        whether older ones exist."""

    async def find_client_message(self, user_id: int, client_msg_id: str) -> Wire | None:
        """The Message a user first sent with this client_msg_id, if any."""

    async def visible_events(
        self,
        user_id: int,
        memberships: Mapping[str, Sequence[Interval]],
        after: int,
        upto: int,
        limit: int,
    ) -> tuple[list[EventRecord], bool]:
        """Events with after < seq <= upto that the user can see (addressed to it, or in a
        chat during one of its membership intervals), ascending, at most `limit`, and
        whether more such events exist up to `upto`."""

    async def group_file_state(self, now: float) -> GroupFileState:
        """Join links, pending join requests, unfinished uploads, and the ids of files whose
        messages have not expired by `now`."""

    async def find_file(self, file_id: str) -> FileMessage | None:
        """The Message carrying file `file_id` (expired or not), if it is still stored."""

    async def read_job(self, job: Callable[[Any], T]) -> T:
        """Run a backend-specific read (a feature module's queries; for SQLite `job` gets
        the reading connection) and return its result."""

    async def write_job(self, job: Callable[[Any], T]) -> T:
        """Run a backend-specific write in its own transaction, after every write submitted
        before it, and return its result (e.g. what an expiry pass deleted)."""

    async def close(self) -> None:
        """Commit everything queued, then release the storage."""

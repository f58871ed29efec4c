"""`Store` on SQLite (standard `sqlite3`), in WAL mode with foreign keys.

Threads, because sqlite3 calls block:
- one writer thread owns the only writing connection and takes jobs from a queue. It
  drains whatever is queued and commits consecutive writes in ONE transaction (group
  commit). A failed group is retried one write at a time, so one bad write cannot sink
  its neighbours. A journaled write the database cannot take at all (a full disk, an I/O
  error) stops the thread instead: the journal keeps it for the next start.
- one reader thread with its own connection serves history and event look-ups; WAL lets
  it read while the writer writes. A read first waits until the database holds every
  write acknowledged before it.

Durability, synchronous=NORMAL (the default): a write is acknowledged once its record is
in the journal (journal.py: one os.write() on the event loop), which survives a killed
process; the writer thread applies journaled writes in the background, in transactions of
everything that arrived within JOURNAL_LINGER. synchronous=FULL (survives a power cut):
a write is acknowledged after its own COMMIT, and the journal is not written (what a
NORMAL run left in it is still applied at open).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from collections import deque
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Any, Generic, TypeVar

try:
    import fcntl
except ImportError:  # not on Windows: no lock there
    fcntl = None  # type: ignore[assignment]

from rpcchat.domain.records import (
    GENERAL,
    AdvanceCursor,
    Change,
    ChatRow,
    EventRecord,
    Interval,
    JoinChat,
    LeaveChat,
    MembershipRow,
    MessageMark,
    NewChat,
    NewEvent,
    NewMessage,
    NewSession,
    NewUser,
    RememberClientMsgId,
    RevokeSession,
    SessionRow,
    Snapshot,
    UserRow,
    Wire,
    is_visible,
)
from rpcchat.domain.group_file_records import GROUP_FILE_CHANGE_TYPES, FileMessage, \
    GroupFileState
from rpcchat.domain.group_file_sql import GROUP_FILE_MIGRATION, apply_group_file_change, \
    find_file_message, load_group_file_state
from rpcchat.domain.feature_records import FEATURE_CHANGE_TYPES
from rpcchat.domain.feature_store import SCHEMA_STEP_2, apply_feature_change
from rpcchat.domain.journal import ChangeCodec, JournalWriter, Record, batches, read_journal, \
    remove_files
from rpcchat.domain.message_sql import MESSAGE_SELECT, message_from_row

logger = logging.getLogger(__name__)

T = TypeVar("T")

DB_FILENAME = "rpcchat.sqlite3"
LOCK_FILENAME = "rpcchat.lock"
SYNCHRONOUS_MODES = ("NORMAL", "FULL")
# How long the writer thread lets journaled writes gather before it applies them (unless
# a read is waiting for them).
JOURNAL_LINGER = 0.01
_MAX_ID = 2**63 - 1
# Above this many chats the SQL pre-filter is skipped (SQLite caps bound parameters).
_MAX_CHATS_IN_QUERY = 500

# One list of statements per schema version; version N is _MIGRATIONS[N - 1].
_MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value INTEGER NOT NULL
        )""",
        "INSERT INTO meta (key, value) VALUES ('last_seq', 0), ('last_message_id', 0)",
        """CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            name_key TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            created_at REAL NOT NULL,
            cursor INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE sessions (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users (id),
            token_hash TEXT NOT NULL UNIQUE,
            created_at REAL NOT NULL,
            revoked_at REAL
        )""",
        """CREATE TABLE chats (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('general', 'direct', 'group')),
            name TEXT NOT NULL,
            owner_id INTEGER REFERENCES users (id),
            created_at REAL NOT NULL
        )""",
        """CREATE TABLE memberships (
            chat_id TEXT NOT NULL REFERENCES chats (id),
            user_id INTEGER NOT NULL REFERENCES users (id),
            joined_seq INTEGER NOT NULL,
            left_seq INTEGER,
            PRIMARY KEY (chat_id, user_id, joined_seq)
        )""",
        "CREATE INDEX memberships_by_user ON memberships (user_id)",
        """CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            chat_id TEXT NOT NULL REFERENCES chats (id),
            sender_id INTEGER NOT NULL REFERENCES users (id),
            text TEXT NOT NULL,
            ts REAL NOT NULL,
            seq INTEGER NOT NULL,
            parent_id INTEGER,
            file_id TEXT,
            file_json TEXT,
            client_msg_id TEXT,
            expires_at REAL
        )""",
        "CREATE INDEX messages_by_chat ON messages (chat_id, id)",
        "CREATE INDEX messages_by_parent ON messages (parent_id) WHERE parent_id IS NOT NULL",
        "CREATE INDEX messages_by_expiry ON messages (expires_at) WHERE expires_at IS NOT NULL",
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY,
            type TEXT NOT NULL,
            ts REAL NOT NULL,
            chat_id TEXT,
            target_id INTEGER,
            actor_id INTEGER,
            data TEXT NOT NULL,
            expires_at REAL
        )""",
        "CREATE INDEX events_by_expiry ON events (expires_at) WHERE expires_at IS NOT NULL",
        """CREATE TABLE client_msg_ids (
            user_id INTEGER NOT NULL REFERENCES users (id),
            client_msg_id TEXT NOT NULL,
            message_id INTEGER NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (user_id, client_msg_id)
        ) WITHOUT ROWID""",
    ],
    SCHEMA_STEP_2,  # 2: rate counts, reports and bans, scheduled messages
    GROUP_FILE_MIGRATION,  # 3: join links, join requests, uploads, messages by file
    # 4: the number of the last journal record applied (see journal.py)
    ["INSERT INTO meta (key, value) VALUES ('journal_applied', 0)"],
]
SCHEMA_VERSION = len(_MIGRATIONS)


class StoreUnavailable(RuntimeError):
    """The store cannot be opened: the data directory is in use, or the database is not
    one this server can use. The message says which."""


class StoreClosed(RuntimeError):
    """A write or read was attempted on a store that is not open."""


class SqliteStore:
    """The SQLite `Store`. Construct anywhere; `open()` on the event loop that uses it."""

    def __init__(
        self, data_dir: Path, *, synchronous: str = "NORMAL", max_batch: int = 1024
    ) -> None:
        mode = synchronous.upper()
        if mode not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, not {synchronous!r}")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.path = Path(data_dir) / DB_FILENAME
        self._synchronous = mode
        self._max_batch = max_batch
        self._writer: _DbWorker | None = None
        self._reader: _DbWorker | None = None
        self._accepting = False
        self._codec = ChangeCodec()
        # synchronous=FULL means surviving a power cut: those writes commit to SQLite
        # before they are acknowledged. NORMAL writes are acknowledged from the journal.
        self._journal: JournalWriter | None = None
        self._applied = 0  # the last journal record the database holds (loop side)
        self._catching_up: list[tuple[int, asyncio.Future[None]]] = []  # ascending
        # client_msg_ids in journal records not applied yet: key -> how many such records,
        # and (record number, its keys) in record order.
        self._pending_keys: dict[tuple[int, str], int] = {}
        self._keys_of_record: deque[tuple[int, list[tuple[int, str]]]] = deque()
        self._lock: int | None = None  # descriptor holding the data directory's lock

    # --- lifecycle ---------------------------------------------------------------------

    async def open(self, *, window: int, recent_general: int) -> Snapshot:
        if self._writer is not None:
            raise RuntimeError("store is already open")
        loop = asyncio.get_running_loop()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Two servers on one directory would interleave their journals: refuse the second.
        self._lock = lock_directory(self.path.parent)
        self._writer = writer = _DbWorker(
            "rpcchat-db-writer", partial(self._connect, read_only=False), loop, self._max_batch,
            on_applied=self._note_applied, linger=JOURNAL_LINGER,
        )
        writer.start()
        writer.stopped.add_done_callback(self._writer_stopped)
        try:
            await writer.call(_migrate)
            # Whatever the mode: a NORMAL run may have stopped with records not applied yet.
            last, generation = await writer.call(partial(
                _replay, directory=self.path.parent, codec=self._codec,
                commit=writer.commit_on_thread, batch=self._max_batch))
            self._applied = last
            if self._synchronous == "NORMAL":
                self._journal = JournalWriter(self.path.parent, self._codec,
                                              next_number=last + 1, generation=generation + 1)
            snapshot = await writer.call(
                partial(_load_snapshot, window=window, recent_general=recent_general)
            )
        except BaseException:
            await writer.stop()
            self._writer = None
            if self._journal is not None:
                self._journal.close(all_applied=False)
                self._journal = None
            self._unlock()
            raise
        self._reader = _DbWorker(
            "rpcchat-db-reader", partial(self._connect, read_only=True), loop, 1
        )
        self._reader.start()
        self._accepting = True
        logger.info(
            "store opened: %s (schema %d, synchronous=%s, %d users, last seq %d)",
            self.path, SCHEMA_VERSION, self._synchronous, len(snapshot.users), snapshot.last_seq,
        )
        return snapshot

    async def close(self) -> None:
        self._accepting = False
        writer, reader = self._writer, self._reader
        self._writer = self._reader = None
        # The writer drains its queue before it stops, so every submitted write commits.
        if writer is not None:
            await writer.stop()
        if self._journal is not None:
            # Every record applied: the files are not needed to open the database again.
            self._journal.close(all_applied=self._applied >= self._journal.last_number)
            self._journal = None
        if reader is not None:
            await reader.stop()
        self._unlock()
        logger.info("store closed: %s", self.path)

    def _unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor releases the lock
            self._lock = None

    def stats(self) -> dict[str, int]:
        """Counters of the writer thread (for benchmarks): transactions and writes."""
        if self._writer is None:
            return {"transactions": 0, "writes": 0}
        return {"transactions": self._writer.transactions, "writes": self._writer.writes}

    # --- writes ------------------------------------------------------------------------

    def submit(self, changes: Sequence[Change]) -> asyncio.Future[None]:
        if not self._accepting or self._writer is None:
            raise StoreClosed("store is not open")
        if self._writer.stopped.done():
            # Its thread failed: nothing would reach the database before a restart.
            raise StoreClosed("storage stopped")
        batch = tuple(changes)
        if self._journal is None:
            return self._writer.write(batch)
        number = self._journal.append(batch)  # raises JournalError: not acknowledged
        self._writer.apply(batch, number)
        self._note_pending_keys(batch, number)
        durable: asyncio.Future[None] = self._writer.loop.create_future()
        durable.set_result(None)
        return durable

    def _note_pending_keys(self, batch: tuple[Change, ...], number: int) -> None:
        """Remember the client_msg_ids a record stores until it is applied: a look-up of
        any other key needs not wait for the journal (every send with one looks it up)."""
        keys = [(change.user_id, change.client_msg_id) for change in batch
                if type(change) is RememberClientMsgId]
        if keys:
            self._keys_of_record.append((number, keys))
            for key in keys:
                self._pending_keys[key] = self._pending_keys.get(key, 0) + 1

    def _forget_pending_keys(self, applied: int) -> None:
        records = self._keys_of_record
        while records and records[0][0] <= applied:
            for key in records.popleft()[1]:
                left = self._pending_keys.pop(key) - 1
                if left:
                    self._pending_keys[key] = left

    def _note_applied(self, number: int) -> None:
        """The writer thread committed every journal record up to `number`."""
        self._applied = max(self._applied, number)
        self._forget_pending_keys(self._applied)
        if self._journal is not None:
            self._journal.applied(number)
        waiting = self._catching_up
        while waiting and waiting[0][0] <= self._applied:
            _, future = waiting.pop(0)
            if not future.done():
                future.set_result(None)

    def _writer_stopped(self, stopped: asyncio.Future[None]) -> None:
        # Nothing will be applied any more: reads waiting for that must not hang.
        waiting, self._catching_up = self._catching_up, []
        for _, future in waiting:
            if not future.done():
                future.set_exception(StoreClosed("storage stopped"))

    async def _caught_up(self) -> None:
        """Wait until the database holds every write acknowledged so far, so that a read
        sees them all (writes are acknowledged from the journal, before SQLite has them)."""
        journal = self._journal
        if journal is None or self._applied >= journal.last_number:
            return
        assert self._writer is not None
        if self._writer.stopped.done():
            # Nothing will be applied any more (its waiters were failed already).
            raise StoreClosed("storage stopped")
        future: asyncio.Future[None] = self._writer.loop.create_future()
        self._catching_up.append((journal.last_number, future))
        self._writer.hurry()
        await future

    # --- reads -------------------------------------------------------------------------

    async def message_history(
        self, chat_id: str, before: int | None, limit: int
    ) -> tuple[list[Wire], bool]:
        return await self._read(partial(_message_history, chat_id=chat_id, before=before,
                                        limit=limit))

    async def find_client_message(self, user_id: int, client_msg_id: str) -> Wire | None:
        return await self._read(partial(_find_client_message, user_id=user_id,
                                        client_msg_id=client_msg_id),
                                wait=(user_id, client_msg_id) in self._pending_keys)

    async def visible_events(
        self,
        user_id: int,
        memberships: Mapping[str, Sequence[Interval]],
        after: int,
        upto: int,
        limit: int,
    ) -> tuple[list[EventRecord], bool]:
        frozen = {chat: tuple(intervals) for chat, intervals in memberships.items()}
        return await self._read(partial(_visible_events, user_id=user_id, memberships=frozen,
                                        after=after, upto=upto, limit=limit))

    async def group_file_state(self, now: float) -> GroupFileState:
        return await self._read(partial(load_group_file_state, now=now))

    async def find_file(self, file_id: str) -> FileMessage | None:
        return await self._read(partial(find_file_message, file_id=file_id))

    async def read_job(self, job: Callable[[sqlite3.Connection], T]) -> T:
        return await self._read(job)

    async def write_job(self, job: Callable[[sqlite3.Connection], T]) -> T:
        if not self._accepting or self._writer is None:
            raise StoreClosed("store is not open")
        return await self._writer.call(partial(_in_transaction, job))

    async def _read(self, job: Callable[[sqlite3.Connection], T], *, wait: bool = True) -> T:
        """Run a read; with `wait` (unless the caller knows no pending write matters to it)
        once the database holds every write acknowledged so far."""
        if not self._accepting or self._reader is None:
            raise StoreClosed("store is not open")
        if wait:
            await self._caught_up()
        if self._reader is None:
            raise StoreClosed("store closed")
        return await self._reader.call(job)

    def _connect(self, *, read_only: bool) -> sqlite3.Connection:
        # Room for the multi-row INSERTs of every size (see _insert_rows) besides the rest.
        conn = sqlite3.connect(self.path, isolation_level=None, cached_statements=512)
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreUnavailable(f"SQLite refused WAL mode (got {mode!r}) for {self.path}")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        if read_only:
            conn.execute("PRAGMA query_only=ON")
        return conn


# --- the worker thread ----------------------------------------------------------------


@dataclass(slots=True)
class _CallJob(Generic[T]):
    fn: Callable[[sqlite3.Connection], T]
    future: asyncio.Future[T]


@dataclass(slots=True)
class _WriteJob:
    changes: tuple[Change, ...]
    future: asyncio.Future[None] | None  # None: acknowledged already (journaled)
    number: int = 0  # its journal record; 0 when it was not journaled


class _Stop:
    pass


_Job = _CallJob[Any] | _WriteJob | _Stop
_Outcome = tuple["asyncio.Future[Any]", BaseException | None, Any]
# Journaled writes are reported by the number of the last record applied.
AppliedCallback = Callable[[int], None]


class _DbWorker:
    """A thread owning one connection; runs queued jobs in order, grouping writes."""

    def __init__(
        self,
        name: str,
        connect: Callable[[], sqlite3.Connection],
        loop: asyncio.AbstractEventLoop,
        max_batch: int,
        on_applied: AppliedCallback | None = None,
        linger: float = 0.0,
    ) -> None:
        self._connect = connect
        self._on_applied = on_applied
        self._linger = linger
        self._hurry = threading.Event()
        self._stopping = False
        self._loop = loop
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        # Set (under _ending) when the thread stops serving; from then on a job is refused
        # at once, since nothing would ever take it from the queue.
        self._ending = threading.Lock()
        self._ended: BaseException | None = None
        self._stopped: asyncio.Future[None] = loop.create_future()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.transactions = 0
        self.writes = 0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    @property
    def stopped(self) -> asyncio.Future[None]:
        """Resolves when the thread has ended (stopped, or failed)."""
        return self._stopped

    def start(self) -> None:
        self._thread.start()

    def commit_on_thread(self, conn: sqlite3.Connection,
                         records: Sequence[tuple[tuple[Change, ...], int]]) -> None:
        """Apply journal records (changes, number) now, as one group commit; for jobs that
        already run on this worker's thread."""
        self._commit(conn, [_WriteJob(changes, None, number) for changes, number in records])

    def call(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        future: asyncio.Future[T] = self._loop.create_future()
        self._put(_CallJob(fn, future))
        self._hurry.set()
        return future

    def write(self, changes: tuple[Change, ...]) -> asyncio.Future[None]:
        future: asyncio.Future[None] = self._loop.create_future()
        self._put(_WriteJob(changes, future))
        self._hurry.set()
        return future

    def hurry(self) -> None:
        """Someone waits for the journaled writes queued so far: apply them now."""
        self._hurry.set()

    def apply(self, changes: tuple[Change, ...], number: int) -> None:
        """Apply journal record `number` (already acknowledged) in a later transaction.
        Once the thread has ended the record stays in the journal for the next open."""
        self._put(_WriteJob(changes, None, number))

    async def stop(self) -> None:
        self._stopping = True  # no more lingering: apply everything queued, then stop
        self._put(_Stop())
        self._hurry.set()
        await asyncio.shield(self._stopped)

    def _put(self, job: _Job) -> None:
        with self._ending:
            ended = self._ended
            if ended is None:
                self._queue.put(job)
                return
        if not isinstance(job, _Stop) and job.future is not None:
            job.future.set_exception(ended)

    # Everything below runs on the worker thread.

    def _main(self) -> None:
        conn: sqlite3.Connection | None = None
        ended: BaseException = StoreClosed("store closed")
        try:
            conn = self._connect()
            self._serve(conn)
        except BaseException as exc:
            logger.exception("database thread %s failed", self._thread.name)
            ended = exc
        finally:
            self._end(ended)
            if conn is not None:
                conn.close()
            self._deliver_stopped()

    def _serve(self, conn: sqlite3.Connection) -> None:
        while True:
            jobs = self._take_jobs()
            outcomes: list[_Outcome] = []
            index = 0
            applied = 0
            try:
                while index < len(jobs):
                    job = jobs[index]
                    if isinstance(job, _Stop):
                        self._fail_jobs(jobs[index + 1:], StoreClosed("store closed"))
                        return
                    if isinstance(job, _WriteJob):
                        end = index
                        while end < len(jobs) and isinstance(jobs[end], _WriteJob):
                            end += 1
                        group = [j for j in jobs[index:end] if isinstance(j, _WriteJob)]
                        outcomes.extend(self._commit(conn, group))
                        applied = max(applied, *(j.number for j in group))
                        index = end
                    else:
                        outcomes.append(self._run_call(conn, job))
                        index += 1
            except BaseException as exc:
                # The thread ends: what this round did not reach fails with it.
                self._fail_jobs(jobs[index:], exc)
                raise
            finally:
                self._deliver(outcomes, applied)

    def _take_jobs(self) -> list[_Job]:
        jobs = [self._queue.get()]
        if (isinstance(jobs[0], _WriteJob) and jobs[0].future is None and self._linger
                and not self._stopping and self._queue.qsize() < self._max_batch):
            # Nobody waits for a journaled write: let more arrive, for one big transaction
            # and fewer hand-offs between this thread and the loop. hurry() cuts this short;
            # a full batch, or a stop, does not wait at all.
            self._hurry.wait(self._linger)
        self._hurry.clear()  # before draining: a hurry() from now on is for the next round
        while len(jobs) < self._max_batch:
            try:
                jobs.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return jobs

    def _run_call(self, conn: sqlite3.Connection, job: _CallJob[Any]) -> _Outcome:
        try:
            return (job.future, None, job.fn(conn))
        except Exception as exc:
            logger.exception("database job failed")
            return (job.future, exc, None)

    def _commit(self, conn: sqlite3.Connection, group: list[_WriteJob]) -> list[_Outcome]:
        try:
            conn.execute("BEGIN IMMEDIATE")
            batch = _Batch()
            for job in group:
                for change in job.changes:
                    _apply_change(conn, change, batch)
                batch.record = max(batch.record, job.number)
            batch.save(conn)
            conn.execute("COMMIT")
        except Exception as exc:
            _rollback(conn)
            if len(group) == 1:
                return self._refused(conn, group[0], exc)
            logger.warning("group commit of %d writes failed (%r); retrying one by one",
                           len(group), exc)
            return [outcome for job in group for outcome in self._commit(conn, [job])]
        self.transactions += 1
        self.writes += len(group)
        return [(job.future, None, None) for job in group if job.future is not None]

    def _refused(self, conn: sqlite3.Connection, job: _WriteJob, exc: Exception) -> list[_Outcome]:
        if job.future is not None:
            logger.error("write failed and was rolled back: %r", exc)
            return [(job.future, exc, None)]
        if _storage_failed(exc):
            # The database takes no write at all (a full disk, an I/O error ...): skipping
            # would lose an acknowledged write. The thread stops instead; the journal keeps
            # this record and every later one for the next open.
            logger.error("journal record %d cannot be applied (%r): storage stops; the "
                         "journal keeps it for the next start", job.number, exc)
            raise exc
        # Acknowledged already: the service checks every write in memory first, so this is
        # a defect, not a client's error. Skip the record (say so loudly) rather than stop
        # every later write behind it.
        logger.error("journal record %d was refused by the database and is skipped "
                     "(changes: %s): %r", job.number,
                     ", ".join(type(change).__name__ for change in job.changes), exc)
        skip_record(conn, job.number)
        return []

    def _deliver(self, outcomes: list[_Outcome], applied: int = 0) -> None:
        if not outcomes and not applied:
            return
        try:
            self._loop.call_soon_threadsafe(self._report, outcomes, applied)
        except RuntimeError:
            logger.error("event loop closed; %d database results dropped", len(outcomes))

    def _report(self, outcomes: list[_Outcome], applied: int) -> None:
        """On the loop: results to their futures, then how far the journal is applied."""
        _settle(outcomes)
        if applied and self._on_applied is not None:
            self._on_applied(applied)

    def _deliver_stopped(self) -> None:
        try:
            stopped: list[_Outcome] = [(self._stopped, None, None)]
            self._loop.call_soon_threadsafe(_settle, stopped)
        except RuntimeError:
            logger.debug("event loop closed before database thread %s ended",
                         self._thread.name)

    def _end(self, exc: BaseException) -> None:
        """Refuse jobs from now on (with `exc`), and fail those still queued."""
        with self._ending:
            self._ended = exc
        pending: list[_Job] = []
        while True:
            try:
                pending.append(self._queue.get_nowait())
            except queue.Empty:
                break
        self._fail_jobs(pending, exc)

    def _fail_jobs(self, jobs: Sequence[_Job], exc: BaseException) -> None:
        outcomes: list[_Outcome] = [
            (job.future, exc, None) for job in jobs
            if not isinstance(job, _Stop) and job.future is not None
        ]
        self._deliver(outcomes)


# Primary SQLite result codes of a database that takes no write at all, whatever the write.
_STORAGE_FAILURES = frozenset({
    sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED,
    sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB,
})


def _storage_failed(exc: Exception) -> bool:
    """Whether `exc` says the storage failed, rather than that it refused one write."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, MemoryError) or (
        isinstance(code, int) and code & 0xFF in _STORAGE_FAILURES)


def _settle(outcomes: list[_Outcome]) -> None:
    """Runs on the event loop: hand each result to its future."""
    for future, error, value in outcomes:
        if future.done():  # the waiter was cancelled; the result is not needed
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


def _in_transaction(job: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = job(conn)
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    return result


def _replay(
    conn: sqlite3.Connection,
    *,
    directory: Path,
    codec: ChangeCodec,
    commit: Callable[[sqlite3.Connection, Sequence[tuple[tuple[Change, ...], int]]], None],
    batch: int,
) -> tuple[int, int]:
    """At open: apply the journal records the database does not hold yet, in order.
    Returns the last record number and the last journal generation seen."""
    applied = _journal_position(conn)
    last_number = last_generation = replayed = 0
    for generation, records in read_journal(directory):
        last_generation = generation
        last_number = max([last_number, *(record.number for record in records)])
        pending = [record for record in records if record.number > applied]
        _apply_records(conn, pending, codec=codec, commit=commit, batch=batch)
        replayed += len(pending)
    now_applied = _journal_position(conn)
    if replayed:
        logger.info("journal: applied %d records written before the last stop", replayed)
    if now_applied >= last_number:
        remove_files(directory)
    return max(now_applied, last_number), last_generation


def _apply_records(
    conn: sqlite3.Connection,
    records: Sequence[Record],
    *,
    codec: ChangeCodec,
    commit: Callable[[sqlite3.Connection, Sequence[tuple[tuple[Change, ...], int]]], None],
    batch: int,
) -> None:
    for chunk in batches(records, batch):
        decoded: list[tuple[tuple[Change, ...], int]] = []
        for record in chunk:
            try:
                decoded.append((tuple(codec.decode(record.payload)), record.number))
            except (ValueError, TypeError, KeyError) as exc:
                logger.error("journal record %d cannot be read and is skipped: %r",
                             record.number, exc)
                decoded.append(((), record.number))
        commit(conn, decoded)


def _journal_position(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'journal_applied'").fetchone()
    return int(row[0])


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            logger.exception("rollback failed")


# --- applying changes (writer thread) -------------------------------------------------


_MESSAGE_COLUMNS = ("id, chat_id, sender_id, text, ts, seq, parent_id, file_id, file_json,"
                    " client_msg_id, expires_at")
# The order of an event's columns, written and read (see _event_from_row).
_EVENT_COLUMNS = "seq, type, ts, chat_id, target_id, actor_id, data, expires_at"
# Rows per multi-row INSERT: one statement (and one release of the GIL) for many rows;
# 64 * 11 parameters stay far below SQLite's limit.
_ROWS_PER_INSERT = 64


class _Batch:
    """What one transaction writes besides the changes applied one by one: the new
    messages and events, inserted together at the end (nothing else in a transaction
    reads those tables, and their foreign keys point at rows written before), and the
    highest seq, message id and journal record, saved to `meta` so they never go back,
    even when old events or messages are deleted later."""

    def __init__(self) -> None:
        self.seq = 0
        self.message_id = 0
        self.record = 0  # the last journal record in the transaction
        self.messages: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []

    def save(self, conn: sqlite3.Connection) -> None:
        _insert_rows(conn, "messages", _MESSAGE_COLUMNS, self.messages)
        _insert_rows(conn, "events", _EVENT_COLUMNS, self.events)
        if self.seq or self.message_id or self.record:
            # One statement for all three: every statement costs a round through SQLite.
            conn.execute(
                "UPDATE meta SET value = max(value, CASE key WHEN 'last_seq' THEN ?"
                " WHEN 'last_message_id' THEN ? ELSE ? END)"
                " WHERE key IN ('last_seq', 'last_message_id', 'journal_applied')",
                (self.seq, self.message_id, self.record),
            )


def save_journal_position(conn: sqlite3.Connection, number: int) -> None:
    conn.execute("UPDATE meta SET value = max(value, ?) WHERE key = 'journal_applied'",
                 (number,))


def skip_record(conn: sqlite3.Connection, number: int) -> None:
    """Count a refused journal record as applied, so the next open does not retry it.
    If even that fails (a full disk), the next open tries the record again."""
    try:
        _in_transaction(partial(save_journal_position, number=number), conn)
    except sqlite3.Error:
        logger.exception("could not record journal position %d", number)


# One encoder for every row: json.dumps with options builds a new encoder per call.
_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _insert_rows(conn: sqlite3.Connection, table: str, columns: str,
                 rows: list[tuple[Any, ...]]) -> None:
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start:start + _ROWS_PER_INSERT]
        placeholders = "(" + ", ".join("?" * len(chunk[0])) + ")"
        conn.execute(f"INSERT INTO {table} ({columns}) VALUES "
                     + ", ".join([placeholders] * len(chunk)),
                     list(chain.from_iterable(chunk)))


def _apply_change(conn: sqlite3.Connection, change: Change, batch: _Batch) -> None:
    if isinstance(change, NewEvent):
        event = change.event
        batch.events.append(
            (event.seq, event.type, event.ts, event.chat_id, event.target_id, event.actor_id,
             _json(event.data), event.expires_at))
        batch.seq = max(batch.seq, event.seq)
    elif isinstance(change, NewMessage):
        batch.messages.append(
            (change.message_id, change.chat_id, change.sender_id, change.text, change.ts,
             change.seq, change.parent_id, change.file_id,
             None if change.file is None else _json(change.file), change.client_msg_id,
             change.expires_at))
        batch.message_id = max(batch.message_id, change.message_id)
    elif isinstance(change, AdvanceCursor):
        updated = conn.execute("UPDATE users SET cursor = max(cursor, ?) WHERE id = ?",
                               (change.cursor, change.user_id))
        if updated.rowcount != 1:
            raise LookupError(f"cursor of unknown user {change.user_id}")
    else:
        _apply_account_change(conn, change)


def _apply_account_change(conn: sqlite3.Connection, change: Change) -> None:
    if isinstance(change, NewUser):
        conn.execute(
            "INSERT INTO users (id, name, name_key, password_hash, created_at, cursor)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (change.user_id, change.name, change.name_key, change.password_hash,
             change.created_at, change.cursor),
        )
    elif isinstance(change, NewSession):
        conn.execute(
            "INSERT INTO sessions (id, user_id, token_hash, created_at) VALUES (?, ?, ?, ?)",
            (change.session_id, change.user_id, change.token_hash, change.created_at),
        )
    elif isinstance(change, RevokeSession):
        conn.execute("UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                     (change.revoked_at, change.session_id))
    elif isinstance(change, NewChat):
        conn.execute(
            "INSERT INTO chats (id, kind, name, owner_id, created_at) VALUES (?, ?, ?, ?, ?)",
            (change.chat_id, change.kind, change.name, change.owner_id, change.created_at),
        )
    elif isinstance(change, JoinChat):
        conn.execute(
            "INSERT INTO memberships (chat_id, user_id, joined_seq) VALUES (?, ?, ?)",
            (change.chat_id, change.user_id, change.joined_seq),
        )
    elif isinstance(change, LeaveChat):
        conn.execute(
            "UPDATE memberships SET left_seq = ? WHERE chat_id = ? AND user_id = ?"
            " AND left_seq IS NULL",
            (change.left_seq, change.chat_id, change.user_id),
        )
    elif isinstance(change, RememberClientMsgId):
        conn.execute(
            "INSERT INTO client_msg_ids (user_id, client_msg_id, message_id, created_at)"
            " VALUES (?, ?, ?, ?)",
            (change.user_id, change.client_msg_id, change.message_id, change.created_at),
        )
    elif isinstance(change, GROUP_FILE_CHANGE_TYPES):
        apply_group_file_change(conn, change)
    elif isinstance(change, FEATURE_CHANGE_TYPES):
        apply_feature_change(conn, change)
    else:
        raise TypeError(f"unknown change {change!r}")


# --- schema and reads -----------------------------------------------------------------


def lock_directory(directory: Path) -> int | None:
    """Take the data directory's lock (released when the descriptor closes, also when the
    process dies). None where the platform has no flock."""
    if fcntl is None:
        return None
    fd = os.open(directory / LOCK_FILENAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise StoreUnavailable(
            f"the data directory {directory} is in use by another rpcchat server") from None
    return fd


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        current = 0 if row is None else int(row[0])
        if current > SCHEMA_VERSION:
            raise StoreUnavailable(
                f"database schema {current} is newer than this server knows ({SCHEMA_VERSION})"
            )
        for statements in _MIGRATIONS[current:]:
            for statement in statements:
                conn.execute(statement)
        if row is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        elif current != SCHEMA_VERSION:
            conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    if current != SCHEMA_VERSION:
        logger.info("database schema migrated from %d to %d", current, SCHEMA_VERSION)


def _event_from_row(row: sqlite3.Row | tuple[Any, ...]) -> EventRecord:
    return EventRecord(
        seq=row[0], type=row[1], ts=row[2], chat_id=row[3], target_id=row[4],
        actor_id=row[5], data=json.loads(row[6]), expires_at=row[7],
    )


def _load_snapshot(conn: sqlite3.Connection, *, window: int, recent_general: int) -> Snapshot:
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    events = [
        _event_from_row(row) for row in conn.execute(
            f"SELECT {_EVENT_COLUMNS} FROM events ORDER BY seq DESC LIMIT ?", (window,))
    ]
    events.reverse()
    floor = events[0].seq - 1 if len(events) >= window and events else 0
    # Unread counts only look above a cursor, so older messages need not be loaded.
    marks = [
        MessageMark(seq, chat_id, sender_id) for seq, chat_id, sender_id in conn.execute(
            "SELECT seq, chat_id, actor_id FROM events WHERE type = 'message'"
            " AND seq > (SELECT coalesce(min(cursor), 0) FROM users) ORDER BY seq")
    ]
    general, _ = _message_history(conn, chat_id=GENERAL, before=None, limit=recent_general)
    return Snapshot(
        users=[UserRow(*row) for row in conn.execute(
            "SELECT id, name, name_key, password_hash, created_at, cursor FROM users"
            " ORDER BY id")],
        sessions=[SessionRow(*row) for row in conn.execute(
            "SELECT id, user_id, token_hash FROM sessions WHERE revoked_at IS NULL")],
        chats=[ChatRow(*row) for row in conn.execute(
            "SELECT id, kind, name, owner_id, created_at FROM chats")],
        memberships=[MembershipRow(*row) for row in conn.execute(
            "SELECT chat_id, user_id, joined_seq, left_seq FROM memberships"
            " ORDER BY joined_seq, user_id")],
        recent_events=events,
        window_floor=floor,
        last_seq=int(meta.get("last_seq", 0)),
        last_message_id=int(meta.get("last_message_id", 0)),
        last_session_id=int(conn.execute("SELECT coalesce(max(id), 0) FROM sessions")
                            .fetchone()[0]),
        message_marks=marks,
        recent_general=general,
    )


def _message_history(
    conn: sqlite3.Connection, *, chat_id: str, before: int | None, limit: int
) -> tuple[list[Wire], bool]:
    if limit <= 0:
        return [], False
    rows = conn.execute(
        f"{MESSAGE_SELECT} WHERE m.chat_id = ? AND m.id < ? ORDER BY m.id DESC LIMIT ?",
        (chat_id, _MAX_ID if before is None else before, limit + 1),
    ).fetchall()
    more = len(rows) > limit
    messages = [message_from_row(row) for row in rows[:limit]]
    messages.reverse()
    return messages, more


def _find_client_message(
    conn: sqlite3.Connection, *, user_id: int, client_msg_id: str
) -> Wire | None:
    row = conn.execute(
        f"{MESSAGE_SELECT} JOIN client_msg_ids c ON c.message_id = m.id"
        " WHERE c.user_id = ? AND c.client_msg_id = ?",
        (user_id, client_msg_id),
    ).fetchone()
    return None if row is None else message_from_row(row)


def _visible_events(
    conn: sqlite3.Connection,
    *,
    user_id: int,
    memberships: Mapping[str, Sequence[Interval]],
    after: int,
    upto: int,
    limit: int,
) -> tuple[list[EventRecord], bool]:
    sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq > ? AND seq <= ?"
    params: list[Any] = [after, upto]
    chats = list(memberships)
    if not chats:
        sql += " AND target_id = ?"
        params.append(user_id)
    elif len(chats) <= _MAX_CHATS_IN_QUERY:
        sql += f" AND (target_id = ? OR chat_id IN ({', '.join('?' * len(chats))}))"
        params += [user_id, *chats]
    sql += " ORDER BY seq"
    found: list[EventRecord] = []
    # The SQL narrows by chat; membership intervals are checked here, row by row.
    for row in conn.execute(sql, params):
        if is_visible(user_id, memberships, row[0], row[3], row[4]):
            found.append(_event_from_row(row))
            if len(found) > limit:
                break
    return found[:limit], len(found) > limit

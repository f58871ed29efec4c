"""The write-ahead journal: record format, recovery, replay exactly once, rotation, and
reads that see every acknowledged write."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import pickle
import sqlite3
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import pytest

from rpcchat.domain import SqliteStore
from rpcchat.domain import journal as journal_module
from rpcchat.domain.journal import (
    CHANGE_TYPES,
    ChangeCodec,
    JournalError,
    JournalWriter,
    frame,
    journal_files,
    read_records,
    read_journal,
)
from rpcchat.domain.records import Change, EventRecord, NewChat, NewEvent, NewMessage, \
    NewUser, RememberClientMsgId
from rpcchat.domain.sqlite_store import DB_FILENAME, StoreClosed


def sample(hint: Any, seed: int) -> Any:
    """A value of type `hint` that differs by seed."""
    if get_origin(hint) in (Union, types.UnionType):
        return sample(next(arg for arg in get_args(hint) if arg is not type(None)), seed)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return instance(hint, seed)
    if hint is int:
        return seed
    if hint is float:
        return seed + 0.1
    if hint is str:
        return f"s{seed}\u00e9\ud83d\ude00"
    if hint is bool:
        return bool(seed % 2)
    if get_origin(hint) is dict or hint is dict:
        return {"k": seed, "nested": {"list": [1, 2.5, None, "x"]}, "none": None}
    raise AssertionError(f"no sample for {hint}")


def instance(cls: type, seed: int) -> Any:
    hints = get_type_hints(cls)
    return cls(*[sample(hints[f.name], seed + i) for i, f in enumerate(dataclasses.fields(cls))])


@pytest.mark.parametrize("cls", CHANGE_TYPES, ids=lambda cls: cls.__name__)
def test_every_change_type_round_trips(cls: type) -> None:
    codec = ChangeCodec()
    changes = [instance(cls, 1), instance(cls, 50)]
    assert codec.decode(codec.encode(changes)) == changes


def test_optional_fields_round_trip_as_none() -> None:
    codec = ChangeCodec()
    event = NewEvent(EventRecord(3, "message", 1.5, {"id": 1}))
    message = NewMessage(1, "general", 2, "hi", 1.5, 3)
    assert codec.decode(codec.encode([message, event])) == [message, event]


class Smuggled:
    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (os.getcwd, ())


@pytest.mark.parametrize("payload", [
    pickle.dumps((("NewChat", ("x", "group", "n", None, 0.0)), Smuggled())),  # a class
    pickle.dumps([("NewChat", ("x", "group", "n", None, 0.0))]),  # not a tuple
    pickle.dumps((("NoSuchChange", (1,)),)),
    pickle.dumps((("NewChat", ["x", "group", "n", None, 0.0]),)),  # fields not a tuple
    pickle.dumps((("NewChat", ("x",)),)),  # too few fields
    b"not a pickle at all",
    b"",
])
def test_a_damaged_payload_is_refused_without_running_anything(payload: bytes) -> None:
    with pytest.raises(ValueError):
        ChangeCodec().decode(payload)


def test_types_the_codec_cannot_carry_are_refused_when_it_is_built() -> None:
    @dataclasses.dataclass(frozen=True)
    class Odd:
        items: set[int]

    with pytest.raises(TypeError, match="cannot go to the journal"):
        ChangeCodec([Odd])


def test_read_records_stops_at_a_torn_or_damaged_record() -> None:
    first, second = frame(1, b"one"), frame(2, b"two")
    records, end = read_records(first + second)
    assert [(r.number, r.payload) for r in records] == [(1, b"one"), (2, b"two")]
    assert end == len(first + second)
    for cut in range(1, len(second)):
        records, end = read_records(first + second[:cut])
        assert [r.number for r in records] == [1] and end == len(first)
    damaged = first + second[:-1] + b"X"
    records, end = read_records(damaged)
    assert [r.number for r in records] == [1] and end == len(first)


def test_reading_cuts_a_torn_tail_of_the_newest_file(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    older = tmp_path / "rpcchat.journal.1"
    newest = tmp_path / "rpcchat.journal.2"
    older.write_bytes(frame(1, b"a") + frame(2, b"b") + b"\x00garbage")
    newest.write_bytes(frame(3, b"c") + frame(4, b"d")[:7])
    (tmp_path / "rpcchat.journal.x").write_bytes(b"not a journal name")
    with caplog.at_level(logging.WARNING):
        files = [(generation, [r.number for r in records])
                 for generation, records in read_journal(tmp_path)]
    assert files == [(1, [1, 2]), (2, [3])]
    assert newest.read_bytes() == frame(3, b"c")  # the torn record is gone
    assert older.read_bytes().endswith(b"garbage")  # damage in an older file is only logged
    assert "damaged" in caplog.text and "torn" in caplog.text


def test_a_failed_write_leaves_no_partial_record(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    writer = JournalWriter(tmp_path, ChangeCodec(), next_number=1, generation=1)
    writer.append([NewChat("a", "group", "a", None, 0.0)])
    real_write = os.write

    def short_write(fd: int, data: bytes) -> int:
        return real_write(fd, data[:10])

    monkeypatch.setattr(os, "write", short_write)
    with pytest.raises(JournalError, match="short write"):
        writer.append([NewChat("b", "group", "b", None, 0.0)])
    monkeypatch.setattr(os, "write", real_write)
    writer.append([NewChat("c", "group", "c", None, 0.0)])
    writer.close(all_applied=False)
    records = [record for _, found in read_journal(tmp_path) for record in found]
    assert [r.number for r in records] == [1, 2]
    assert [ChangeCodec().decode(r.payload)[0] for r in records] == [
        NewChat("a", "group", "a", None, 0.0), NewChat("c", "group", "c", None, 0.0)]


def chats_in(data_dir: Path) -> list[str]:
    conn = sqlite3.connect(data_dir / DB_FILENAME)
    try:
        return [row[0] for row in conn.execute(
            "SELECT id FROM chats WHERE kind = 'group' ORDER BY id")]
    finally:
        conn.close()


async def crash(store: SqliteStore) -> None:
    """Stop a store the way a killed process would: nothing more reaches SQLite, the
    journal stays as it is."""
    writer = store._writer
    assert writer is not None and store._journal is not None
    store._accepting = False
    store._journal.close(all_applied=False)
    store._journal = None
    await writer.stop()
    if store._reader is not None:
        await store._reader.stop()
    store._unlock()  # the kernel releases a dead process's lock


async def journal_only(data_dir: Path) -> SqliteStore:
    """An open store whose writes reach the journal and never the database."""
    store = SqliteStore(data_dir)
    await store.open(window=10, recent_general=10)
    assert store._writer is not None
    store._writer.apply = lambda changes, number: None  # type: ignore[method-assign]
    return store


async def test_acknowledged_writes_are_replayed_once_after_a_crash(data_dir: Path) -> None:
    store = await journal_only(data_dir)
    for n in range(5):
        await store.submit([NewChat(f"c{n}", "group", "g", None, 0.0)])
    await crash(store)
    assert chats_in(data_dir) == []  # only the journal has them

    store = SqliteStore(data_dir)
    await store.open(window=10, recent_general=10)
    assert chats_in(data_dir) == [f"c{n}" for n in range(5)]
    assert journal_files(data_dir)[-1][0] == 2  # a new generation; the replayed one is gone
    await store.submit([NewChat("later", "group", "g", None, 0.0)])
    await crash(store)

    store = SqliteStore(data_dir)  # replays only what the database does not hold yet
    await store.open(window=10, recent_general=10)
    await store.close()
    assert chats_in(data_dir) == [*[f"c{n}" for n in range(5)], "later"]
    assert journal_files(data_dir) == []  # a clean close needs no journal


async def test_a_read_sees_every_acknowledged_write(data_dir: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rpcchat.domain.sqlite_store.JOURNAL_LINGER", 30.0)
    store = SqliteStore(data_dir)
    await store.open(window=10, recent_general=10)
    for n in range(3):
        await store.submit([NewChat(f"c{n}", "group", "g", None, 0.0)])
    # The writer would wait 30 s for more; the read tells it not to.
    found = await store.read_job(
        lambda conn: conn.execute("SELECT count(*) FROM chats WHERE kind = 'group'")
        .fetchone()[0])
    assert found == 3
    await store.close()


async def test_journal_files_rotate_and_go_once_applied(data_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal_module, "ROTATE_BYTES", 400)
    monkeypatch.setattr(JournalWriter.__init__, "__kwdefaults__", {"rotate_bytes": 400})
    store = SqliteStore(data_dir)
    await store.open(window=10, recent_general=10)
    for n in range(40):
        await store.submit([NewChat(f"c{n:02}", "group", "g", None, 0.0)])
    await store.read_job(lambda conn: None)  # every write applied
    assert len(journal_files(data_dir)) == 1  # older generations were deleted
    await crash(store)
    store = SqliteStore(data_dir)
    await store.open(window=10, recent_general=10)
    await store.close()
    assert chats_in(data_dir) == [f"c{n:02}" for n in range(40)]


async def test_replay_spans_several_generations(data_dir: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(JournalWriter.__init__, "__kwdefaults__", {"rotate_bytes": 300})
    store = await journal_only(data_dir)
    for n in range(30):
        await store.submit([NewChat(f"c{n:02}", "group", "g", None, 0.0)])
    await crash(store)
    assert len(journal_files(data_dir)) > 3
    store = SqliteStore(data_dir)
    await store.open(window=10, recent_general=10)
    await store.close()
    assert chats_in(data_dir) == [f"c{n:02}" for n in range(30)]


async def test_a_record_the_database_refuses_is_skipped_and_logged(
        data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = SqliteStore(data_dir)
    await store.open(window=10, recent_general=10)
    for name in ["a", "b"]:
        await store.submit([NewChat(name, "group", "g", None, 0.0)])
    with caplog.at_level(logging.ERROR):
        # The service never sends a duplicate chat id; if a defect did, its neighbours live.
        await store.submit([NewChat("a", "group", "duplicate", None, 0.0)])
        await store.submit([NewChat("c", "group", "g", None, 0.0)])
        await store.read_job(lambda conn: None)
    assert "refused by the database and is skipped" in caplog.text
    await crash(store)
    caplog.clear()
    store = SqliteStore(data_dir)
    with caplog.at_level(logging.ERROR):
        await store.open(window=10, recent_general=10)  # the skipped record is not retried
    await store.close()
    assert "refused" not in caplog.text
    assert chats_in(data_dir) == ["a", "b", "c"]


async def test_a_journal_write_failure_is_not_acknowledged(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SqliteStore(data_dir)
    await store.open(window=10, recent_general=10)

    def disk_full(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(JournalError):
        store.submit([NewChat("x", "group", "g", None, 0.0)])
    monkeypatch.undo()
    await store.submit([NewChat("y", "group", "g", None, 0.0)])
    await store.close()
    assert chats_in(data_dir) == ["y"]


async def test_full_synchronous_commits_before_acknowledging(data_dir: Path) -> None:
    """synchronous=FULL writes go to SQLite directly; a refused write fails its caller."""
    store = SqliteStore(data_dir, synchronous="FULL")
    await store.open(window=10, recent_general=10)
    await store.submit([NewChat("a", "group", "g", None, 0.0)])
    assert chats_in(data_dir) == ["a"]
    assert journal_files(data_dir) == []
    with pytest.raises(sqlite3.IntegrityError):
        await store.submit([NewChat("a", "group", "duplicate", None, 0.0)])
    await store.close()


async def test_a_backlog_is_applied_without_lingering_per_batch(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lingering is for a quiet queue: full batches, and everything queued at close, are
    applied at once."""
    monkeypatch.setattr("rpcchat.domain.sqlite_store.JOURNAL_LINGER", 30.0)
    store = SqliteStore(data_dir, max_batch=8)
    await store.open(window=10, recent_general=10)
    for n in range(100):
        await store.submit([NewChat(f"c{n:03}", "group", "g", None, 0.0)])
    await asyncio.wait_for(store.close(), timeout=5)
    assert chats_in(data_dir) == [f"c{n:03}" for n in range(100)]


def test_the_journal_knows_every_kind_of_change() -> None:
    """A Change type missing from the codec could not be journaled at all."""
    def members(hint: Any) -> set[Any]:
        args = get_args(hint)
        return set().union(*(members(arg) for arg in args)) if args else {hint}

    assert members(Change) == set(CHANGE_TYPES)


def test_a_failed_rotation_keeps_the_current_file(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    writer = JournalWriter(tmp_path, ChangeCodec(), next_number=1, generation=1,
                           rotate_bytes=100)  # a record here is 69 bytes
    writer.append([NewChat("a", "group", "a", None, 0.0)])
    real_open = os.open

    def no_more_files(path: Any, flags: int, mode: int = 0o777) -> int:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(os, "open", no_more_files)
    with pytest.raises(OSError):
        writer.append([NewChat("b", "group", "b", None, 0.0)])
    monkeypatch.setattr(os, "open", real_open)
    writer.append([NewChat("c", "group", "c", None, 0.0)])  # rotates now
    writer.close(all_applied=False)
    found = [(generation, [r.number for r in records])
             for generation, records in read_journal(tmp_path)]
    assert found == [(1, [1]), (2, [2])]


async def test_writes_are_refused_once_the_writer_thread_is_gone(data_dir: Path) -> None:
    store = SqliteStore(data_dir)
    await store.open(window=10, recent_general=10)
    assert store._writer is not None
    await store._writer.stop()  # as if its thread had died
    with pytest.raises(StoreClosed, match="storage stopped"):
        store.submit([NewChat("x", "group", "g", None, 0.0)])
    await store.close()
    assert journal_files(data_dir) == []  # nothing was acknowledged that was not applied


async def test_reads_fail_at_once_when_the_writer_thread_is_gone(data_dir: Path) -> None:
    store = await journal_only(data_dir)
    await store.submit([NewChat("x", "group", "g", None, 0.0)])  # never applied
    assert store._writer is not None
    await store._writer.stop()  # as if its thread had died
    with pytest.raises(StoreClosed, match="storage stopped"):
        await asyncio.wait_for(store.read_job(lambda conn: None), timeout=5)
    with pytest.raises(StoreClosed):
        await asyncio.wait_for(store.write_job(lambda conn: None), timeout=5)
    await store.close()
    store = SqliteStore(data_dir)  # the journal kept the write
    await store.open(window=10, recent_general=10)
    await store.close()
    assert chats_in(data_dir) == ["x"]


async def test_a_full_synchronous_open_applies_what_a_normal_run_journaled(
        data_dir: Path) -> None:
    store = await journal_only(data_dir)
    for n in range(3):
        await store.submit([NewChat(f"c{n}", "group", "g", None, 0.0)])
    await crash(store)
    store = SqliteStore(data_dir, synchronous="FULL")
    await store.open(window=10, recent_general=10)
    assert chats_in(data_dir) == ["c0", "c1", "c2"]
    assert journal_files(data_dir) == []
    await store.submit([NewChat("later", "group", "g", None, 0.0)])
    await store.close()
    store = SqliteStore(data_dir)  # nothing old is applied a second time
    await store.open(window=10, recent_general=10)
    await store.close()
    assert chats_in(data_dir) == ["c0", "c1", "c2", "later"]


async def test_a_full_disk_stops_storage_and_the_journal_keeps_the_write(
        data_dir: Path) -> None:
    store = SqliteStore(data_dir)
    await store.open(window=10, recent_general=10)
    pages = await store.write_job(lambda conn: conn.execute("PRAGMA page_count").fetchone()[0])
    # The database may not grow any more: SQLite reports a full disk.
    await store.write_job(lambda conn: conn.execute(f"PRAGMA max_page_count = {pages}"))
    await store.submit([NewChat("small", "group", "g", None, 0.0)])
    await store.submit([NewChat("big", "group", "x" * 100_000, None, 0.0)])  # acknowledged
    with pytest.raises(StoreClosed, match="storage stopped"):
        await asyncio.wait_for(store.read_job(lambda conn: None), timeout=5)
    with pytest.raises(StoreClosed, match="storage stopped"):
        store.submit([NewChat("refused", "group", "g", None, 0.0)])
    await asyncio.wait_for(store.close(), timeout=5)
    assert journal_files(data_dir) != []
    store = SqliteStore(data_dir)  # room again: the journal is applied
    await store.open(window=10, recent_general=10)
    await store.close()
    assert chats_in(data_dir) == ["big", "small"]
    assert journal_files(data_dir) == []


async def test_a_client_msg_id_look_up_waits_only_for_its_own_key(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every send with a client_msg_id looks it up: only a key still in the journal makes
    the look-up wait for the database to catch up."""
    monkeypatch.setattr("rpcchat.domain.sqlite_store.JOURNAL_LINGER", 30.0)
    store = SqliteStore(data_dir)
    await store.open(window=10, recent_general=10)
    await store.submit([NewUser(1, "alice", "alice", "x", 0.0, 0),
                        NewChat("general", "general", "general", None, 0.0)])
    await store.read_job(lambda conn: None)
    message = NewMessage(1, "general", 1, "hi", 1.0, 1, client_msg_id="c1")
    await store.submit([message, RememberClientMsgId(1, "c1", 1, 1.0)])
    await store.submit([NewChat("g", "group", "g", None, 0.0)])  # pending, unrelated
    assert store._writer is not None
    waited: list[bool] = []
    real_hurry = store._writer.hurry
    store._writer.hurry = lambda: (waited.append(True), real_hurry())[1]  # type: ignore
    assert await asyncio.wait_for(store.find_client_message(1, "c2"), 5) is None
    assert waited == []  # another key: answered without waiting for the journal
    found = await asyncio.wait_for(store.find_client_message(1, "c1"), 5)
    assert found is not None and found["id"] == 1 and waited == [True]
    assert store._pending_keys == {}  # applied: nothing pending any more
    await store.close()

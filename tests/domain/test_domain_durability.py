"""What survives a restart, and a killed process."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from domain_helpers import OpenService, login, texts

from rpcchat.domain import SqliteStore
from rpcchat.domain.records import NewChat
from rpcchat.domain.sqlite_store import DB_FILENAME, SCHEMA_VERSION, StoreClosed, \
    StoreUnavailable, _DbWorker


async def test_seq_and_message_ids_never_repeat_across_restarts(
    open_service: OpenService,
) -> None:
    seen_seqs: list[int] = []
    seen_ids: list[int] = []
    for round_number in range(3):
        service = await open_service()
        alice = await login(service, "alice")
        since = 0
        for number in range(3):
            seen_ids.append((await service.send(alice, f"r{round_number}m{number}"))
                            ["message"]["id"])
        events = (await service.poll(alice, since=since, limit=500, wait=False))["events"]
        seen_seqs += [e["seq"] for e in events if e["seq"] not in seen_seqs]
        await service.close()
    assert seen_seqs == sorted(seen_seqs) and len(seen_seqs) == len(set(seen_seqs))
    assert seen_ids == sorted(seen_ids) and len(seen_ids) == len(set(seen_ids)) == 9


async def test_seq_does_not_go_back_when_old_events_are_deleted(
    open_service: OpenService, data_dir: Path
) -> None:
    service = await open_service()
    alice = await login(service, "alice")
    await service.send(alice, "soon gone")
    head = service.head
    await service.close()
    conn = sqlite3.connect(data_dir / DB_FILENAME)
    with conn:
        conn.execute("DELETE FROM events")
    conn.close()
    reopened = await open_service()
    assert reopened.head == head
    message = (await reopened.send("alice", "after"))["message"]
    assert (await reopened.poll(alice, since=head, wait=False))["events"][0]["seq"] == head + 1
    assert message["text"] == "after"


async def test_unread_after_a_restart(open_service: OpenService) -> None:
    service = await open_service()
    alice = await login(service, "alice")
    bob = await login(service, "bob")
    await service.poll(bob, since=service.head, wait=False)
    await service.send(alice, "g1")
    await service.send(alice, "d1", to="bob")
    await service.send(alice, "g2")
    await service.close()

    reopened = await open_service()
    again = await reopened.connect("bob", "secret")
    assert again["unread"] == 3
    session = reopened.authenticate(again["token"])
    first = await reopened.poll(session, wait=False)
    assert texts(first["events"]) == ["g1", "d1", "g2"]
    await reopened.poll(session, since=first["next"], wait=False)
    await reopened.close()

    third = await open_service()
    later = await third.connect("bob", "secret")
    assert later["unread"] == 0
    assert (await third.poll(third.authenticate(later["token"]), wait=False))["events"] == []
    status = await third.status(third.authenticate(later["token"]))
    assert {c["id"]: c["unread"] for c in status["me"]["chats"]} == {
        "general": 0, "dm:alice:bob": 0}


async def test_everything_is_back_after_a_restart(open_service: OpenService) -> None:
    service = await open_service()
    alice = await login(service, "Alice")
    await login(service, "bob")
    for number in range(25):
        await service.send(alice, f"m{number}")
    await service.send(alice, "private", to="bob")
    head = service.head
    await service.close()

    reopened = await open_service()
    assert reopened.head == head
    bob = reopened.authenticate((await reopened.connect("BOB", "secret"))["token"])
    assert bob.user == "bob"
    history = await reopened.history(bob, "dm:Alice:bob")
    assert texts([{"type": "message", "data": m} for m in history["messages"]]) == ["private"]
    connect = await reopened.connect("carol", "secret")
    assert [m["text"] for m in connect["history"]] == [f"m{n}" for n in range(5, 25)]
    # A poll from before the restart continues seamlessly.
    events = (await reopened.poll(bob, since=0, limit=500, wait=False))["events"]
    assert texts(events)[-2:] == ["m24", "private"]


async def test_schema_version_is_recorded(open_service: OpenService, data_dir: Path) -> None:
    service = await open_service()
    await service.close()
    conn = sqlite3.connect(data_dir / DB_FILENAME)
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


async def test_a_newer_schema_is_refused(data_dir: Path) -> None:
    store = SqliteStore(data_dir)
    await store.open(window=10, recent_general=10)
    await store.close()
    set_schema_version(data_dir, 99)
    with pytest.raises(StoreUnavailable, match="newer"):
        await SqliteStore(data_dir).open(window=10, recent_general=10)
    set_schema_version(data_dir, SCHEMA_VERSION)
    store = SqliteStore(data_dir)  # the failed open let go of the directory
    await store.open(window=10, recent_general=10)
    await store.close()


def set_schema_version(data_dir: Path, version: int) -> None:
    conn = sqlite3.connect(data_dir / DB_FILENAME)
    with conn:
        conn.execute("UPDATE schema_version SET version = ?", (version,))
    conn.close()


async def test_store_options_and_closed_store(data_dir: Path) -> None:
    with pytest.raises(ValueError):
        SqliteStore(data_dir, synchronous="OFF")
    store = SqliteStore(data_dir, synchronous="full")
    await store.open(window=10, recent_general=10)
    await store.close()
    with pytest.raises(StoreClosed):
        store.submit([NewChat("x", "group", "x", None, 0.0)])
    with pytest.raises(StoreClosed):
        await store.message_history("general", None, 10)


async def test_a_failing_write_does_not_sink_its_group(data_dir: Path) -> None:
    # With synchronous=FULL a write is acknowledged by its commit, so a refused one fails
    # its caller; journaled writes: test_domain_journal.py.
    store = SqliteStore(data_dir, synchronous="FULL")
    await store.open(window=10, recent_general=10)
    good = [store.submit([NewChat(f"ok{n}", "group", "g", None, 0.0)]) for n in range(5)]
    bad = store.submit([NewChat("ok0", "group", "duplicate id", None, 0.0)])
    more = store.submit([NewChat("ok9", "group", "g", None, 0.0)])
    for future in [*good, more]:
        await future
    with pytest.raises(sqlite3.IntegrityError):
        await bad
    await store.close()


KILL_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from rpcchat.clock import SystemClock
    from rpcchat.config import ServerConfig
    from rpcchat.domain import ChatService, ScryptHasher, SqliteStore

    async def main():
        data_dir = Path(sys.argv[1])
        service = ChatService(SqliteStore(data_dir), ServerConfig(data_dir=data_dir),
                              SystemClock(), password_hasher=ScryptHasher(n=2, r=1, p=1))
        await service.start()
        result = await service.connect("alice", "secret")
        print("token", result["token"], flush=True)
        number = 0
        while True:
            message = await service.send("alice", f"m{number}")
            print("sent", message["message"]["id"], flush=True)
            number += 1

    asyncio.run(main())
""")


async def open_and_close(data_dir: Path) -> None:
    store = SqliteStore(data_dir)
    await store.open(window=10, recent_general=10)
    await store.close()


def test_acknowledged_writes_survive_kill_9(data_dir: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    child = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(data_dir)],
                             stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None
    token = child.stdout.readline().split()[1]
    acknowledged = 0
    for line in child.stdout:
        acknowledged = int(line.split()[1])
        if acknowledged >= 200:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()

    asyncio.run(open_and_close(data_dir))  # a restart: the journal is applied
    conn = sqlite3.connect(data_dir / DB_FILENAME)
    stored = conn.execute("SELECT max(id) FROM messages").fetchone()[0]
    token_rows = conn.execute("SELECT count(*) FROM sessions").fetchone()[0]
    conn.close()
    assert stored >= acknowledged, (stored, acknowledged)
    assert token_rows == 1 and token


async def test_one_data_directory_serves_one_store_at_a_time(data_dir: Path) -> None:
    first = SqliteStore(data_dir)
    await first.open(window=10, recent_general=10)
    with pytest.raises(StoreUnavailable, match="in use by another rpcchat server"):
        await SqliteStore(data_dir).open(window=10, recent_general=10)
    await first.close()
    again = SqliteStore(data_dir)  # released by close
    await again.open(window=10, recent_general=10)
    await again.close()


async def test_a_database_thread_that_ended_refuses_jobs_at_once() -> None:
    def cannot_connect() -> sqlite3.Connection:
        raise sqlite3.OperationalError("unable to open database file")

    worker = _DbWorker("test-db-worker", cannot_connect, asyncio.get_running_loop(), 1)
    worker.start()
    await worker.stopped  # the thread failed before any job was queued
    with pytest.raises(sqlite3.OperationalError, match="unable to open"):
        await asyncio.wait_for(worker.call(lambda conn: None), timeout=5)
    await asyncio.wait_for(worker.stop(), timeout=5)


async def test_a_database_that_cannot_be_opened_fails_the_open(data_dir: Path) -> None:
    (data_dir / DB_FILENAME).mkdir(parents=True)  # SQLite cannot open a directory
    for _ in range(30):  # the writer thread fails before or after open() queues its job
        with pytest.raises(sqlite3.OperationalError):
            await asyncio.wait_for(SqliteStore(data_dir).open(window=10, recent_general=10),
                                   timeout=5)


async def test_reads_fail_at_once_when_the_reader_thread_is_gone(data_dir: Path) -> None:
    store = SqliteStore(data_dir)
    await store.open(window=10, recent_general=10)
    assert store._reader is not None
    await store._reader.stop()  # as if its thread had died
    with pytest.raises(StoreClosed):
        await asyncio.wait_for(store.message_history("general", None, 10), timeout=5)
    await store.close()

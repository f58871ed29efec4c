"""Schema step 2: a database made before it is migrated, and what it stores."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from features_helpers import FeatureChat, history_texts
from rpcchat.domain.sqlite_store import _MIGRATIONS, DB_FILENAME, SCHEMA_VERSION


def make_schema_1_database(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    conn = sqlite3.connect(data_dir / DB_FILENAME)
    try:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version (version) VALUES (1)")
        for statement in _MIGRATIONS[0]:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


async def test_a_schema_1_database_is_migrated(chat: FeatureChat) -> None:
    make_schema_1_database(chat.data_dir)
    await chat.start(report_threshold=1, ban_duration=50, message_ttl=100)
    alice, bob = await chat.users("alice", "bob")
    await alice.call("send", text="kept", delay=10)
    await alice.call("report", user="bob")
    assert await chat.rows("SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    tables = {row[0] for row in await chat.rows("SELECT name FROM sqlite_master")}
    assert {"rate_counts", "standings", "reports", "scheduled"} <= tables
    await chat.restart()
    alice = await chat.reconnect(alice)
    assert len((await alice.call("scheduled.list"))["scheduled"]) == 1
    chat.clock.advance(10)
    await chat.run_due()
    assert await history_texts(alice) == ["kept"]

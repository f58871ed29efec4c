"""Schema step 3 (join links, join requests, uploads, messages by file): a database made by
an earlier version opens, migrates, and then serves groups and files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gf_support import People, StartServer, download, upload
from rpcchat.domain.sqlite_store import _MIGRATIONS, DB_FILENAME, SCHEMA_VERSION


def make_database_at(data_dir: Path, version: int) -> None:
    data_dir.mkdir(parents=True)
    with sqlite3.connect(data_dir / DB_FILENAME) as conn:
        for statements in _MIGRATIONS[:version]:
            for statement in statements:
                conn.execute(statement)
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))


def tables(data_dir: Path) -> set[str]:
    with sqlite3.connect(data_dir / DB_FILENAME) as conn:
        return {name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}


async def test_databases_of_earlier_versions_migrate(start_server: StartServer,
                                                     people: People, tmp_path: Path) -> None:
    assert SCHEMA_VERSION >= 3
    for version in (1, 2):
        data_dir = tmp_path / f"v{version}"
        make_database_at(data_dir, version)
        server = await start_server(data_dir=data_dir)
        assert {"chat_links", "join_requests", "uploads", "messages_by_file"} <= tables(data_dir)
        alice, bob = await people.login(server, f"alice{version}", f"bob{version}")
        group = (await alice.call("chat.create", name="New", members=[bob.user]))["chat"]["id"]
        message = await upload(alice, b"migrated", "m.txt", chat=group)
        assert await download(bob, message["file"]["id"]) == b"migrated"
        await server.close()


async def test_a_group_without_a_stored_link_gets_one(start_server: StartServer,
                                                      people: People) -> None:
    server = await start_server()
    alice, carol = await people.login(server, "alice", "carol")
    group = (await alice.call("chat.create", name="Old"))["chat"]["id"]
    first = (await alice.call("chat.link", chat=group))["token"]
    data_dir = server.config.data_dir
    await server.close()
    with sqlite3.connect(data_dir / DB_FILENAME) as conn:
        conn.execute("DELETE FROM chat_links")
    server = await start_server(data_dir=data_dir)
    await people.move_to(server)
    token = (await people["alice"].call("chat.link", chat=group))["token"]
    assert token != first
    joined = await people["carol"].call("chat.join", link=token)
    assert joined["status"] == "pending"
    await server.close()
    server = await start_server(data_dir=data_dir)
    await people.move_to(server)
    assert (await people["alice"].call("chat.link", chat=group))["token"] == token

"""Message lifetime (--message-ttl): gone from history, poll, unread counts and disk."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Sequence
from pathlib import Path

from features_helpers import FeatureChat, events, history_texts, of_type, texts
from rpc_testing import CHEAP_HASHER, NOT_FOUND, error_of
from rpcchat.clock import ManualClock, SystemClock
from rpcchat.config import ServerConfig
from rpcchat.domain import ChatService, SqliteStore
from rpcchat.domain.feature_records import ExpiredMessage


async def test_every_message_carries_its_expiry(chat: FeatureChat) -> None:
    await chat.start(message_ttl=60)
    alice, = await chat.users("alice")
    message = (await alice.call("send", text="hi"))["message"]
    assert message["expires_at"] == message["ts"] + 60
    history = (await alice.call("history"))["messages"]
    assert history[-1]["expires_at"] == message["ts"] + 60


async def test_ttl_zero_keeps_messages_forever(chat: FeatureChat) -> None:
    await chat.start(message_ttl=0)
    alice, = await chat.users("alice")
    message = (await alice.call("send", text="forever"))["message"]
    assert message["expires_at"] is None
    chat.clock.advance(10 * 365 * 86400)
    await chat.run_due()
    assert await history_texts(alice) == ["forever"]


async def test_expired_message_leaves_history_poll_and_connect(chat: FeatureChat) -> None:
    await chat.start(message_ttl=10)
    alice, bob = await chat.users("alice", "bob")
    await alice.call("send", text="short-lived")
    chat.clock.advance(5)
    await alice.call("send", text="younger")
    chat.clock.advance(5)  # the first one expires exactly now
    # Before any deletion ran, reads already hide it: it is never delivered late.
    assert await history_texts(bob) == ["younger"]
    assert texts(await events(bob)) == ["younger"]
    carol, = await chat.users("carol")
    connected = await carol.call("connect", name="carol", password="secret")
    assert [message["text"] for message in connected["history"]] == ["younger"]
    chat.clock.advance(5)
    assert await history_texts(bob) == []
    assert texts(await events(bob)) == []


async def test_expired_rows_are_deleted_from_disk(chat: FeatureChat) -> None:
    await chat.start(message_ttl=10)
    alice, = await chat.users("alice")
    await alice.call("send", text="secret plans", client_msg_id="c1")
    assert await chat.rows("SELECT count(*) FROM messages") == [(1,)]
    chat.clock.advance(10)
    await chat.run_due()
    assert await chat.rows("SELECT count(*) FROM messages") == [(0,)]
    assert await chat.rows("SELECT count(*) FROM events WHERE data LIKE '%secret plans%'") == [(0,)]
    assert await chat.rows("SELECT count(*) FROM client_msg_ids") == [(0,)]


async def test_unread_counts_drop_expired_messages(chat: FeatureChat) -> None:
    await chat.start(message_ttl=10)
    alice, bob = await chat.users("alice", "bob")
    await alice.call("send", text="one")
    chat.clock.advance(5)
    await alice.call("send", text="two")
    assert (await bob.call("status"))["me"]["chats"][0]["unread"] == 2
    chat.clock.advance(5)
    await chat.run_due()
    status = await bob.call("status")
    assert status["me"]["chats"][0]["unread"] == 1
    assert (await bob.call("poll", timeout=0))["unread"] == 1
    chat.clock.advance(5)
    await chat.run_due()
    assert (await bob.call("poll", timeout=0))["unread"] == 0


async def test_comments_expire_with_their_parent(chat: FeatureChat) -> None:
    await chat.start(message_ttl=10)
    alice, bob = await chat.users("alice", "bob")
    parent = (await alice.call("send", text="parent"))["message"]
    chat.clock.advance(8)
    comment = (await bob.call("comment", message_id=parent["id"], text="reply"))["message"]
    assert comment["expires_at"] == parent["expires_at"]  # not its own ts + 10
    chat.clock.advance(2)
    await chat.run_due()
    assert await history_texts(bob) == []
    assert await chat.rows("SELECT count(*) FROM messages") == [(0,)]


async def test_comment_keeps_its_parents_expiry_when_the_ttl_changes(
        chat: FeatureChat) -> None:
    await chat.start(message_ttl=10)
    alice, = await chat.users("alice")
    parent = (await alice.call("send", text="parent"))["message"]
    await chat.restart(message_ttl=0)  # messages from now on never expire ...
    alice = await chat.reconnect(alice)
    comment = (await alice.call("comment", message_id=parent["id"], text="c"))["message"]
    assert comment["expires_at"] == parent["expires_at"]  # ... but a comment goes with it
    await chat.restart(message_ttl=100)
    alice = await chat.reconnect(alice)
    chat.clock.advance(10)
    await chat.run_due()
    assert await history_texts(alice) == []


async def test_expired_message_cannot_be_commented(chat: FeatureChat) -> None:
    await chat.start(message_ttl=10)
    alice, = await chat.users("alice")
    parent = (await alice.call("send", text="parent"))["message"]
    chat.clock.advance(10)  # expired, not yet deleted
    error = await error_of(alice, "comment", message_id=parent["id"], text="late")
    assert error["code"] == NOT_FOUND
    await chat.run_due()  # deleted
    error = await error_of(alice, "comment", message_id=parent["id"], text="late")
    assert error["code"] == NOT_FOUND


async def test_a_retry_after_expiry_makes_a_new_message(chat: FeatureChat) -> None:
    await chat.start(message_ttl=10)
    alice, = await chat.users("alice")
    first = (await alice.call("send", text="x", client_msg_id="same"))["message"]
    chat.clock.advance(10)
    await chat.run_due()
    second = (await alice.call("send", text="x", client_msg_id="same"))["message"]
    assert second["id"] != first["id"]
    assert await history_texts(alice) == ["x"]


async def test_lifetime_holds_across_a_restart(chat: FeatureChat) -> None:
    await chat.start(message_ttl=10)
    alice, bob = await chat.users("alice", "bob")
    kept = (await alice.call("send", text="before restart"))["message"]
    await chat.restart()
    bob = await chat.reconnect(bob)
    after = (await bob.call("history"))["messages"]
    assert [(m["text"], m["expires_at"]) for m in after] == [("before restart",
                                                              kept["expires_at"])]
    assert (await bob.call("poll", timeout=0))["unread"] == 1
    await chat.live().close()
    chat.clock.advance(10)  # expires while the server is down
    await chat.start(**chat.settings)
    bob = await chat.reconnect(bob)
    # Deleted during start-up: not in history, not in poll, not counted, not on disk.
    assert await history_texts(bob) == []
    result = await bob.call("poll", timeout=0)
    assert texts(result["events"]) == [] and result["unread"] == 0
    assert await chat.rows("SELECT count(*) FROM messages") == [(0,)]


async def test_one_timer_waits_for_the_earliest_expiry(chat: FeatureChat) -> None:
    server = await chat.start(message_ttl=10)
    alice, = await chat.users("alice")
    lifetime = server.service.rules.lifetime
    assert lifetime.next_due is None  # nothing expires yet
    first = (await alice.call("send", text="a"))["message"]
    chat.clock.advance(3)
    await alice.call("send", text="b")
    assert lifetime.next_due == first["expires_at"]
    chat.clock.advance(7)
    await chat.run_due()
    assert lifetime.next_due == first["expires_at"] + 3
    await chat.restart()
    assert chat.live().service.rules.lifetime.next_due == first["expires_at"] + 3


async def test_expiry_hook_gets_the_deleted_messages(chat: FeatureChat) -> None:
    server = await chat.start(message_ttl=10)
    seen: list[ExpiredMessage] = []

    def hook(expired: Sequence[ExpiredMessage]) -> None:
        seen.extend(expired)

    server.service.add_expiry_hook(hook)
    alice, = await chat.users("alice")
    message = (await alice.call("send", text="a"))["message"]
    chat.clock.advance(10)
    await chat.run_due()
    assert [(item.message_id, item.chat_id, item.file_id) for item in seen] == [
        (message["id"], "general", None)]


async def test_expiry_runs_on_its_own_timer(chat: FeatureChat) -> None:
    """The real clock: nobody calls run_due, the timer deletes the message itself."""
    await chat.start(clock=SystemClock(), message_ttl=0.2)
    alice, bob = await chat.users("alice", "bob")
    await alice.call("send", text="fleeting")
    assert await history_texts(bob) == ["fleeting"]
    deadline = time.monotonic() + 5
    while await chat.rows("SELECT count(*) FROM messages") != [(0,)]:
        assert time.monotonic() < deadline, "the expired message was never deleted"
        await asyncio.sleep(0.02)
    assert await history_texts(bob) == []
    assert (await bob.call("poll", timeout=0))["unread"] == 0


async def test_scheduled_rows_go_with_their_lifetime(chat: FeatureChat) -> None:
    await chat.start(message_ttl=10)
    alice, = await chat.users("alice")
    sent = (await alice.call("send", text="later", delay=5))["scheduled"]
    cancelled = (await alice.call("send", text="never", delay=5))["scheduled"]
    await alice.call("scheduled.cancel", id=cancelled["id"])
    chat.clock.advance(5)
    await chat.run_due()
    assert len(await chat.rows("SELECT id FROM scheduled")) == 2
    chat.clock.advance(10)
    await chat.run_due()
    assert await chat.rows("SELECT id FROM scheduled") == []
    assert of_type(await events(alice), "scheduled.sent") == []
    error = await error_of(alice, "scheduled.cancel", id=sent["id"])
    assert error["code"] == NOT_FOUND  # forgotten with its message


async def test_store_path_of_poll_hides_expired_events(tmp_path: Path) -> None:
    """Events older than the in-memory window come from SQLite; expired ones are skipped
    there too, even before they are deleted."""
    clock = ManualClock()
    data_dir = tmp_path / "data"
    service = ChatService(SqliteStore(data_dir),
                          ServerConfig(data_dir=data_dir, message_ttl=10, rate_limit=0),
                          clock, password_hasher=CHEAP_HASHER, event_window=2)
    await service.start()
    try:
        alice = service.authenticate((await service.connect("alice", "pw"))["token"])
        bob = service.authenticate((await service.connect("bob", "pw"))["token"])
        await service.send(alice, "old")
        clock.advance(5)
        for number in range(5):
            await service.send(alice, f"new {number}")
        clock.advance(5)  # "old" expires; still stored, outside the window
        result = await service.poll(bob, since=0, timeout=0, limit=3)
        found = result["events"]
        while result["more"]:
            result = await service.poll(bob, since=result["next"], timeout=0, limit=3)
            found += result["events"]
        assert texts(found) == [f"new {number}" for number in range(5)]
    finally:
        await service.close()


async def test_a_files_bytes_go_with_its_message(chat: FeatureChat) -> None:
    server = await chat.start(message_ttl=10)
    alice, bob = await chat.users("alice", "bob")
    data = b"attachment bytes"
    upload = await alice.call("file.begin", name="a.txt", size=len(data))
    await alice.call("file.put", upload_id=upload["upload_id"], offset=0,
                     data=base64.b64encode(data).decode())
    message = (await alice.call("file.finish", upload_id=upload["upload_id"]))["message"]
    file_id = message["file"]["id"]
    assert message["expires_at"] == message["ts"] + 10
    blob = server.service.files.blobs.path(file_id)
    assert blob.exists()
    chat.clock.advance(10)
    assert (await error_of(bob, "file.get", file_id=file_id))["code"] == NOT_FOUND
    await chat.run_due()
    assert not blob.exists()
    assert (await error_of(alice, "file.get", file_id=file_id))["code"] == NOT_FOUND

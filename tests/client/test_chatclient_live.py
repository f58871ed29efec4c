"""ChatClient against the real rpcchat server (started in-process on a free port)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncGenerator

import pytest

from live_rpcchat import LiveServer
from rpcchat.client import (
    CONFLICT, CURSOR_AHEAD, UNAUTHORIZED, ChatClient, Event, ReconnectPolicy, RpcCallError,
    decode_file_data,
)

FAST_RECONNECT = ReconnectPolicy(initial=0.05, maximum=0.2)
WAIT = 10.0  # upper bound for anything awaited below; normally far shorter


async def open_client(server: LiveServer, name: str, password: str = "pw-" + "x" * 8
                      ) -> ChatClient:
    client = ChatClient(server.url, reconnect=FAST_RECONNECT)
    await client.connect(name, password)
    return client


async def next_message(events: AsyncGenerator[Event, None], text: str) -> Event:
    """The first `message` event carrying `text` (other events are skipped)."""
    async def find() -> Event:
        async for item in events:
            if item["type"] == "message" and item["data"]["text"] == text:
                return item
        raise AssertionError("the event stream ended")

    return await asyncio.wait_for(find(), WAIT)


async def test_connect_send_history_status(live_server: LiveServer) -> None:
    alice = await open_client(live_server, "alice")
    try:
        assert alice.user == "alice" and alice.token
        sent = await alice.send("hello, world")
        message = sent["message"]
        assert (message["chat"], message["from"], message["text"]) == (
            "general", "alice", "hello, world")
        history = await alice.history(limit=10)
        assert [item["text"] for item in history["messages"]][-1] == "hello, world"
        status = await alice.status()
        assert status["me"]["name"] == "alice"
        assert "server_time" in status
    finally:
        await alice.close()


async def test_resend_with_same_client_msg_id_creates_one_message(
        live_server: LiveServer) -> None:
    alice = await open_client(live_server, "alice")
    try:
        first = await alice.send("once", client_msg_id="fixed-id-1")
        second = await alice.send("once", client_msg_id="fixed-id-1")
        assert first["message"]["id"] == second["message"]["id"]
        texts = [item["text"] for item in (await alice.history())["messages"]]
        assert texts.count("once") == 1
    finally:
        await alice.close()


async def test_direct_message_and_comment(live_server: LiveServer) -> None:
    alice = await open_client(live_server, "alice")
    bob = await open_client(live_server, "bob")
    try:
        direct = (await alice.send("psst", to="bob"))["message"]
        assert direct["chat"] == "dm:alice:bob"
        comment = (await bob.comment(direct["id"], "ok"))["message"]
        assert comment["parent"] == direct["id"] and comment["chat"] == direct["chat"]
        seen = await bob.history(chat=direct["chat"])
        assert [item["text"] for item in seen["messages"]] == ["psst", "ok"]
    finally:
        await alice.close()
        await bob.close()


async def test_wrong_password_is_unauthorized(live_server: LiveServer) -> None:
    alice = await open_client(live_server, "alice", "right-password")
    await alice.close()
    async with ChatClient(live_server.url) as intruder:
        with pytest.raises(RpcCallError) as caught:
            await intruder.connect("alice", "wrong-password")
    assert caught.value.code == UNAUTHORIZED


async def test_events_deliver_messages_from_others(live_server: LiveServer) -> None:
    alice = await open_client(live_server, "alice")
    bob = await open_client(live_server, "bob")
    events = alice.events(timeout=5)
    try:
        waiter = asyncio.create_task(next_message(events, "hi alice"))
        await bob.send("hi alice")
        received = await waiter
        assert received["data"]["from"] == "bob"
    finally:
        await events.aclose()
        await alice.close()
        await bob.close()


async def test_events_survive_a_server_restart(live_server: LiveServer) -> None:
    alice = await open_client(live_server, "alice")
    bob = await open_client(live_server, "bob")
    events = alice.events(timeout=2)
    try:
        await bob.send("before")
        await next_message(events, "before")
        waiting = asyncio.create_task(next_message(events, "after the restart"))
        await asyncio.sleep(0.1)  # alice's long-poll is now in flight
        await live_server.stop()
        await asyncio.sleep(0.3)  # a few failed reconnect attempts (server is down)
        assert not waiting.done()
        await live_server.start()  # same port, same data: tokens survive
        await bob.send("after the restart")
        received = await waiting
        assert received["data"]["from"] == "bob"
    finally:
        await events.aclose()
        await alice.close()
        await bob.close()


async def test_events_restart_from_cursor_when_since_is_ahead(live_server: LiveServer) -> None:
    alice = await open_client(live_server, "alice")
    bob = await open_client(live_server, "bob")
    try:
        with pytest.raises(RpcCallError) as caught:
            await alice.poll(since=10**9, timeout=0)
        assert caught.value.code == CURSOR_AHEAD
        events = alice.events(since=10**9, timeout=2)
        waiter = asyncio.create_task(next_message(events, "catch up"))
        await bob.send("catch up")
        assert (await waiter)["data"]["from"] == "bob"
        await events.aclose()
    finally:
        await alice.close()
        await bob.close()


async def test_events_stop_when_the_token_is_revoked(live_server: LiveServer) -> None:
    alice = await open_client(live_server, "alice")
    token = alice.token
    await alice.disconnect()
    async with ChatClient(live_server.url, token=token) as stale:
        with pytest.raises(RpcCallError) as caught:
            async for _ in stale.events(timeout=1):
                pass
    assert caught.value.code == UNAUTHORIZED
    await alice.close()


async def test_discover_lists_the_methods(live_server: LiveServer) -> None:
    async with ChatClient(live_server.url) as client:
        document = await client.discover()
    names = {method["name"] for method in document["methods"]}
    assert {"connect", "send", "poll", "history", "chat.create"} <= names


async def test_group_chat_flow(live_server: LiveServer) -> None:
    alice = await open_client(live_server, "alice")
    bob = await open_client(live_server, "bob")
    try:
        chat = (await alice.chat_create("team", members=["bob"]))["chat"]
        assert chat["kind"] == "group" and chat["owner"] == "alice"
        assert set(chat["members"]) == {"alice", "bob"}
        await bob.send("in the team", chat=chat["id"])
        texts = [item["text"] for item in (await alice.history(chat=chat["id"]))["messages"]]
        assert texts == ["in the team"]
        assert (await bob.chat_leave(chat["id"]))["ok"] is True
    finally:
        await alice.close()
        await bob.close()


async def test_file_upload_and_download(live_server: LiveServer) -> None:
    content = bytes(range(256)) * 40  # 10 KiB, not valid UTF-8: base64 must round-trip it
    digest = hashlib.sha256(content).hexdigest()
    alice = await open_client(live_server, "alice")
    try:
        upload = await alice.file_begin("data.bin", len(content), sha256=digest,
                                        content_type="application/octet-stream")
        offset = upload["offset"]
        while offset < len(content):
            chunk = content[offset:offset + upload["chunk_size"]]
            offset = (await alice.file_put(upload["upload_id"], offset, chunk))["offset"]
        message = (await alice.file_finish(upload["upload_id"], text="here"))["message"]
        file = message["file"]
        assert file is not None and file["sha256"] == digest and file["size"] == len(content)
        received = b""
        while True:
            piece = await alice.file_get(file["id"], offset=len(received))
            received += decode_file_data(piece)
            if piece["eof"]:
                break
        assert received == content
    finally:
        await alice.close()


async def test_scheduled_send_list_cancel_and_report(live_server: LiveServer) -> None:
    alice = await open_client(live_server, "alice")
    bob = await open_client(live_server, "bob")
    try:
        scheduled = (await alice.send("later", delay=3600))["scheduled"]
        assert scheduled["status"] == "pending"
        pending = (await alice.scheduled_list())["scheduled"]
        assert [item["id"] for item in pending] == [scheduled["id"]]
        cancelled = (await alice.scheduled_cancel(scheduled["id"]))["scheduled"]
        assert cancelled["status"] == "cancelled"
        with pytest.raises(RpcCallError) as caught:
            await alice.scheduled_cancel(scheduled["id"])
        assert caught.value.code == CONFLICT
        report = await alice.report("bob", reason="spam")
        assert report["user"] == "bob" and report["warnings"] == 1
    finally:
        await alice.close()
        await bob.close()

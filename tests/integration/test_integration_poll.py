"""The long-poll over real HTTP: wake-up latency, timeouts, a newer poll superseding an older
one of the same token, and no waiting inside a batch."""

from __future__ import annotations

import asyncio
import json
import time

from integration_helpers import PASSWORD, Users, texts_of, wait_parked
from rpc_testing import ClientFactory
from rpcchat.app import ChatServer

WAKE_LATENCY = 0.2


async def test_a_parked_poll_is_answered_right_after_a_send(
    server: ChatServer, users: Users
) -> None:
    alice, bob = await users(server, "alice", "bob")
    head = (await bob.call("poll", timeout=0))["next"]
    waiting = asyncio.create_task(bob.call("poll", since=head, timeout=30))
    await wait_parked(server, 1)

    started = time.monotonic()
    await alice.call("send", text="ping")
    result = await waiting
    latency = time.monotonic() - started
    assert texts_of(result["events"]) == ["ping"]
    assert latency < WAKE_LATENCY, f"poll answered {latency * 1000:.0f} ms after the send"
    assert result["events"][0]["seq"] == result["next"]


async def test_a_private_message_wakes_the_recipient_quickly(
    server: ChatServer, users: Users
) -> None:
    alice, bob = await users(server, "alice", "bob")
    head = (await bob.call("poll", timeout=0))["next"]
    waiting = asyncio.create_task(bob.call("poll", since=head, timeout=30))
    await wait_parked(server, 1)
    started = time.monotonic()
    await alice.call("send", to="bob", text="psst")
    result = await waiting
    assert time.monotonic() - started < WAKE_LATENCY
    # The direct chat opens with both joins, then the message.
    assert [event["type"] for event in result["events"]] == ["chat.joined", "chat.joined",
                                                             "message"]
    assert texts_of(result["events"]) == ["psst"]


async def test_poll_returns_nothing_at_its_timeout(server: ChatServer, users: Users) -> None:
    (alice,) = await users(server, "alice")
    head = (await alice.call("poll", timeout=0))["next"]
    started = time.monotonic()
    result = await alice.call("poll", since=head, timeout=0.3)
    waited = time.monotonic() - started
    assert result["events"] == [] and result["next"] == head and result["more"] is False
    assert 0.3 <= waited < 1.0, waited
    assert server.service.parked_polls == 0


async def test_poll_with_events_ready_does_not_wait(server: ChatServer, users: Users) -> None:
    alice, bob = await users(server, "alice", "bob")
    head = (await bob.call("poll", timeout=0))["next"]
    await alice.call("send", text="already there")
    started = time.monotonic()
    result = await bob.call("poll", since=head, timeout=30)
    assert time.monotonic() - started < 1.0
    assert texts_of(result["events"]) == ["already there"]


async def test_poll_limit_and_more(server: ChatServer, users: Users) -> None:
    alice, bob = await users(server, "alice", "bob")
    head = (await bob.call("poll", timeout=0))["next"]
    for number in range(5):
        await alice.call("send", text=f"n{number}")
    first = await bob.call("poll", since=head, limit=2, timeout=0)
    assert texts_of(first["events"]) == ["n0", "n1"] and first["more"] is True
    assert first["next"] == first["events"][-1]["seq"]
    second = await bob.call("poll", since=first["next"], limit=2, timeout=0)
    assert texts_of(second["events"]) == ["n2", "n3"] and second["more"] is True
    third = await bob.call("poll", since=second["next"], limit=2, timeout=0)
    assert texts_of(third["events"]) == ["n4"] and third["more"] is False


async def test_a_newer_poll_of_the_same_token_releases_the_older_at_once(
    server: ChatServer, users: Users
) -> None:
    alice, bob = await users(server, "alice", "bob")
    head = (await bob.call("poll", timeout=0))["next"]
    older = asyncio.create_task(bob.call("poll", since=head, timeout=30))
    await wait_parked(server, 1)

    started = time.monotonic()
    newer = asyncio.create_task(bob.call("poll", since=head, timeout=30))
    released = await older
    assert time.monotonic() - started < WAKE_LATENCY
    assert released["events"] == []
    await wait_parked(server, 1)  # the newer one waits in its place
    assert not newer.done()

    await alice.call("send", text="for the newer poll")
    assert texts_of((await newer)["events"]) == ["for the newer poll"]


async def test_a_poll_of_another_token_does_not_release_the_first(
    server: ChatServer, users: Users, rpc_client: ClientFactory
) -> None:
    alice, bob = await users(server, "alice", "bob")
    bob_second = await rpc_client(server)
    await bob_second.connect("bob", PASSWORD)
    head = (await bob.call("poll", timeout=0))["next"]
    first = asyncio.create_task(bob.call("poll", since=head, timeout=30))
    await wait_parked(server, 1)

    second = asyncio.create_task(bob_second.call("poll", since=head, timeout=30))
    await wait_parked(server, 2)  # both wait side by side: nothing was released
    assert not first.done()

    await alice.call("send", text="for both")
    for result in await asyncio.gather(first, second):
        assert texts_of(result["events"]) == ["for both"]


async def test_poll_inside_a_batch_never_waits(server: ChatServer, users: Users) -> None:
    alice, bob = await users(server, "alice", "bob")
    head = (await bob.call("poll", timeout=0))["next"]
    batch = [{"jsonrpc": "2.0", "method": "poll", "id": 1,
              "params": {"since": head, "timeout": 30}}]
    started = time.monotonic()
    reply = await bob.post(batch)
    assert time.monotonic() - started < 1.0
    assert reply.status == 200
    (answer,) = json.loads(reply.body)
    assert answer["id"] == 1 and answer["result"]["events"] == []
    assert server.service.parked_polls == 0

    # With default params too, and after a send in the same batch it sees the message.
    batch = [{"jsonrpc": "2.0", "method": "send", "id": "s", "params": {"text": "in batch"}},
             {"jsonrpc": "2.0", "method": "poll", "id": "p", "params": {"since": head}}]
    started = time.monotonic()
    sent, polled = json.loads((await alice.post(batch)).body)
    assert time.monotonic() - started < 1.0
    assert sent["id"] == "s" and polled["id"] == "p"
    assert texts_of(polled["result"]["events"]) == ["in batch"]

"""Many clients at once over real sockets: every message reaches every follower exactly
once, in seq order, matching history; sign-ups of one name race safely."""

from __future__ import annotations

import asyncio
from typing import Any

from integration_helpers import PASSWORD, Users, messages_of
from rpc_testing import ClientFactory, RpcClient, RpcFailure
from rpcchat.app import ChatServer

SENDERS = 8
PER_SENDER = 15


async def follow(client: RpcClient, since: int, expected: int) -> list[dict[str, Any]]:
    """Long-poll from `since` until `expected` messages arrived; every event seen."""
    events: list[dict[str, Any]] = []
    while len(messages_of(events)) < expected:
        result = await client.call("poll", since=since, timeout=10, limit=7)
        events += result["events"]
        since = result["next"]
    return events


async def test_concurrent_senders_reach_followers_once_and_in_order(
    server: ChatServer, users: Users
) -> None:
    names = [f"user{number}" for number in range(SENDERS)]
    senders = await users(server, *names)
    reader, other_reader = await users(server, "reader", "reader")
    start = (await reader.call("poll", timeout=0))["next"]
    total = SENDERS * PER_SENDER
    followers = [asyncio.create_task(follow(client, start, total))
                 for client in (reader, other_reader)]

    async def burst(client: RpcClient, name: str) -> list[int]:
        return [(await client.call("send", text=f"{name}:{number}"))["message"]["id"]
                for number in range(PER_SENDER)]

    sent = await asyncio.gather(*(burst(client, name) for client, name in zip(senders, names)))
    first, second = await asyncio.gather(*followers)

    assert first == second  # both clients of the reader saw exactly the same stream
    seqs = [event["seq"] for event in first]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
    received = messages_of(first)
    assert len(received) == total
    assert sorted(message["id"] for message in received) == sorted(
        message_id for ids in sent for message_id in ids)
    # Each sender's messages arrive in the order it sent them.
    for name in names:
        mine = [message["text"] for message in received if message["from"] == name]
        assert mine == [f"{name}:{number}" for number in range(PER_SENDER)]
    # And the stream order is history's order.
    history = await reader.call("history", limit=200)
    assert [message["id"] for message in history["messages"]] == [
        message["id"] for message in received]


async def test_racing_first_connects_of_one_name(
    server: ChatServer, rpc_client: ClientFactory
) -> None:
    clients = [await rpc_client(server) for _ in range(6)]
    passwords = [PASSWORD, PASSWORD, "other", PASSWORD, "other", PASSWORD]
    outcomes = await asyncio.gather(
        *(client.call("connect", name="Racer", password=password)
          for client, password in zip(clients, passwords)),
        return_exceptions=True)
    winners = {password for password, outcome in zip(passwords, outcomes)
               if not isinstance(outcome, BaseException)}
    assert len(winners) == 1  # one account, with the password of whoever created it
    for password, outcome in zip(passwords, outcomes):
        if password in winners:
            assert not isinstance(outcome, BaseException), outcome
            assert outcome["user"] == "Racer"
        else:
            assert isinstance(outcome, RpcFailure) and outcome.code == -32001
    status = await clients[0].call("status")
    assert status["server"]["users"] == 1
    tokens = {outcome["token"] for outcome in outcomes if isinstance(outcome, dict)}
    assert len(tokens) == sum(1 for outcome in outcomes if isinstance(outcome, dict))

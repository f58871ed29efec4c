"""One user on three clients at once, beside other users: every event (own sends, scheduled
changes, membership changes) reaches all three in the same order with the same seq, waiting
polls wake while another client of the same user sends, `online` counts users, and a
disconnect of one client leaves the other two working."""

from __future__ import annotations

import asyncio
from typing import Any

from integration_helpers import PASSWORD, Users, texts_of, wait_parked
from rpc_testing import ClientFactory, RpcClient
from rpcchat.app import ChatServer


async def alice_on_three(server: ChatServer, rpc_client: ClientFactory) -> list[RpcClient]:
    clients = []
    for _ in range(3):
        client = await rpc_client(server)
        await client.connect("alice", PASSWORD)
        clients.append(client)
    return clients


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


async def test_three_clients_wake_together_while_one_of_them_sends(
    server: ChatServer, users: Users, rpc_client: ClientFactory
) -> None:
    bob, carol = await users(server, "bob", "carol")
    phone, laptop, tablet = await alice_on_three(server, rpc_client)
    head = (await bob.call("poll", timeout=0))["next"]
    waiting = [asyncio.create_task(client.call("poll", since=head, timeout=30))
               for client in (laptop, tablet, bob, carol)]
    await wait_parked(server, 4)
    await phone.call("send", text="from the phone")
    answers = await asyncio.gather(*waiting)
    for answer in answers:
        assert texts_of(answer["events"]) == ["from the phone"]
    assert all(answer["events"] == answers[0]["events"] for answer in answers)
    # The sender's own client sees its message too, with the same seq.
    own = await phone.call("poll", since=head, timeout=0)
    assert own["events"] == answers[0]["events"]
    online = (await bob.call("status"))["server"]["online"]
    assert online == 3  # alice, bob and carol: users, not five connections


async def test_three_clients_get_every_kind_of_event_in_the_same_order(
    server: ChatServer, users: Users, rpc_client: ClientFactory
) -> None:
    bob, carol = await users(server, "bob", "carol")
    phone, laptop, tablet = await alice_on_three(server, rpc_client)
    start = (await phone.call("poll", timeout=0))["next"]

    await laptop.call("send", to="bob", text="private from the laptop")
    scheduled = (await tablet.call("send", text="later", delay=600))["scheduled"]
    await phone.call("scheduled.cancel", id=scheduled["id"])
    group = (await laptop.call("chat.create", name="Team", members=["carol"]))["chat"]
    await carol.call("send", chat=group["id"], text="hi team")
    await bob.call("send", text="general from bob")

    streams = [(await client.call("poll", since=start, timeout=0, limit=500))["events"]
               for client in (phone, laptop, tablet)]
    assert streams[0] == streams[1] == streams[2]
    seqs = [event["seq"] for event in streams[0]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    seen = kinds(streams[0])
    for kind in ("message", "scheduled.created", "scheduled.cancelled", "chat.joined"):
        assert kind in seen, (kind, seen)
    assert texts_of(streams[0]) == ["private from the laptop", "hi team", "general from bob"]
    # The other users see none of alice's scheduled changes, and bob nothing of the group.
    bob_events = (await bob.call("poll", since=start, timeout=0, limit=500))["events"]
    assert not any(kind.startswith("scheduled.") for kind in kinds(bob_events))
    assert texts_of(bob_events) == ["private from the laptop", "general from bob"]


async def test_disconnect_of_one_of_three_leaves_the_others_waiting_and_working(
    server: ChatServer, users: Users, rpc_client: ClientFactory
) -> None:
    (bob,) = await users(server, "bob")
    phone, laptop, tablet = await alice_on_three(server, rpc_client)
    head = (await bob.call("poll", timeout=0))["next"]
    waiting = [asyncio.create_task(client.call("poll", since=head, timeout=30))
               for client in (phone, laptop)]
    await wait_parked(server, 2)
    await tablet.call("disconnect")
    assert (await tablet.error("status", {}))["code"] == -32001
    await bob.call("send", text="still there?")
    for answer in await asyncio.gather(*waiting):
        assert texts_of(answer["events"]) == ["still there?"]
    await laptop.call("send", text="yes")
    latest = (await phone.call("history", limit=1))["messages"]
    assert [message["text"] for message in latest] == ["yes"]

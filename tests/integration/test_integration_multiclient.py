"""One user, two clients (two connects, two tokens): the same events in the same order,
one shared read cursor, and a disconnect of one leaves the other working."""

from __future__ import annotations

import asyncio

from integration_helpers import PASSWORD, Users, texts_of, wait_parked
from rpc_testing import ClientFactory
from rpcchat.app import ChatServer


async def test_both_clients_get_the_same_events_in_the_same_order(
    server: ChatServer, users: Users, rpc_client: ClientFactory
) -> None:
    alice_phone, bob = await users(server, "alice", "bob")
    alice_laptop = await rpc_client(server)
    joined = await alice_laptop.connect("alice", PASSWORD)
    assert joined["token"] != alice_phone.token
    start = joined["cursor"]

    await bob.call("send", text="hello all")
    await alice_phone.call("send", text="from the phone")
    await alice_laptop.call("send", to="bob", text="private from the laptop")
    await bob.call("send", to="alice", text="private reply")

    phone = await alice_phone.call("poll", since=start, timeout=0)
    laptop = await alice_laptop.call("poll", since=start, timeout=0)
    assert phone["events"] == laptop["events"]  # same seq, type, ts and data, same order
    assert texts_of(phone["events"]) == ["hello all", "from the phone",
                                         "private from the laptop", "private reply"]
    assert phone["next"] == laptop["next"]


async def test_one_send_wakes_the_parked_polls_of_both_clients(
    server: ChatServer, users: Users, rpc_client: ClientFactory
) -> None:
    alice_phone, bob = await users(server, "alice", "bob")
    alice_laptop = await rpc_client(server)
    await alice_laptop.connect("alice", PASSWORD)
    head = (await bob.call("poll", timeout=0))["next"]
    waits = [asyncio.create_task(client.call("poll", since=head, timeout=30))
             for client in (alice_phone, alice_laptop)]
    await wait_parked(server, 2)
    await bob.call("send", text="wake up")
    phone, laptop = await asyncio.gather(*waits)
    assert texts_of(phone["events"]) == ["wake up"]
    assert phone["events"] == laptop["events"]


async def test_the_read_cursor_is_shared_by_all_clients_of_a_user(
    server: ChatServer, users: Users, rpc_client: ClientFactory
) -> None:
    alice_phone, bob = await users(server, "alice", "bob")
    alice_laptop = await rpc_client(server)
    await alice_laptop.connect("alice", PASSWORD)
    await bob.call("send", text="one")
    await bob.call("send", text="two")

    everything = await alice_phone.call("poll", timeout=0)
    first = everything["events"][-2]["seq"]
    acknowledged = await alice_phone.call("poll", since=first, timeout=0)
    assert texts_of(acknowledged["events"]) == ["two"] and acknowledged["unread"] == 1

    assert (await alice_laptop.call("status"))["me"]["cursor"] == first
    from_cursor = await alice_laptop.call("poll", timeout=0)
    assert texts_of(from_cursor["events"]) == ["two"] and from_cursor["unread"] == 1
    # An older `since` from the other client never moves the cursor back.
    await alice_laptop.call("poll", since=0, timeout=0)
    assert (await alice_phone.call("status"))["me"]["cursor"] == first
    assert (await (await rpc_client(server)).connect("alice", PASSWORD))["cursor"] == first


async def test_disconnect_of_one_client_leaves_the_other_working(
    server: ChatServer, users: Users, rpc_client: ClientFactory
) -> None:
    alice_phone, bob = await users(server, "alice", "bob")
    alice_laptop = await rpc_client(server)
    await alice_laptop.connect("alice", PASSWORD)
    head = (await bob.call("poll", timeout=0))["next"]
    laptop_waits = asyncio.create_task(alice_laptop.call("poll", since=head, timeout=30))
    phone_waits = asyncio.create_task(alice_phone.call("poll", since=head, timeout=30))
    await wait_parked(server, 2)

    # The phone's own disconnect ends its waiting poll at once.
    assert (await alice_phone.call("disconnect"))["ok"] is True
    assert (await phone_waits)["events"] == []
    assert not laptop_waits.done()

    for method in ("poll", "send", "history", "status", "disconnect"):
        error = await alice_phone.error(method, {"text": "x"} if method == "send" else {})
        assert error["code"] == -32001, method
    anonymous = await alice_phone.response("status", {}, token=None)
    assert "me" not in anonymous["result"]

    await bob.call("send", text="still here?")
    laptop = await laptop_waits
    assert texts_of(laptop["events"]) == ["still here?"]
    await alice_laptop.call("send", text="yes")
    assert (await alice_laptop.call("status"))["me"]["name"] == "alice"

"""A direct chat is invisible to everyone but its two members, through every method."""

from __future__ import annotations

import asyncio

from integration_helpers import Users, messages_of, texts_of, wait_parked
from rpcchat.app import ChatServer

DM = "dm:alice:bob"


async def test_third_user_sees_nothing_of_a_direct_chat(
    server: ChatServer, users: Users
) -> None:
    alice, bob, carol = await users(server, "alice", "bob", "carol")
    await alice.call("send", text="public")
    await alice.call("send", to="bob", text="secret one")
    await bob.call("send", chat=DM, text="secret two")
    await bob.call("send", to="alice", text="secret three")

    # poll from the very beginning: carol sees general only, no DM join nor message.
    seen = await carol.call("poll", since=0, timeout=0, limit=500)
    assert all(event["data"].get("chat") != DM for event in seen["events"])
    assert texts_of(seen["events"]) == ["public"]
    assert seen["unread"] == 1

    for chat_ref in (DM, "dm:bob:alice", "dm:Alice:BOB"):
        error = await carol.error("history", {"chat": chat_ref})
        assert error["code"] == -32002, chat_ref
    error = await carol.error("send", {"chat": DM, "text": "let me in"})
    assert error["code"] == -32002

    status = await carol.call("status")
    assert [chat["id"] for chat in status["me"]["chats"]] == ["general"]
    assert status["me"]["chats"][0]["unread"] == 1

    # The members see it all, in order.
    for member in (alice, bob):
        events = (await member.call("poll", since=0, timeout=0, limit=500))["events"]
        assert texts_of(events) == ["public", "secret one", "secret two", "secret three"]
        chats = {chat["id"]: chat for chat in (await member.call("status"))["me"]["chats"]}
        assert set(chats) == {"general", DM}
        assert chats[DM]["kind"] == "direct" and chats[DM]["members"] == ["alice", "bob"]


async def test_a_direct_message_does_not_wake_a_third_users_poll(
    server: ChatServer, users: Users
) -> None:
    alice, bob, carol = await users(server, "alice", "bob", "carol")
    head = (await carol.call("poll", timeout=0))["next"]
    carol_waits = asyncio.create_task(carol.call("poll", since=head, timeout=0.5))
    bob_waits = asyncio.create_task(bob.call("poll", since=head, timeout=30))
    await wait_parked(server, 2)  # both wait before the message exists
    await alice.call("send", to="bob", text="for bob only")

    bob_got = await bob_waits
    assert texts_of(bob_got["events"]) == ["for bob only"]
    carol_got = await carol_waits  # ends at its own timeout, with nothing
    assert carol_got["events"] == [] and carol_got["unread"] == 0
    # Its `next` may skip the invisible seqs, but a poll from there still shows nothing.
    after = await carol.call("poll", since=carol_got["next"], timeout=0)
    assert messages_of(after["events"]) == []


async def test_a_new_member_polls_general_only_from_its_join(
    server: ChatServer, users: Users
) -> None:
    (alice,) = await users(server, "alice")
    await alice.call("send", text="before bob")
    (bob,) = await users(server, "bob")
    await alice.call("send", text="after bob")
    seen = (await bob.call("poll", since=0, timeout=0))["events"]
    assert seen[0] == {**seen[0], "type": "chat.joined",
                       "data": {"chat": "general", "user": "bob"}}
    assert texts_of(seen) == ["after bob"]
    # Older messages remain readable through history (and connect's history).
    history = (await bob.call("history"))["messages"]
    assert [message["text"] for message in history] == ["before bob", "after bob"]

"""Group chats end to end through real sockets: create, invite, link, join, requests,
approve, decline, leave, what each user sees, and that a restart changes none of it."""

from __future__ import annotations

from typing import Any

import pytest

from gf_support import People, StartServer, kinds, of_chat
from rpc_testing import CONFLICT, FORBIDDEN, INVALID_PARAMS, NOT_FOUND, error_of, events_since


def chat_of(status: dict[str, Any], chat_id: str) -> dict[str, Any] | None:
    return next((chat for chat in status["me"]["chats"] if chat["id"] == chat_id), None)


async def test_group_walkthrough_across_restarts(start_server: StartServer,
                                                 people: People) -> None:
    server = await start_server()
    alice, bob, carol, dave, erin = await people.login(
        server, "alice", "bob", "carol", "dave", "erin")
    created = (await alice.call("chat.create", name="  Team  ", members=["bob"]))["chat"]
    group = created["id"]
    assert group.startswith("g:") and len(group) > 10
    assert created == {"id": group, "kind": "group", "name": "Team", "owner": "alice",
                       "members": ["alice", "bob"], "unread": 0}

    invited = (await alice.call("chat.invite", chat=group, user="carol"))["chat"]
    assert invited["members"] == ["alice", "bob", "carol"]
    link = await alice.call("chat.link", chat=group)
    assert link["link"] == f"rpcchat:join/{link['token']}"
    assert len(link["token"]) >= 22  # >= 128 bits of URL-safe base64
    assert (await alice.call("chat.link", chat=group))["token"] == link["token"]

    joined = await dave.call("chat.join", link=link["link"])
    assert joined["status"] == "pending" and joined["chat"] == {"id": group, "name": "Team"}
    await erin.call("chat.join", link=link["token"])  # the bare token works too
    assert [r["user"] for r in (await alice.call("chat.requests", chat=group))["requests"]] \
        == ["dave", "erin"]

    # A restart keeps members, owner, link and pending requests.
    await server.close()
    server = await start_server(data_dir=server.config.data_dir)
    await people.move_to(server)
    alice, bob, carol, dave, erin = (people[name] for name in
                                     ("alice", "bob", "carol", "dave", "erin"))
    assert [r["user"] for r in (await alice.call("chat.requests", chat=group))["requests"]] \
        == ["dave", "erin"]
    assert (await alice.call("chat.link", chat=group))["token"] == link["token"]
    assert (await dave.call("chat.join", link=link["link"]))["status"] == "pending"

    approved = (await alice.call("chat.approve", chat=group, user="dave"))["chat"]
    assert approved["members"] == ["alice", "bob", "carol", "dave"]
    assert (await alice.call("chat.decline", chat=group, user="erin"))["ok"] is True
    assert (await alice.call("chat.requests", chat=group))["requests"] == []
    assert (await dave.call("chat.join", link=link["link"]))["status"] == "member"
    await dave.call("send", chat=group, text="hi all")
    assert (await bob.call("chat.leave", chat=group))["ok"] is True

    await server.close()
    server = await start_server(data_dir=server.config.data_dir)
    await people.move_to(server)
    alice, bob, carol, dave, erin = (people[name] for name in
                                     ("alice", "bob", "carol", "dave", "erin"))

    events = {name: of_chat((await events_since(people[name]))[0], group)
              for name in ("alice", "bob", "carol", "dave", "erin")}
    everyone_joined = [("chat.joined", "alice"), ("chat.joined", "bob"),
                       ("chat.joined", "carol")]
    assert kinds(events["alice"]) == [
        *everyone_joined, ("chat.join_request", "dave"), ("chat.join_request", "erin"),
        ("chat.joined", "dave"), ("message", None), ("chat.left", "bob")]
    assert kinds(events["bob"]) == [*everyone_joined, ("chat.joined", "dave"),
                                    ("message", None), ("chat.left", "bob")]
    assert kinds(events["carol"]) == [("chat.joined", "carol"), ("chat.joined", "dave"),
                                      ("message", None), ("chat.left", "bob")]
    assert kinds(events["dave"]) == [("chat.joined", "dave"), ("message", None),
                                     ("chat.left", "bob")]
    assert kinds(events["erin"]) == [("chat.join_declined", None)]
    assert events["erin"][0]["data"] == {"chat": group}

    status = await carol.call("status")
    assert chat_of(status, group) == {"id": group, "kind": "group", "name": "Team",
                                      "owner": "alice", "members": ["alice", "carol", "dave"],
                                      "unread": 1}
    assert chat_of(await bob.call("status"), group) is None
    assert chat_of(await erin.call("status"), group) is None
    # A declined user may ask again.
    assert (await erin.call("chat.join", link=link["token"]))["status"] == "pending"


async def test_requester_sees_nothing_while_pending(start_server: StartServer,
                                                    people: People) -> None:
    server = await start_server()
    alice, dave = await people.login(server, "alice", "dave")
    group = (await alice.call("chat.create", name="Secret"))["chat"]["id"]
    await alice.call("send", chat=group, text="before the request")
    token = (await alice.call("chat.link", chat=group))["token"]
    _, dave_position = await events_since(dave)
    await dave.call("chat.join", link=token)
    await alice.call("send", chat=group, text="while pending")

    for restarted in (False, True):
        if restarted:
            server = await restart(server, start_server, people)
        dave = people["dave"]
        events, _ = await events_since(dave, dave_position)
        assert of_chat(events, group) == []
        assert (await error_of(dave, "history", chat=group))["code"] == FORBIDDEN
        assert (await error_of(dave, "send", chat=group, text="x"))["code"] == FORBIDDEN
        assert chat_of(await dave.call("status"), group) is None
        assert (await people.another_client(server, "dave")).token == dave.token
        relogin = await (await people.another_client(server, "dave")).call(
            "connect", name="dave", password="secret")
        assert relogin["unread"] == 0


async def restart(server: Any, start_server: StartServer, people: People) -> Any:
    await server.close()
    new = await start_server(data_dir=server.config.data_dir)
    await people.move_to(new)
    return new


async def test_new_member_sees_events_from_its_join_and_none_after_leaving(
        start_server: StartServer, people: People) -> None:
    server = await start_server()
    alice, bob = await people.login(server, "alice", "bob")
    group = (await alice.call("chat.create", name="Club"))["chat"]["id"]
    await alice.call("send", chat=group, text="old news")
    await alice.call("chat.invite", chat=group, user="bob")
    await alice.call("send", chat=group, text="fresh")

    server = await restart(server, start_server, people)
    alice, bob = people["alice"], people["bob"]
    events, position = await events_since(bob)
    mine = of_chat(events, group)
    assert kinds(mine) == [("chat.joined", "bob"), ("message", None)]
    assert mine[1]["data"]["text"] == "fresh"
    # Earlier messages only through history.
    history = await bob.call("history", chat=group)
    assert [m["text"] for m in history["messages"]] == ["old news", "fresh"]

    await bob.call("chat.leave", chat=group)
    await alice.call("send", chat=group, text="after bob left")
    server = await restart(server, start_server, people)
    bob = people["bob"]
    events, _ = await events_since(bob, position)
    assert kinds(of_chat(events, group)) == [("chat.left", "bob")]
    assert (await error_of(bob, "history", chat=group))["code"] == FORBIDDEN

    # Invited again: a new membership, seeing events from the new join only.
    await people["alice"].call("chat.invite", chat=group, user="bob")
    await people["alice"].call("send", chat=group, text="welcome back")
    events, _ = await events_since(bob, position)
    assert kinds(of_chat(events, group)) == [("chat.left", "bob"), ("chat.joined", "bob"),
                                             ("message", None)]


async def test_owner_leaving_hands_over_then_the_last_one_closes(
        start_server: StartServer, people: People) -> None:
    server = await start_server()
    alice, bob, carol, dave = await people.login(server, "alice", "bob", "carol", "dave")
    group = (await alice.call("chat.create", name="Relay", members=["carol"]))["chat"]["id"]
    await alice.call("chat.invite", chat=group, user="bob")
    token = (await alice.call("chat.link", chat=group))["token"]
    await dave.call("chat.join", link=token)
    await alice.call("chat.leave", chat=group)

    server = await restart(server, start_server, people)
    alice, bob, carol, dave = (people[name] for name in ("alice", "bob", "carol", "dave"))
    # carol joined with the creation, bob later: carol is the oldest member.
    assert chat_of(await bob.call("status"), group)["owner"] == "carol"  # type: ignore[index]
    events, _ = await events_since(bob)
    assert ("chat.owner_changed", None) in kinds(of_chat(events, group))
    assert [e["data"] for e in of_chat(events, group)
            if e["type"] == "chat.owner_changed"] == [{"chat": group, "owner": "carol"}]
    assert (await error_of(bob, "chat.requests", chat=group))["code"] == FORBIDDEN
    assert [r["user"] for r in (await carol.call("chat.requests", chat=group))["requests"]] \
        == ["dave"]

    await bob.call("chat.leave", chat=group)
    await carol.call("chat.leave", chat=group)  # the last member: the chat closes
    server = await restart(server, start_server, people)
    dave = people["dave"]
    events, _ = await events_since(dave)
    assert kinds(of_chat(events, group)) == [("chat.join_declined", None)]
    assert (await error_of(dave, "chat.join", link=token))["code"] == NOT_FOUND


async def test_errors_of_group_methods(start_server: StartServer, people: People) -> None:
    server = await start_server()
    alice, bob, carol = await people.login(server, "alice", "bob", "carol")
    before = await alice.call("status")
    error = await error_of(alice, "chat.create", name="X", members=["bob", "nobody"])
    assert error["code"] == NOT_FOUND
    assert (await alice.call("status"))["me"]["chats"] == before["me"]["chats"]
    assert (await error_of(alice, "chat.create", name="   "))["code"] == INVALID_PARAMS
    assert (await error_of(alice, "chat.create", name="a\nb"))["code"] == INVALID_PARAMS
    assert (await error_of(alice, "chat.create", name="ok", members="bob"))["code"] \
        == INVALID_PARAMS
    # Duplicates and the creator in `members` are fine.
    group = (await alice.call("chat.create", name="Dup", members=["BOB", "bob", "alice"])
             )["chat"]
    assert group["members"] == ["alice", "bob"]
    chat_id = group["id"]

    assert (await error_of(alice, "chat.invite", chat=chat_id, user="bob"))["code"] == CONFLICT
    assert (await error_of(alice, "chat.invite", chat=chat_id, user="zed"))["code"] \
        == NOT_FOUND
    assert (await error_of(alice, "chat.invite", chat="g:nope", user="carol"))["code"] \
        == NOT_FOUND
    # A member who is not the owner.
    for method, params in (("chat.invite", {"user": "carol"}), ("chat.link", {}),
                           ("chat.requests", {}), ("chat.approve", {"user": "carol"}),
                           ("chat.decline", {"user": "carol"})):
        assert (await error_of(bob, method, chat=chat_id, **params))["code"] == FORBIDDEN
    assert (await error_of(alice, "chat.approve", chat=chat_id, user="carol"))["code"] \
        == NOT_FOUND
    assert (await error_of(alice, "chat.decline", chat=chat_id, user="carol"))["code"] \
        == NOT_FOUND
    assert (await error_of(carol, "chat.join", link="rpcchat:join/" + "A" * 32))["code"] \
        == NOT_FOUND
    assert (await error_of(carol, "chat.join", link="not a link!"))["code"] == INVALID_PARAMS
    assert (await error_of(alice, "chat.leave", chat="general"))["code"] == FORBIDDEN
    await alice.call("send", to="bob", text="psst")
    assert (await error_of(alice, "chat.leave", chat="dm:alice:bob"))["code"] == FORBIDDEN
    # A join link in URL form is accepted too.
    token = (await alice.call("chat.link", chat=chat_id))["token"]
    joined = await carol.call("chat.join", link=f"https://chat.example/join/{token}")
    assert joined["status"] == "pending"
    # A requester learns only the chat's id and name.
    assert set(joined["chat"]) == {"id", "name"}
    # Joining again while pending files no second request.
    await carol.call("chat.join", link=token)
    events, _ = await events_since(alice)
    assert [e["type"] for e in events].count("chat.join_request") == 1
    # The owner's own link.
    own = await alice.call("chat.join", link=token)
    assert own["status"] == "member"
    # A member gets the whole Chat object, as the contract's Objects section says.
    assert {"id", "kind", "name", "owner", "members", "unread"} <= set(own["chat"])
    assert own["chat"]["owner"] == "alice" and "alice" in own["chat"]["members"]
    # Inviting someone who asked to join settles the request.
    await alice.call("chat.invite", chat=chat_id, user="carol")
    assert (await alice.call("chat.requests", chat=chat_id))["requests"] == []


async def test_leaver_waiting_poll_wakes_for_its_chat_left(start_server: StartServer,
                                                           people: People) -> None:
    import asyncio

    server = await start_server()
    alice, bob = await people.login(server, "alice", "bob")
    group = (await alice.call("chat.create", name="Wake", members=["bob"]))["chat"]["id"]
    _, position = await events_since(bob)
    listener = await people.another_client(server, "bob")
    waiting = asyncio.create_task(listener.call("poll", since=position, timeout=20))
    async with asyncio.timeout(5):
        while server.service.parked_polls == 0:  # nothing to await: the poll parks silently
            await asyncio.sleep(0.005)
    await bob.call("chat.leave", chat=group)
    reply = await asyncio.wait_for(waiting, 5)
    assert kinds(reply["events"]) == [("chat.left", "bob")]


async def test_a_reset_link_replaces_the_old_one(start_server: StartServer,
                                                 people: People) -> None:
    server = await start_server()
    alice, bob, dave, erin = await people.login(server, "alice", "bob", "dave", "erin")
    group = (await alice.call("chat.create", name="Team", members=["bob"]))["chat"]["id"]
    old = await alice.call("chat.link", chat=group)
    await dave.call("chat.join", link=old["token"])  # asked before the reset: still pending
    new = await alice.call("chat.link", chat=group, reset=True)
    assert new["token"] != old["token"] and new["link"] == f"rpcchat:join/{new['token']}"
    assert (await alice.call("chat.link", chat=group))["token"] == new["token"]
    assert (await error_of(erin, "chat.join", link=old["link"]))["code"] == NOT_FOUND
    assert (await erin.call("chat.join", link=new["token"]))["status"] == "pending"
    assert [r["user"] for r in (await alice.call("chat.requests", chat=group))["requests"]] \
        == ["dave", "erin"]
    # Only the owner may reset, and the reset survives a restart.
    assert (await error_of(bob, "chat.link", chat=group, reset=True))["code"] == FORBIDDEN
    assert (await error_of(alice, "chat.link", chat=group, reset="yes"))["code"] \
        == INVALID_PARAMS
    await server.close()
    server = await start_server(data_dir=server.config.data_dir)
    await people.move_to(server)
    assert (await people["alice"].call("chat.link", chat=group))["token"] == new["token"]
    assert (await error_of(people["erin"], "chat.join", link=old["token"]))["code"] \
        == NOT_FOUND


async def test_a_reset_that_cannot_be_stored_keeps_the_old_link(
        start_server: StartServer, people: People, monkeypatch: pytest.MonkeyPatch) -> None:
    server = await start_server()
    alice, dave = await people.login(server, "alice", "dave")
    group = (await alice.call("chat.create", name="Team"))["chat"]["id"]
    old = (await alice.call("chat.link", chat=group))["token"]

    def disk_full(changes: object) -> object:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(server.service._store, "submit", disk_full)
    assert (await error_of(alice, "chat.link", chat=group, reset=True))["code"] == -32603
    monkeypatch.undo()
    assert (await alice.call("chat.link", chat=group))["token"] == old
    assert (await dave.call("chat.join", link=old))["status"] == "pending"

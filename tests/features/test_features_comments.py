"""comment(message_id, text, client_msg_id?)."""

from __future__ import annotations

from features_helpers import FeatureChat, events, of_type
from rpc_testing import FORBIDDEN, INVALID_PARAMS, NOT_FOUND, TOO_LARGE, error_of


async def test_a_comment_is_a_message_in_the_parents_chat(chat: FeatureChat) -> None:
    await chat.start()
    alice, bob = await chat.users("alice", "bob")
    parent = (await alice.call("send", text="lunch?"))["message"]
    comment = (await bob.call("comment", message_id=parent["id"], text="yes"))["message"]
    assert comment["parent"] == parent["id"]
    assert comment["chat"] == "general" and comment["from"] == "bob"
    assert comment["id"] > parent["id"]
    delivered = of_type(await events(alice), "message")
    assert delivered[-1] == comment


async def test_comments_in_a_direct_chat_and_members_only(chat: FeatureChat) -> None:
    await chat.start()
    alice, bob, carol = await chat.users("alice", "bob", "carol")
    direct = (await alice.call("send", text="psst", to="bob"))["message"]
    comment = (await bob.call("comment", message_id=direct["id"], text="ok"))["message"]
    assert comment["chat"] == direct["chat"] == "dm:alice:bob"
    error = await error_of(carol, "comment", message_id=direct["id"], text="me too")
    assert error["code"] == FORBIDDEN
    assert [m["text"] for m in of_type(await events(carol), "message")] == []


async def test_unknown_message_is_not_found(chat: FeatureChat) -> None:
    await chat.start()
    alice, = await chat.users("alice")
    error = await error_of(alice, "comment", message_id=999, text="hello?")
    assert error["code"] == NOT_FOUND


async def test_a_comment_on_a_comment_nests(chat: FeatureChat) -> None:
    await chat.start()
    alice, bob = await chat.users("alice", "bob")
    parent = (await alice.call("send", text="root"))["message"]
    first = (await bob.call("comment", message_id=parent["id"], text="reply"))["message"]
    second = (await alice.call("comment", message_id=first["id"], text="reply to reply"))
    assert second["message"]["parent"] == first["id"]


async def test_history_shows_comments_with_their_parent(chat: FeatureChat) -> None:
    await chat.start()
    alice, bob = await chat.users("alice", "bob")
    parent = (await alice.call("send", text="root"))["message"]
    await alice.call("send", text="other")
    await bob.call("comment", message_id=parent["id"], text="reply")
    history = (await bob.call("history"))["messages"]
    assert [(m["text"], m["parent"]) for m in history] == [
        ("root", None), ("other", None), ("reply", parent["id"])]
    await chat.restart()
    bob = await chat.reconnect(bob)
    again = (await bob.call("history"))["messages"]
    assert again == history


async def test_client_msg_id_makes_a_comment_idempotent(chat: FeatureChat) -> None:
    await chat.start()
    alice, = await chat.users("alice")
    parent = (await alice.call("send", text="root"))["message"]
    first = await alice.call("comment", message_id=parent["id"], text="c", client_msg_id="k")
    again = await alice.call("comment", message_id=parent["id"], text="c", client_msg_id="k")
    assert again["message"] == first["message"]
    await chat.restart()
    alice = await chat.reconnect(alice)
    after = await alice.call("comment", message_id=parent["id"], text="c", client_msg_id="k")
    assert after["message"] == first["message"]
    assert len((await alice.call("history"))["messages"]) == 2


async def test_bad_comment_params(chat: FeatureChat) -> None:
    await chat.start(max_text=10)
    alice, = await chat.users("alice")
    parent = (await alice.call("send", text="root"))["message"]
    for params, field in (({"message_id": 0, "text": "x"}, "message_id"),
                          ({"message_id": "1", "text": "x"}, "message_id"),
                          ({"message_id": True, "text": "x"}, "message_id"),
                          ({"message_id": parent["id"], "text": ""}, "text"),
                          ({"message_id": parent["id"], "text": "   "}, "text"),
                          ({"text": "x"}, "message_id"),
                          ({"message_id": parent["id"], "text": "x", "chat": "general"},
                           "chat")):
        error = await alice.error("comment", params)
        assert error["code"] == INVALID_PARAMS, params
        assert error["data"]["field"] == field, params
    error = await error_of(alice, "comment", message_id=parent["id"], text="x" * 11)
    assert error["code"] == TOO_LARGE and error["data"] == {"limit": 10}

"""Sending, direct chats, history, idempotency and parameter checks."""

from __future__ import annotations

import asyncio

import pytest
from domain_helpers import OpenService, login, texts, until_parked

from rpcchat.clock import ManualClock
from rpcchat.domain import ChatService
from rpcchat.errors import Forbidden, InvalidParams, NotFound, TooLarge

MESSAGE_FIELDS = {"id", "chat", "from", "text", "ts", "parent", "file", "client_msg_id",
                  "expires_at"}


async def test_send_defaults_to_general_and_returns_a_message(
    service: ChatService, clock: ManualClock
) -> None:
    alice = await login(service, "alice")
    result = await service.send(alice, "hello")
    message = result["message"]
    assert set(message) == MESSAGE_FIELDS
    assert message["chat"] == "general" and message["from"] == "alice"
    assert message["text"] == "hello" and message["ts"] == clock.time()
    assert message["parent"] is None and message["file"] is None
    assert message["client_msg_id"] is None
    assert message["expires_at"] == clock.time() + 3600.0


async def test_expires_at_is_null_without_a_ttl(open_service: OpenService) -> None:
    service = await open_service(message_ttl=0)
    alice = await login(service, "alice")
    assert (await service.send(alice, "hi"))["message"]["expires_at"] is None


async def test_a_user_name_works_as_the_actor(service: ChatService) -> None:
    await login(service, "alice")
    assert (await service.send("ALICE", "hi"))["message"]["from"] == "alice"


async def test_connect_returns_newest_20_of_general_oldest_first(service: ChatService) -> None:
    alice = await login(service, "alice")
    for number in range(26):
        await service.send(alice, f"m{number}")
    result = await service.connect("bob", "secret")
    assert [m["text"] for m in result["history"]] == [f"m{n}" for n in range(6, 26)]
    smaller = await service.connect("bob", "secret", 3)
    assert [m["text"] for m in smaller["history"]] == ["m23", "m24", "m25"]
    assert (await service.connect("bob", "secret", 0))["history"] == []


async def test_connect_history_default_follows_config(open_service: OpenService) -> None:
    service = await open_service(history=5)
    alice = await login(service, "alice")
    for number in range(8):
        await service.send(alice, f"m{number}")
    result = await service.connect("alice", "secret")
    assert [m["text"] for m in result["history"]] == ["m3", "m4", "m5", "m6", "m7"]


async def test_history_pages_backwards(service: ChatService) -> None:
    alice = await login(service, "alice")
    ids = [(await service.send(alice, f"m{n}"))["message"]["id"] for n in range(7)]
    page = await service.history(alice, limit=3)
    assert [m["text"] for m in page["messages"]] == ["m4", "m5", "m6"] and page["more"]
    older = await service.history(alice, before=page["messages"][0]["id"], limit=3)
    assert [m["text"] for m in older["messages"]] == ["m1", "m2", "m3"] and older["more"]
    oldest = await service.history(alice, "general", ids[1], 3)
    assert [m["text"] for m in oldest["messages"]] == ["m0"] and not oldest["more"]
    everything = await service.history(alice)
    assert len(everything["messages"]) == 7 and not everything["more"]


async def test_direct_message_opens_a_chat_for_both(service: ChatService) -> None:
    alice = await login(service, "alice")
    bob = await login(service, "Bob")
    bob_since = (await service.poll(bob, wait=False))["next"]
    sent = (await service.send(alice, "psst", to="bob"))["message"]
    assert sent["chat"] == "dm:Bob:alice"  # display names in code-point order
    again = (await service.send(bob, "yes?", to="ALICE"))["message"]
    assert again["chat"] == sent["chat"]
    polled = await service.poll(bob, since=bob_since, wait=False)
    assert [(e["type"], e["data"].get("user")) for e in polled["events"]] == [
        ("chat.joined", "alice"), ("chat.joined", "Bob"), ("message", None),
        ("message", None),
    ]
    history = await service.history(bob, "dm:Bob:alice")
    assert [m["text"] for m in history["messages"]] == ["psst", "yes?"]
    # Any case and order of the names finds the same chat.
    assert (await service.history(alice, "dm:ALICE:bob"))["messages"] == history["messages"]
    status = await service.status(bob)
    direct = [chat for chat in status["me"]["chats"] if chat["kind"] == "direct"]
    assert direct == [{"id": "dm:Bob:alice", "kind": "direct", "name": "alice", "owner": None,
                       "members": ["alice", "Bob"], "unread": 1}]
    assert (await service.send(alice, "by id", chat="dm:Bob:alice"))["message"]["chat"] == \
        "dm:Bob:alice"


async def test_a_third_user_sees_nothing_of_a_direct_chat(service: ChatService) -> None:
    alice = await login(service, "alice")
    await login(service, "bob")
    carol = await login(service, "carol")
    carol_since = service.head
    await service.send(alice, "secret plan", to="bob")
    polled = await service.poll(carol, since=carol_since, wait=False)
    assert polled["events"] == [] and polled["unread"] == 0
    with pytest.raises(Forbidden):
        await service.history(carol, "dm:alice:bob")
    with pytest.raises(Forbidden):
        await service.send(carol, "let me in", chat="dm:alice:bob")
    # And from before: carol's full stream has no trace of it.
    everything = await service.poll(carol, since=0, wait=False)
    assert all(e["data"].get("chat") != "dm:alice:bob" for e in everything["events"])
    assert "secret plan" not in texts(everything["events"])


async def test_a_third_user_parked_is_not_woken_by_a_direct_message(
    service: ChatService,
) -> None:
    alice = await login(service, "alice")
    await login(service, "bob")
    carol = await login(service, "carol")
    parked = asyncio.create_task(service.poll(carol, since=service.head, timeout=0.2))
    await until_parked(service, 1)
    await service.send(alice, "psst", to="bob")
    assert not parked.done()
    assert (await parked)["events"] == []


async def test_unknown_recipients_and_chats(service: ChatService) -> None:
    alice = await login(service, "alice")
    with pytest.raises(NotFound):
        await service.send(alice, "hi", to="nobody")
    with pytest.raises(NotFound):
        await service.send(alice, "hi", chat="no-such-chat")
    with pytest.raises(NotFound):
        await service.history(alice, "dm:alice:nobody")
    await login(service, "bob")
    with pytest.raises(NotFound):  # a direct chat exists only once opened with `to`
        await service.history(alice, "dm:alice:bob")


async def test_sending_to_yourself_is_invalid(service: ChatService) -> None:
    alice = await login(service, "alice")
    with pytest.raises(InvalidParams) as caught:
        await service.send(alice, "hi me", to="Alice")
    assert caught.value.data == {"field": "to",
                                 "reason": "cannot send a direct message to yourself"}


async def test_to_and_chat_together_are_invalid(service: ChatService) -> None:
    alice = await login(service, "alice")
    await login(service, "bob")
    with pytest.raises(InvalidParams) as caught:
        await service.send(alice, "hi", to="bob", chat="general")
    assert caught.value.data is not None and caught.value.data["field"] == "to"


async def test_text_limits(open_service: OpenService) -> None:
    service = await open_service(max_text=10)
    alice = await login(service, "alice")
    assert (await service.send(alice, "x" * 10))["message"]["text"] == "x" * 10
    assert (await service.send(alice, "é" * 10))["message"]["text"] == "é" * 10  # characters
    with pytest.raises(TooLarge) as too_large:
        await service.send(alice, "x" * 11)
    assert too_large.value.code == -32007 and too_large.value.data == {"limit": 10}
    for empty in ("", "   ", "\n\t"):
        with pytest.raises(InvalidParams) as caught:
            await service.send(alice, empty)
        assert caught.value.data == {"field": "text", "reason": "must not be empty"}
    for wrong_type in (None, 5, ["x"]):
        with pytest.raises(InvalidParams) as caught:
            await service.send(alice, wrong_type)
        assert caught.value.data == {"field": "text", "reason": "must be a string"}
    with pytest.raises(InvalidParams):
        await service.send(alice, "lone \ud800 surrogate")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"to": ""}, "to"),
        ({"to": 5}, "to"),
        ({"to": "bad name"}, "to"),
        ({"chat": ""}, "chat"),
        ({"chat": 7}, "chat"),
        ({"chat": "c" * 201}, "chat"),
        ({"client_msg_id": ""}, "client_msg_id"),
        ({"client_msg_id": "k" * 65}, "client_msg_id"),
        ({"client_msg_id": 12}, "client_msg_id"),
    ],
)
async def test_bad_send_params(
    service: ChatService, params: dict[str, object], field: str
) -> None:
    alice = await login(service, "alice")
    with pytest.raises(InvalidParams) as caught:
        await service.send(alice, "hi", **params)
    assert caught.value.data is not None and caught.value.data["field"] == field


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"chat": 3}, "chat"),
        ({"before": 0}, "before"),
        ({"before": "9"}, "before"),
        ({"before": 2**63}, "before"),  # past any stored id: refused, not a storage error
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": 1.5}, "limit"),
        ({"limit": False}, "limit"),
    ],
)
async def test_bad_history_params(
    service: ChatService, params: dict[str, object], field: str
) -> None:
    alice = await login(service, "alice")
    with pytest.raises(InvalidParams) as caught:
        await service.history(alice, **params)
    assert caught.value.data is not None and caught.value.data["field"] == field


@pytest.mark.parametrize("message_id", [0, "1", 2**63])
async def test_bad_comment_message_ids(service: ChatService, message_id: object) -> None:
    alice = await login(service, "alice")
    with pytest.raises(InvalidParams) as caught:
        await service.rules.comment(alice, message_id, "hi")
    assert caught.value.data is not None and caught.value.data["field"] == "message_id"


async def test_client_msg_id_makes_send_idempotent(service: ChatService) -> None:
    alice = await login(service, "alice")
    bob = await login(service, "bob")
    first = (await service.send(alice, "once", client_msg_id="k1"))["message"]
    retry = (await service.send(alice, "once again?", client_msg_id="k1"))["message"]
    assert retry == first and first["client_msg_id"] == "k1"
    # The key is per user.
    other = (await service.send(bob, "bob's", client_msg_id="k1"))["message"]
    assert other["id"] != first["id"]
    history = await service.history(alice)
    assert [m["text"] for m in history["messages"]] == ["once", "bob's"]


async def test_concurrent_retries_create_one_message(service: ChatService) -> None:
    alice = await login(service, "alice")
    results = await asyncio.gather(
        *(service.send(alice, "dup", client_msg_id="same") for _ in range(20)))
    assert len({r["message"]["id"] for r in results}) == 1
    assert len((await service.history(alice))["messages"]) == 1


async def test_a_failed_first_attempt_does_not_block_the_retry(service: ChatService) -> None:
    alice = await login(service, "alice")
    with pytest.raises(NotFound):
        await service.send(alice, "to whom?", to="bob", client_msg_id="k")
    await login(service, "bob")
    sent = (await service.send(alice, "to whom?", to="bob", client_msg_id="k"))["message"]
    assert sent["chat"] == "dm:alice:bob"


async def test_client_msg_id_survives_a_restart(open_service: OpenService) -> None:
    service = await open_service()
    alice = await login(service, "alice")
    first = (await service.send(alice, "once", client_msg_id="k1"))["message"]
    await service.close()
    reopened = await open_service()
    retry = (await reopened.send("alice", "once", client_msg_id="k1"))["message"]
    assert retry == first
    assert len((await reopened.history("alice"))["messages"]) == 1

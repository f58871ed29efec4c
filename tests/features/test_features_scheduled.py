"""Scheduled messages: send with at/delay, scheduled.list, scheduled.cancel, delivery."""

from __future__ import annotations

import time

from features_helpers import FeatureChat, events, of_type, texts
from rpc_testing import BANNED, CONFLICT, INVALID_PARAMS, NOT_FOUND, error_of
from rpcchat.clock import SystemClock

START = 1_700_000_000.0


async def test_delay_schedules_and_delivers_as_a_new_message(chat: FeatureChat) -> None:
    await chat.start(message_ttl=3600)
    alice, alice_phone, bob = await chat.users("alice", "alice", "bob")
    before = (await alice.call("poll", timeout=0))["next"]
    scheduled = (await alice.call("send", text="good morning", delay=60))["scheduled"]
    assert scheduled == {"id": scheduled["id"], "chat": "general", "text": "good morning",
                         "deliver_at": START + 60, "status": "pending", "message_id": None,
                         "reason": None}
    # Every client of the sender hears of it; the recipient sees nothing before.
    for client in (alice, alice_phone):
        assert of_type(await events(client, before), "scheduled.created") == [scheduled]
    assert texts(await events(bob)) == []
    listed = (await alice.call("scheduled.list"))["scheduled"]
    assert listed == [scheduled]
    chat.clock.advance(59)
    await chat.run_due()
    assert texts(await events(bob)) == []
    chat.clock.advance(1)
    await chat.run_due()
    delivered = of_type(await events(bob), "message")
    assert [m["text"] for m in delivered] == ["good morning"]
    message = delivered[0]
    assert message["ts"] == START + 60 and message["from"] == "alice"
    assert message["expires_at"] == START + 60 + 3600
    sent = of_type(await events(alice_phone, before), "scheduled.sent")
    assert sent == [{**scheduled, "status": "sent", "message_id": message["id"]}]
    assert of_type(await events(bob), "scheduled.sent") == []
    assert (await alice.call("scheduled.list"))["scheduled"] == []


async def test_at_is_an_absolute_time(chat: FeatureChat) -> None:
    await chat.start()
    alice, bob = await chat.users("alice", "bob")
    scheduled = (await alice.call("send", text="dm later", to="bob", at=START + 30))
    assert scheduled["scheduled"]["deliver_at"] == START + 30
    assert scheduled["scheduled"]["chat"] == "dm:alice:bob"
    chat.clock.advance(30)
    await chat.run_due()
    delivered = of_type(await events(bob), "message")
    assert [(m["text"], m["chat"]) for m in delivered] == [("dm later", "dm:alice:bob")]
    chats = [c["id"] for c in (await bob.call("status"))["me"]["chats"]]
    assert "dm:alice:bob" in chats  # the direct chat was opened by the delivery


async def test_bad_times_are_invalid_params(chat: FeatureChat) -> None:
    await chat.start()
    alice, = await chat.users("alice")
    cases: list[tuple[dict[str, object], str]] = [
        ({"at": START - 1}, "at"),
        ({"at": START}, "at"),
        ({"at": START + 10, "delay": 10}, "at"),
        ({"delay": 0}, "delay"),
        ({"delay": -5}, "delay"),
        ({"delay": "soon"}, "delay"),
        ({"at": "tomorrow"}, "at"),
        ({"delay": 3700 * 86400}, "delay"),
        ({"at": START + 3700 * 86400}, "at"),
    ]
    for params, field in cases:
        error = await alice.error("send", {"text": "x", **params})
        assert error["code"] == INVALID_PARAMS, params
        assert error["data"]["field"] == field, params
    assert (await alice.call("scheduled.list"))["scheduled"] == []


async def test_destination_is_checked_when_scheduling(chat: FeatureChat) -> None:
    await chat.start()
    alice, bob = await chat.users("alice", "bob")
    assert (await error_of(alice, "send", text="x", to="nobody", delay=5))["code"] == NOT_FOUND
    error = await error_of(alice, "send", text="x", to="alice", delay=5)
    assert error["code"] == INVALID_PARAMS
    assert (await error_of(alice, "send", text="x", chat="g:nope", delay=5))["code"] == NOT_FOUND


async def test_cancel_is_for_the_owner_and_only_once(chat: FeatureChat) -> None:
    await chat.start()
    alice, bob = await chat.users("alice", "bob")
    scheduled = (await alice.call("send", text="maybe", delay=60))["scheduled"]
    # Someone else's id looks exactly like an unknown one.
    assert (await error_of(bob, "scheduled.cancel", id=scheduled["id"]))["code"] == NOT_FOUND
    assert (await error_of(bob, "scheduled.cancel", id="no-such-id"))["code"] == NOT_FOUND
    cancelled = (await alice.call("scheduled.cancel", id=scheduled["id"]))["scheduled"]
    assert cancelled == {**scheduled, "status": "cancelled"}
    assert of_type(await events(alice), "scheduled.cancelled") == [cancelled]
    assert of_type(await events(bob), "scheduled.cancelled") == []
    error = await error_of(alice, "scheduled.cancel", id=scheduled["id"])
    assert error["code"] == CONFLICT and error["data"]["status"] == "cancelled"
    chat.clock.advance(60)
    await chat.run_due()
    assert texts(await events(bob)) == []
    assert (await alice.call("scheduled.list"))["scheduled"] == []


async def test_cancel_after_delivery_is_a_conflict(chat: FeatureChat) -> None:
    await chat.start()
    alice, = await chat.users("alice")
    scheduled = (await alice.call("send", text="soon", delay=1))["scheduled"]
    chat.clock.advance(1)
    await chat.run_due()
    error = await error_of(alice, "scheduled.cancel", id=scheduled["id"])
    assert error["code"] == CONFLICT
    assert error["data"]["status"] == "sent" and error["data"]["message_id"] is not None
    await chat.restart()
    alice = await chat.reconnect(alice)
    error = await error_of(alice, "scheduled.cancel", id=scheduled["id"])
    assert error["code"] == CONFLICT and error["data"]["status"] == "sent"


async def test_bad_cancel_params(chat: FeatureChat) -> None:
    await chat.start()
    alice, = await chat.users("alice")
    for params in ({}, {"id": ""}, {"id": 5}, {"id": "x" * 65}):
        error = await alice.error("scheduled.cancel", params)
        assert error["code"] == INVALID_PARAMS and error["data"]["field"] == "id", params


async def test_list_shows_own_pending_soonest_first(chat: FeatureChat) -> None:
    await chat.start()
    alice, bob = await chat.users("alice", "bob")
    late = (await alice.call("send", text="late", delay=300))["scheduled"]
    early = (await alice.call("send", text="early", delay=100))["scheduled"]
    await bob.call("send", text="bob's", delay=50)
    assert (await alice.call("scheduled.list"))["scheduled"] == [early, late]
    assert [s["text"] for s in (await bob.call("scheduled.list"))["scheduled"]] == ["bob's"]


async def test_one_timer_for_the_nearest(chat: FeatureChat) -> None:
    server = await chat.start()
    alice, = await chat.users("alice")
    scheduler = server.service.rules.scheduler
    assert scheduler.armed_for is None
    await alice.call("send", text="b", delay=200)
    assert scheduler.armed_for == START + 200
    first = (await alice.call("send", text="a", delay=100))["scheduled"]
    assert scheduler.armed_for == START + 100
    await alice.call("scheduled.cancel", id=first["id"])
    chat.clock.advance(100)
    await chat.run_due()
    assert scheduler.armed_for == START + 200


async def test_pending_survive_a_restart_and_overdue_go_out_in_order(
        chat: FeatureChat) -> None:
    await chat.start()
    alice, bob = await chat.users("alice", "bob")
    second = (await alice.call("send", text="second", delay=20))["scheduled"]
    first = (await alice.call("send", text="first", delay=10))["scheduled"]
    later = (await alice.call("send", text="later", delay=1000))["scheduled"]
    await chat.restart()
    alice = await chat.reconnect(alice)
    assert (await alice.call("scheduled.list"))["scheduled"] == [first, second, later]
    await chat.live().close()
    chat.clock.advance(30)  # both fall due while the server is down
    await chat.start(**chat.settings)
    bob = await chat.reconnect(bob)
    delivered = of_type(await events(bob), "message")
    assert [m["text"] for m in delivered] == ["first", "second"]
    assert all(m["ts"] == START + 30 for m in delivered)  # delivered at start
    alice = await chat.reconnect(alice)
    assert (await alice.call("scheduled.list"))["scheduled"] == [later]


async def test_a_sender_no_longer_member_gets_it_cancelled(chat: FeatureChat) -> None:
    await chat.start()
    alice, bob = await chat.users("alice", "bob")
    group = (await alice.call("chat.create", name="team", members=["bob"]))["chat"]
    scheduled = (await bob.call("send", text="for the team", chat=group["id"], delay=10))
    await bob.call("chat.leave", chat=group["id"])
    chat.clock.advance(10)
    await chat.run_due()
    cancelled = of_type(await events(bob), "scheduled.cancelled")
    assert cancelled == [{**scheduled["scheduled"], "status": "cancelled",
                          "reason": "not_member"}]
    assert texts(await events(alice)) == []


async def test_a_banned_sender_gets_it_cancelled(chat: FeatureChat) -> None:
    await chat.start(report_threshold=1, ban_duration=100)
    alice, bob = await chat.users("alice", "bob")
    scheduled = (await alice.call("send", text="spam", delay=10))["scheduled"]
    await bob.call("report", user="alice")
    # While banned, scheduling is refused as sending is.
    assert (await error_of(alice, "send", text="x", delay=5))["code"] == BANNED
    chat.clock.advance(10)
    await chat.run_due()
    assert texts(await events(bob)) == []
    assert of_type(await events(alice), "scheduled.cancelled") == [
        {**scheduled, "status": "cancelled", "reason": "banned"}]


async def test_a_rate_limited_delivery_is_cancelled(chat: FeatureChat) -> None:
    await chat.start(rate_limit=1, rate_period=3600)
    alice, bob = await chat.users("alice", "bob")
    scheduled = (await alice.call("send", text="later", delay=10))["scheduled"]
    await alice.call("send", text="now")  # uses up the period's only message
    chat.clock.advance(10)
    await chat.run_due()
    assert texts(await events(bob)) == ["now"]
    assert of_type(await events(alice), "scheduled.cancelled") == [
        {**scheduled, "status": "cancelled", "reason": "rate_limited"}]


async def test_scheduled_deliveries_count_toward_the_limit(chat: FeatureChat) -> None:
    await chat.start(rate_limit=1, rate_period=3600)
    alice, = await chat.users("alice")
    await alice.call("send", text="later", delay=10)
    chat.clock.advance(10)
    await chat.run_due()
    assert (await alice.call("status"))["me"]["rate"]["remaining"] == 0


async def test_client_msg_id_makes_scheduling_idempotent(chat: FeatureChat) -> None:
    await chat.start()
    alice, = await chat.users("alice")
    first = await alice.call("send", text="x", delay=10, client_msg_id="k")
    again = await alice.call("send", text="x", delay=10, client_msg_id="k")
    assert again["scheduled"] == first["scheduled"]
    await chat.restart()
    alice = await chat.reconnect(alice)
    after = await alice.call("send", text="x", delay=10, client_msg_id="k")
    assert after["scheduled"]["id"] == first["scheduled"]["id"]
    assert len((await alice.call("scheduled.list"))["scheduled"]) == 1


async def test_delivery_on_the_real_clock(chat: FeatureChat) -> None:
    await chat.start(clock=SystemClock())
    alice, bob = await chat.users("alice", "bob")
    since = (await bob.call("poll", timeout=0))["next"]
    await alice.call("send", text="in a moment", delay=0.2)
    started = time.monotonic()
    result = await bob.call("poll", since=since, timeout=5)
    assert texts(result["events"]) == ["in a moment"]
    assert time.monotonic() - started < 4

"""Events, cursors, unread counts and long-poll."""

from __future__ import annotations

import asyncio

import pytest
from domain_helpers import OpenService, login, texts, until_parked

from rpcchat.clock import ManualClock
from rpcchat.domain import ChatService
from rpcchat.errors import CursorAhead, InvalidParams, Unauthorized


async def test_events_are_ascending_and_next_continues(service: ChatService) -> None:
    alice = await login(service, "alice")
    start = (await service.poll(alice, wait=False))["next"]
    for number in range(5):
        await service.send(alice, f"m{number}")
    first = await service.poll(alice, since=start, limit=2, wait=False)
    assert texts(first["events"]) == ["m0", "m1"] and first["more"]
    assert first["next"] == first["events"][-1]["seq"]
    second = await service.poll(alice, since=first["next"], limit=2, wait=False)
    assert texts(second["events"]) == ["m2", "m3"] and second["more"]
    third = await service.poll(alice, since=second["next"], limit=2, wait=False)
    assert texts(third["events"]) == ["m4"] and not third["more"]
    seqs = [e["seq"] for batch in (first, second, third) for e in batch["events"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert third["next"] == service.head
    for event in third["events"]:
        assert set(event) == {"seq", "type", "ts", "data"}


async def test_next_skips_events_the_user_cannot_see(service: ChatService) -> None:
    alice = await login(service, "alice")
    await login(service, "bob")
    carol = await login(service, "carol")
    since = (await service.poll(carol, wait=False))["next"]
    for number in range(30):
        await service.send(alice, f"private {number}", to="bob")
    result = await service.poll(carol, since=since, wait=False)
    assert result["events"] == [] and result["next"] == service.head and not result["more"]


async def test_cursor_ahead_of_the_server(service: ChatService) -> None:
    alice = await login(service, "alice")
    with pytest.raises(CursorAhead) as caught:
        await service.poll(alice, since=service.head + 1)
    assert caught.value.code == -32008 and caught.value.data == {"head": service.head}


async def test_unread_after_reconnect_general_and_private(service: ChatService) -> None:
    alice = await login(service, "alice")
    bob = await login(service, "bob")
    seen = (await service.poll(bob, wait=False))["next"]
    await service.poll(bob, since=seen, wait=False)  # bob has read everything so far
    await service.send(alice, "g1")
    await service.send(alice, "d1", to="bob")
    await service.send(bob, "own message is not unread")
    await service.send(alice, "g2")
    await service.disconnect(bob)

    again = await service.connect("bob", "secret")
    assert again["unread"] == 3 and again["cursor"] == seen
    bob2 = service.authenticate(again["token"])
    first = await service.poll(bob2, limit=2, wait=False)  # no since: from the cursor
    assert texts(first["events"]) == ["g1"] and first["more"]
    rest = await service.poll(bob2, since=first["next"], wait=False)
    assert texts(rest["events"]) == ["d1", "own message is not unread", "g2"]
    assert rest["unread"] == 2  # acknowledged up to first["next"], which covers g1 only
    done = await service.poll(bob2, since=rest["next"], wait=False)
    assert done["events"] == [] and done["unread"] == 0
    # A fresh client after that gets nothing already acknowledged.
    third = service.authenticate((await service.connect("bob", "secret"))["token"])
    assert (await service.poll(third, wait=False))["events"] == []


async def test_acknowledging_never_moves_the_cursor_back(service: ChatService) -> None:
    alice = await login(service, "alice")
    await service.send(alice, "m")
    head = service.head
    await service.poll(alice, since=head, wait=False)
    await service.poll(alice, since=0, wait=False)
    assert (await service.status(alice))["me"]["cursor"] == head


async def test_two_sessions_of_one_user_get_the_same_events(service: ChatService) -> None:
    alice = await login(service, "alice")
    phone = await login(service, "bob")
    laptop = await login(service, "bob")
    start = service.head
    await service.send(alice, "one")
    await service.send(phone, "two")
    await service.send(alice, "three", to="bob")
    from_phone = await service.poll(phone, since=start, wait=False)
    from_laptop = await service.poll(laptop, since=start, wait=False)
    assert from_phone["events"] == from_laptop["events"]
    assert texts(from_phone["events"]) == ["one", "two", "three"]
    # The cursor is shared: the phone acknowledged, so the laptop's status shows it.
    await service.poll(phone, since=from_phone["next"], wait=False)
    assert (await service.status(laptop))["me"]["cursor"] == from_phone["next"]


async def test_parked_poll_wakes_on_send(service: ChatService) -> None:
    alice = await login(service, "alice")
    bob = await login(service, "bob")
    since = service.head
    waiting = asyncio.create_task(service.poll(bob, since=since, timeout=30))
    await until_parked(service, 1)
    await service.send(alice, "wake up")
    result = await asyncio.wait_for(waiting, 5)
    assert texts(result["events"]) == ["wake up"]
    assert result["unread"] == 1 and service.parked_polls == 0


async def test_parked_poll_wakes_on_a_direct_message(service: ChatService) -> None:
    alice = await login(service, "alice")
    bob = await login(service, "bob")
    waiting = asyncio.create_task(service.poll(bob, since=service.head, timeout=30))
    await until_parked(service, 1)
    await service.send(alice, "psst", to="bob")
    result = await asyncio.wait_for(waiting, 5)
    assert [e["type"] for e in result["events"]] == ["chat.joined", "chat.joined", "message"]


async def test_parked_poll_wakes_on_a_new_account(service: ChatService) -> None:
    alice = await login(service, "alice")
    waiting = asyncio.create_task(service.poll(alice, since=service.head, timeout=30))
    await until_parked(service, 1)
    await service.connect("bob", "secret")
    result = await asyncio.wait_for(waiting, 5)
    assert [(e["type"], e["data"]) for e in result["events"]] == [
        ("chat.joined", {"chat": "general", "user": "bob"})]


async def test_timeout_returns_no_events(service: ChatService) -> None:
    alice = await login(service, "alice")
    since = service.head
    result = await service.poll(alice, since=since, timeout=0.05)
    assert result["events"] == [] and result["next"] == since and not result["more"]
    assert service.parked_polls == 0


async def test_timeout_zero_and_wait_false_never_park(service: ChatService) -> None:
    alice = await login(service, "alice")
    head = service.head
    for kwargs in ({"timeout": 0}, {"timeout": 60, "wait": False}):
        result = await asyncio.wait_for(service.poll(alice, since=head, **kwargs), 1)
        assert result["events"] == []
    assert service.parked_polls == 0


async def test_a_newer_poll_of_the_same_session_ends_the_older(service: ChatService) -> None:
    alice = await login(service, "alice")
    bob = await login(service, "bob")
    since = service.head
    older = asyncio.create_task(service.poll(bob, since=since, timeout=30))
    await until_parked(service, 1)
    newer = asyncio.create_task(service.poll(bob, since=since, timeout=30))
    first = await asyncio.wait_for(older, 5)
    assert first["events"] == [] and first["next"] == since
    await until_parked(service, 1)
    await service.send(alice, "for the newer")
    assert texts((await asyncio.wait_for(newer, 5))["events"]) == ["for the newer"]


async def test_polls_of_other_sessions_do_not_end_each_other(service: ChatService) -> None:
    alice = await login(service, "alice")
    phone = await login(service, "bob")
    laptop = await login(service, "bob")
    since = service.head
    waiting = [asyncio.create_task(service.poll(s, since=since, timeout=30))
               for s in (phone, laptop)]
    await until_parked(service, 2)
    await service.send(alice, "both")
    for task in waiting:
        assert texts((await asyncio.wait_for(task, 5))["events"]) == ["both"]


async def test_disconnect_releases_the_parked_poll(service: ChatService) -> None:
    bob = await login(service, "bob")
    waiting = asyncio.create_task(service.poll(bob, since=service.head, timeout=30))
    await until_parked(service, 1)
    await service.disconnect(bob)
    assert (await asyncio.wait_for(waiting, 5))["events"] == []
    assert service.parked_polls == 0
    with pytest.raises(Unauthorized):
        await service.poll(bob)


async def test_close_releases_every_parked_poll(service: ChatService) -> None:
    users = [await login(service, f"user{n}") for n in range(3)]
    waiting = [asyncio.create_task(service.poll(u, since=service.head, timeout=30))
               for u in users]
    await until_parked(service, 3)
    await service.close()
    for task in waiting:
        assert (await asyncio.wait_for(task, 5))["events"] == []


async def test_cancelling_a_parked_poll_cleans_up(service: ChatService) -> None:
    alice = await login(service, "alice")
    bob = await login(service, "bob")
    waiting = asyncio.create_task(service.poll(bob, since=service.head, timeout=30))
    await until_parked(service, 1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert service.parked_polls == 0
    await service.send(alice, "nobody waits")  # waking nobody must not fail
    result = await service.poll(bob, wait=False)
    assert "nobody waits" in texts(result["events"])


async def test_a_poll_from_an_old_position_reads_from_the_store(
    open_service: OpenService,
) -> None:
    service = await open_service(event_window=4)
    alice = await login(service, "alice")
    start = service.head
    for number in range(20):
        await service.send(alice, f"m{number}")
    collected: list[str] = []
    position = start
    while True:
        page = await service.poll(alice, since=position, limit=3, wait=False)
        collected += texts(page["events"])
        position = page["next"]
        if not page["more"]:
            break
    assert collected == [f"m{n}" for n in range(20)]
    assert position == service.head


async def test_a_store_page_that_fills_the_limit_while_the_window_moves_on(
    open_service: OpenService, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The store answers exactly `limit` events; meanwhile new events push the window's
    floor past that page, so the poll must stop at the page instead of asking the store
    for zero more (which once ended in an IndexError)."""
    service = await open_service(event_window=1)
    alice = await login(service, "alice")
    for number in range(5):
        await service.send(alice, f"m{number}")
    store = service._store
    read_events = store.visible_events
    reads = 0

    async def read_then_publish(*args: object, **kwargs: object) -> object:
        nonlocal reads
        reads += 1
        page = await read_events(*args, **kwargs)  # type: ignore[arg-type]
        if reads == 1:
            for number in range(3):
                await service.send(alice, f"later {number}")
        return page

    monkeypatch.setattr(store, "visible_events", read_then_publish)
    page = await service.poll(alice, since=0, limit=6, wait=False)
    assert [event["type"] for event in page["events"]] == ["chat.joined"] + ["message"] * 5
    assert texts(page["events"]) == [f"m{n}" for n in range(5)]
    assert page["more"] is True and page["next"] == page["events"][-1]["seq"]
    rest = await service.poll(alice, since=page["next"], wait=False)
    assert texts(rest["events"]) == [f"later {n}" for n in range(3)]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": -1}, "since"),
        ({"since": "3"}, "since"),
        ({"since": 1.0}, "since"),
        ({"since": True}, "since"),
        ({"timeout": -0.1}, "timeout"),
        ({"timeout": 60.5}, "timeout"),
        ({"timeout": "1"}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"limit": None}, "limit"),
        ({"wait": 1}, "wait"),
    ],
)
async def test_bad_poll_params(
    service: ChatService, params: dict[str, object], field: str
) -> None:
    alice = await login(service, "alice")
    with pytest.raises(InvalidParams) as caught:
        await service.poll(alice, **params)
    assert caught.value.data is not None and caught.value.data["field"] == field


async def test_status_counts_users_and_online(
    service: ChatService, clock: ManualClock
) -> None:
    alice = await login(service, "alice")
    await login(service, "bob")
    status = await service.status(None)
    assert "me" not in status
    assert status["server"]["users"] == 2 and status["server"]["online"] == 2
    assert status["server"]["version"] and status["server"]["uptime"] >= 0
    clock.advance(120)
    assert (await service.status(None))["server"]["online"] == 0
    waiting = asyncio.create_task(service.poll(alice, since=service.head, timeout=30))
    await until_parked(service, 1)
    clock.advance(120)
    assert (await service.status(None))["server"]["online"] == 1  # parked counts
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_status_me_shape_and_rate(open_service: OpenService) -> None:
    service = await open_service(rate_limit=20)
    alice = await login(service, "alice")
    await service.send(alice, "counted")
    me = (await service.status(alice))["me"]
    assert set(me) == {"name", "chats", "warnings", "banned_until", "rate", "cursor"}
    assert me["warnings"] == 0 and me["banned_until"] is None
    assert me["rate"]["limit"] == 20 and me["rate"]["remaining"] == 19
    assert me["rate"]["resets_at"] > 1_700_000_000.0
    assert me["chats"] == [{"id": "general", "kind": "general", "name": "general",
                            "owner": None, "members": ["alice"], "unread": 0}]


async def test_online_follows_each_users_latest_call(
    service: ChatService, clock: ManualClock
) -> None:
    alice = await login(service, "alice")
    bob = await login(service, "bob")
    await login(service, "carol")
    clock.advance(40)
    await service.poll(alice, timeout=0)    # alice is seen again; bob and carol are not
    clock.advance(40)                       # carol's and bob's sightings are now 80 s old
    assert (await service.status(None))["server"]["online"] == 1
    waiting = asyncio.create_task(service.poll(alice, since=service.head, timeout=30))
    await until_parked(service, 1)
    # Parked and recently seen at once: still one user.
    assert (await service.status(None))["server"]["online"] == 1
    await service.poll(bob, timeout=0)
    assert (await service.status(None))["server"]["online"] == 2
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting

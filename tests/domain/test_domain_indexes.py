"""The in-memory indexes on their own: event window, unread counts, poll hub, rate."""

from __future__ import annotations

import asyncio

import pytest

from rpcchat.domain.feed import EventFeed
from rpcchat.domain.polling import PollHub, WakeReason
from rpcchat.domain.rate import RateCounter
from rpcchat.domain.records import EventRecord
from rpcchat.domain.state import ChatState, EventWindow, UnreadIndex, UserState, WindowEntry


def _user(user_id: int, **memberships: list[tuple[int, int | None]]) -> UserState:
    user = UserState(user_id, f"u{user_id}", f"u{user_id}", "hash", 0.0, 0)
    user.memberships.update(memberships)
    return user


def _entry(seq: int, chat: str | None = "general", target: int | None = None) -> WindowEntry:
    return WindowEntry(seq, chat, target, {"seq": seq})


def test_window_trims_in_chunks_and_moves_the_floor() -> None:
    window = EventWindow(4, 0, [])
    for seq in range(1, 7):
        window.append(_entry(seq))
    assert window.floor == 0 and len(window) == 6  # below capacity + a quarter + 1
    window.append(_entry(7))
    assert window.floor == 3 and len(window) == 4


def test_window_collect_respects_membership_intervals_and_targets() -> None:
    user = _user(1, general=[(3, 5), (8, None)])
    window = EventWindow(100, 0, [_entry(seq) for seq in range(1, 11)])
    window.append(_entry(11, None, target=1))
    window.append(_entry(12, None, target=2))
    found, more = window.collect(user, 0, 100)
    assert [e["seq"] for e in found] == [3, 4, 5, 8, 9, 10, 11] and not more
    found, more = window.collect(user, 4, 2)
    assert [e["seq"] for e in found] == [5, 8] and more


def test_feed_collect_with_limit_zero_answers_only_more() -> None:
    user = _user(1, general=[(1, None)])
    feed = EventFeed({1: user}, {}, EventWindow(10, 0, [_entry(1), _entry(2)]), 2)
    assert feed.collect(user, 0, 0) == ([], 0, True)
    assert feed.collect(user, 2, 0) == ([], 2, False)


def test_unread_counts_others_messages_above_the_cursor() -> None:
    index = UnreadIndex()
    for seq, sender in ((2, 1), (3, 2), (4, 2), (6, 1), (7, 2)):
        index.add("general", sender, seq)
    user = _user(1, general=[(1, None)])
    assert index.unread(user) == 3
    user.cursor = 3
    assert index.unread(user) == 2
    late = _user(1, general=[(5, None)])  # joined later: earlier messages are not its
    assert index.unread(late) == 1
    left = _user(1, general=[(1, 4)])  # left at 4: later ones are not its either
    assert index.unread(left) == 2
    assert index.unread(_user(3)) == 0


async def test_hub_wakes_supersedes_and_times_out() -> None:
    hub = PollHub()
    first = hub.park(1, 10, timeout=30)
    second = hub.park(1, 10, timeout=30)
    assert await first.future is WakeReason.SUPERSEDED
    other = hub.park(2, 11, timeout=30)
    hub.wake_users([10])
    assert await second.future is WakeReason.EVENT
    assert not other.future.done() and len(hub) == 1
    short = hub.park(3, 12, timeout=0.01)
    assert await asyncio.wait_for(short.future, 2) is WakeReason.TIMEOUT
    hub.release_all(WakeReason.CLOSED)
    assert await other.future is WakeReason.CLOSED and len(hub) == 0


async def test_feed_wakes_only_users_who_can_see() -> None:
    member, outsider, late = _user(1, room=[(1, None)]), _user(2), _user(3, room=[(9, None)])
    room = ChatState("room", "group", "room", None, 0.0, {1: None, 3: None})
    feed = EventFeed({1: member, 2: outsider, 3: late}, {"room": room},
                     EventWindow(10, 0, []), 0)
    waiters = [feed.hub.park(n, n, timeout=30) for n in (1, 2, 3)]
    feed.publish([EventRecord(5, "message", 0.0, {}, chat_id="room", actor_id=1)])
    assert [w.future.done() for w in waiters] == [True, False, False]
    feed.publish([EventRecord(6, "user.warned", 0.0, {}, target_id=2)])
    assert waiters[1].future.done() and not waiters[2].future.done()
    assert feed.head == 6
    feed.hub.release_all(WakeReason.CLOSED)


def test_feed_publishes_with_nobody_parked() -> None:
    member = _user(1, room=[(1, None)])
    room = ChatState("room", "group", "room", None, 0.0, {1: None})
    feed = EventFeed({1: member}, {"room": room}, EventWindow(10, 0, []), 0)
    feed.publish([EventRecord(5, "message", 0.0, {"n": 1}, chat_id="room", actor_id=2),
                  EventRecord(4, "message", 0.0, {"n": 0}, chat_id="room", actor_id=2)])
    assert feed.head == 5   # the newest seq, whatever order a write lists its events in
    events, next_position, more = feed.collect(member, 0, 10)
    assert [event["data"] for event in events] == [{"n": 1}, {"n": 0}]
    assert (next_position, more) == (5, False)
    assert feed.unread.unread(member) == 2


@pytest.mark.parametrize(("limit", "period"), [(0, 3600.0), (5, 0.0)])
def test_rate_status_when_off(limit: int, period: float) -> None:
    assert RateCounter(limit, period).status(1, 100.0) == {
        "limit": 0, "remaining": None, "resets_at": None}


def test_rate_counts_per_aligned_period() -> None:
    counter = RateCounter(3, 100.0)
    counter.record(1, 250.0)
    counter.record(1, 260.0)
    assert counter.status(1, 270.0) == {"limit": 3, "remaining": 1, "resets_at": 300.0}
    assert counter.remaining(1, 301.0) == 3
    counter.record(1, 301.0)
    assert counter.remaining(1, 302.0) == 2

"""Scheduled messages: pending ones in a heap by due time, ONE timer for the nearest.

A scheduled message is stored as pending, delivered at `deliver_at` (by the server's
wall clock) through the same path as `send` (so membership, bans and the rate limit are
checked again at that moment), and then marked sent with the new message's id, in the
same write as the message. Finished ones stay (for `scheduled.cancel` to answer Conflict)
until their lifetime ends: a sent one with its message, a cancelled one `--message-ttl`
after the cancellation.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rpcchat.clock import Clock
from rpcchat.domain.ids import opaque_id
from rpcchat.domain.feature_records import SCHEDULED_PENDING, ScheduledRow
from rpcchat.domain.records import Wire
from rpcchat.domain.timers import WallTimer
from rpcchat.errors import InvalidParams

logger = logging.getLogger(__name__)

EVENT_SCHEDULED_CREATED = "scheduled.created"
EVENT_SCHEDULED_CANCELLED = "scheduled.cancelled"
EVENT_SCHEDULED_SENT = "scheduled.sent"

# Why the server (not the owner) cancelled a scheduled message: the `reason` field.
REASON_BANNED = "banned"
REASON_RATE_LIMITED = "rate_limited"
REASON_NOT_MEMBER = "not_member"
REASON_CHAT_GONE = "chat_gone"

MAX_AHEAD = 3653 * 24 * 3600.0  # ten years: later is a mistake, not a plan
SCHEDULED_ID_MAX = 64
RETRY_DELAY = 5.0


@dataclass(slots=True, eq=False)
class ScheduledItem:
    scheduled_id: str
    number: int
    user_id: int
    chat_id: str
    to_user_id: int | None
    text: str
    deliver_at: float
    created_at: float
    client_msg_id: str | None
    status: str = SCHEDULED_PENDING
    message_id: int | None = None
    reason: str | None = None
    expires_at: float | None = None
    # The write that creates it (a retry with the same client_msg_id waits on it).
    stored: asyncio.Future[None] | None = None

    def wire(self) -> Wire:
        """The contract's Scheduled object (plus `reason` when the server cancelled it)."""
        return {
            "id": self.scheduled_id,
            "chat": self.chat_id,
            "text": self.text,
            "deliver_at": self.deliver_at,
            "status": self.status,
            "message_id": self.message_id,
            "reason": self.reason,
        }


def delivery_time(at: object, delay: object, now: float) -> float | None:
    """When a `send` with `at` or `delay` is due; None when neither is given."""
    if at is None and delay is None:
        return None
    if at is not None and delay is not None:
        raise InvalidParams("at", "give either at or delay, not both")
    if at is not None:
        moment = _finite(at, "at")
        if moment <= now:
            raise InvalidParams("at", "must be in the future")
        if moment - now > MAX_AHEAD:
            raise InvalidParams("at", f"must be at most {MAX_AHEAD:.0f} s ahead")
        return moment
    seconds = _finite(delay, "delay")
    if seconds <= 0:
        raise InvalidParams("delay", "must be greater than 0")
    if seconds > MAX_AHEAD:
        raise InvalidParams("delay", f"must be at most {MAX_AHEAD:.0f}")
    return now + seconds


def scheduled_id(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= SCHEDULED_ID_MAX:
        raise InvalidParams("id", f"must be a string of 1 to {SCHEDULED_ID_MAX} characters")
    return value


def _finite(value: object, field: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise InvalidParams(field, "must be a number")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidParams(field, "must be a finite number")
    return number


class Scheduler:
    """Scheduled messages in memory and the timer that delivers them.

    `deliver(item, now)` is called for each due item in (deliver_at, creation) order; it
    must finish the item (sent or cancelled) or `reopen` it.
    """

    def __init__(self, clock: Clock, deliver: Callable[[ScheduledItem, float], None]) -> None:
        self._clock = clock
        self._deliver = deliver
        self._items: dict[str, ScheduledItem] = {}
        self._pending_by_user: dict[int, dict[str, ScheduledItem]] = {}
        self._by_client_msg: dict[tuple[int, str], ScheduledItem] = {}
        # (deliver_at, number, id); entries of items no longer pending are skipped lazily.
        self._heap: list[tuple[float, int, str]] = []
        self._last_number = 0
        self._retry_at = float("-inf")
        self._timer = WallTimer(clock, self.run_due)

    # --- state ---------------------------------------------------------------------

    def load(self, rows: Iterable[ScheduledRow]) -> None:
        for row in rows:
            item = ScheduledItem(row.scheduled_id, row.number, row.user_id, row.chat_id,
                                 row.to_user_id, row.text, row.deliver_at, row.created_at,
                                 row.client_msg_id, row.status, row.message_id, row.reason,
                                 row.expires_at)
            self._register(item)
            if item.status == SCHEDULED_PENDING:
                self.queue(item)
            self._last_number = max(self._last_number, item.number)

    def create(self, user_id: int, chat_id: str, to_user_id: int | None, text: str,
               deliver_at: float, now: float, client_msg_id: str | None) -> ScheduledItem:
        """A new pending item, known at once (so a retry finds it) but not due before
        `queue` (called once it is stored)."""
        self._last_number += 1
        item_id = opaque_id(12)
        while item_id in self._items:
            item_id = opaque_id(12)
        item = ScheduledItem(item_id, self._last_number, user_id, chat_id, to_user_id, text,
                             deliver_at, now, client_msg_id)
        self._register(item)
        return item

    def _register(self, item: ScheduledItem) -> None:
        self._items[item.scheduled_id] = item
        if item.client_msg_id is not None:
            self._by_client_msg[(item.user_id, item.client_msg_id)] = item
        if item.status == SCHEDULED_PENDING:
            self._pending_by_user.setdefault(item.user_id, {})[item.scheduled_id] = item

    def queue(self, item: ScheduledItem) -> None:
        heapq.heappush(self._heap, (item.deliver_at, item.number, item.scheduled_id))
        self._timer.arm(item.deliver_at)

    def discard(self, item: ScheduledItem) -> None:
        """Forget an item whose creation could not be stored."""
        self._forget(item.scheduled_id)

    def get(self, item_id: str) -> ScheduledItem | None:
        return self._items.get(item_id)

    def by_client_msg(self, user_id: int, client_msg_id: str) -> ScheduledItem | None:
        return self._by_client_msg.get((user_id, client_msg_id))

    def pending_of(self, user_id: int) -> list[ScheduledItem]:
        items = self._pending_by_user.get(user_id, {}).values()
        return sorted(items, key=lambda item: (item.deliver_at, item.number))

    def finish(self, item: ScheduledItem, status: str, *, message_id: int | None = None,
               reason: str | None = None, expires_at: float | None = None) -> None:
        item.status = status
        item.message_id = message_id
        item.reason = reason
        item.expires_at = expires_at
        pending = self._pending_by_user.get(item.user_id)
        if pending is not None:
            pending.pop(item.scheduled_id, None)
            if not pending:
                del self._pending_by_user[item.user_id]

    def reopen(self, item: ScheduledItem) -> None:
        """Back to pending after its delivery failed (storage trouble): tried again in
        RETRY_DELAY seconds, not at once, so a lasting failure does not spin."""
        if item.scheduled_id not in self._items:
            return
        self.finish(item, SCHEDULED_PENDING)
        self._pending_by_user.setdefault(item.user_id, {})[item.scheduled_id] = item
        heapq.heappush(self._heap, (item.deliver_at, item.number, item.scheduled_id))
        self._retry_at = self._clock.time() + RETRY_DELAY
        self._timer.arm(self._retry_at)

    def drop(self, item_ids: Iterable[str]) -> None:
        """Finished items whose stored rows expired."""
        for item_id in item_ids:
            item = self._items.get(item_id)
            if item is not None and item.status != SCHEDULED_PENDING:
                self._forget(item_id)

    def _forget(self, item_id: str) -> None:
        item = self._items.pop(item_id, None)
        if item is None:
            return
        if item.client_msg_id is not None:
            self._by_client_msg.pop((item.user_id, item.client_msg_id), None)
        pending = self._pending_by_user.get(item.user_id)
        if pending is not None:
            pending.pop(item_id, None)
            if not pending:
                del self._pending_by_user[item.user_id]

    # --- delivery ------------------------------------------------------------------

    @property
    def armed_for(self) -> float | None:
        """The due time the one timer waits for (None: nothing pending)."""
        return self._timer.due

    def next_due(self) -> float | None:
        while self._heap:
            deliver_at, _, item_id = self._heap[0]
            item = self._items.get(item_id)
            if item is not None and item.status == SCHEDULED_PENDING:
                return deliver_at
            heapq.heappop(self._heap)  # cancelled, sent or forgotten since it was queued
        return None

    def take_due(self, now: float) -> list[ScheduledItem]:
        # An item can have two heap entries (reopened while its first one was still
        # queued, e.g. after a failed cancel): it must still be delivered once.
        due: dict[str, ScheduledItem] = {}
        while self._heap and self._heap[0][0] <= now:
            _, _, item_id = heapq.heappop(self._heap)
            item = self._items.get(item_id)
            if item is not None and item.status == SCHEDULED_PENDING:
                due.setdefault(item_id, item)
        return list(due.values())

    def run_due(self) -> None:
        """Deliver everything due by now, in order, then arm the timer for the next one.
        The timer calls this; so do start-up and tests (after advancing a ManualClock)."""
        now = self._clock.time()
        for item in self.take_due(now):
            try:
                self._deliver(item, now)
            except Exception:
                logger.exception("delivering scheduled message %s failed", item.scheduled_id)
                self.reopen(item)
        due = self.next_due()
        self._timer.rearm(None if due is None else max(due, self._retry_at))

    def close(self) -> None:
        self._timer.close()

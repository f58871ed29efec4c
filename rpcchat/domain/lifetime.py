"""Message lifetime: when a message expires, and deleting what expired.

Two halves, so nothing expired is ever shown and nothing scans on a request:
- Reads hide what has expired by now (`is_expired`, `alive`): history, poll (memory window
  and SQLite) and the history returned by connect check each item's `expires_at`.
- `MessageLifetime` deletes expired rows in batches (messages, their events and
  client_msg_id records, finished scheduled messages), then lets memory forget them
  (unread counts, caches) and calls the registered hooks (e.g. to delete a file's bytes).
  ONE loop timer waits for the earliest `expires_at` in storage (read from the ordered
  expiry indexes); passes are at least `min_gap` apart, so a stream of messages expiring
  one after another is deleted in batches.

A comment expires at its own time or its parent's, whichever is first, so it never
outlives the message it comments on (and a thread is gone when its first message is).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial

from rpcchat.clock import Clock
from rpcchat.domain.feature_records import ExpiredMessage, ExpiryBatch
from rpcchat.domain.feature_store import expire_due
from rpcchat.domain.records import Wire
from rpcchat.domain.store import Store
from rpcchat.domain.timers import WallTimer

logger = logging.getLogger(__name__)

ExpiryHook = Callable[[Sequence[ExpiredMessage]], "Awaitable[None] | None"]
"""Called with the messages just deleted (after the deletion committed)."""

DEFAULT_MIN_GAP = 0.1
RETRY_AFTER_FAILURE = 5.0


def message_expiry(now: float, ttl: float, parent_expires_at: float | None = None,
                   *, has_parent: bool = False) -> float | None:
    """`expires_at` of a message created at `now`: None when the TTL is off (0), and for a
    comment never later than its parent's."""
    own = now + ttl if ttl > 0 else None
    if not has_parent or parent_expires_at is None:
        return own
    return parent_expires_at if own is None else min(own, parent_expires_at)


def is_expired(expires_at: float | None, now: float) -> bool:
    return expires_at is not None and expires_at <= now


def alive(messages: Iterable[Wire], now: float) -> list[Wire]:
    """The Messages that have not expired by `now`."""
    return [message for message in messages if not is_expired(message.get("expires_at"), now)]


class MessageLifetime:
    """Deletes expired data. The first `run_due()` catches up on whatever expired while
    the server was down and arms the timer."""

    def __init__(self, store: Store, clock: Clock,
                 forget: Callable[[ExpiryBatch], Awaitable[None]], *,
                 min_gap: float = DEFAULT_MIN_GAP) -> None:
        self._store = store
        self._clock = clock
        self._forget = forget
        self._timer = WallTimer(clock, self._on_timer, min_gap=min_gap)
        self._hooks: list[ExpiryHook] = []
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[int] | None = None
        self._again = False
        self._armed_while_running: float | None = None
        self._running = False
        self._closed = False

    @property
    def next_due(self) -> float | None:
        return self._timer.due

    def add_hook(self, hook: ExpiryHook) -> None:
        self._hooks.append(hook)

    async def close(self) -> None:
        self._closed = True
        self._timer.close()
        task = self._task
        if task is not None and not task.done():
            # A pass already queued on the writer finishes there; let memory catch up.
            try:
                await task
            except Exception:
                logger.exception("expiry pass failed during shutdown")

    def arm(self, expires_at: float | None) -> None:
        """Something that expires at `expires_at` was just committed."""
        if expires_at is None or self._closed:
            return
        if self._running:
            self._armed_while_running = _earliest(self._armed_while_running, expires_at)
        self._timer.arm(expires_at)

    def _on_timer(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True  # the running pass goes round once more
            return
        self._task = asyncio.get_running_loop().create_task(self._timed_pass())

    async def _timed_pass(self) -> int:
        try:
            return await self.run_due()
        except Exception:
            logger.exception("expiry pass failed; retrying in %.0f s", RETRY_AFTER_FAILURE)
            self._timer.rearm(self._clock.time() + RETRY_AFTER_FAILURE)
            return 0

    async def run_due(self) -> int:
        """Delete everything expired by now and re-arm the timer; the number of messages
        deleted. Tests call it after advancing a ManualClock."""
        async with self._lock:
            self._running = True
            self._armed_while_running = None
            deleted = 0
            try:
                while True:
                    self._again = False
                    batch = await self._store.write_job(
                        partial(expire_due, now=self._clock.time()))
                    deleted += len(batch.messages)
                    await self._forget(batch)
                    await self._call_hooks(batch.messages)
                    if not (batch.more or self._again):
                        break
            finally:
                self._running = False
            if not self._closed:
                self._timer.rearm(_earliest(batch.next_due, self._armed_while_running))
            if deleted:
                logger.info("expired %d message(s)", deleted)
            return deleted

    async def _call_hooks(self, messages: Sequence[ExpiredMessage]) -> None:
        if not messages:
            return
        for hook in self._hooks:
            try:
                outcome = hook(messages)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                logger.exception("expiry hook %r failed for %d message(s)", hook, len(messages))


def _earliest(first: float | None, second: float | None) -> float | None:
    if first is None:
        return second
    if second is None:
        return first
    return min(first, second)

"""One event-loop timer for the nearest due time of a queue kept elsewhere.

Due times are wall-clock (the injected Clock), because that is what users see and what is
stored. The loop sleeps on a monotonic clock, so a sleep is capped at `max_sleep`: if the
wall clock jumps, the owner looks again soon and nothing is ever more than that late.
Firing early is harmless: the owner's callback only handles what is due and re-arms.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from rpcchat.clock import Clock

logger = logging.getLogger(__name__)

DEFAULT_MAX_SLEEP = 60.0


class WallTimer:
    def __init__(self, clock: Clock, callback: Callable[[], None], *,
                 max_sleep: float = DEFAULT_MAX_SLEEP, min_gap: float = 0.0) -> None:
        """`callback` runs on the loop when the armed time comes (it must not raise and must
        re-arm). `min_gap` spaces consecutive firings, so a stream of due times is handled
        in batches rather than one wake-up each."""
        self._clock = clock
        self._callback = callback
        self._max_sleep = max_sleep
        self._min_gap = min_gap
        self._handle: asyncio.TimerHandle | None = None
        self._due: float | None = None
        self._last_fired = float("-inf")  # loop time
        self._closed = False

    @property
    def due(self) -> float | None:
        """The wall-clock time armed for, or None."""
        return self._due

    def arm(self, due: float | None) -> None:
        """Make sure the callback runs by `due` (an earlier armed time is kept)."""
        if due is None or self._closed:
            return
        if self._due is not None and self._due <= due and self._handle is not None:
            return
        self._schedule(due)

    def rearm(self, due: float | None) -> None:
        """Replace the armed time (None: disarm); used by the callback once it ran."""
        self.cancel()
        if due is not None and not self._closed:
            self._schedule(due)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._due = None

    def close(self) -> None:
        self.cancel()
        self._closed = True

    def _schedule(self, due: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, due - self._clock.time())
        gap = self._last_fired + self._min_gap - loop.time()
        delay = min(max(delay, gap, 0.0), self._max_sleep)
        self._due = due
        self._handle = loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._due = None
        self._last_fired = asyncio.get_running_loop().time()
        try:
            self._callback()
        except Exception:
            logger.exception("timer callback failed")

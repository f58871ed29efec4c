"""Parked long-polls: one future per waiting poll, woken directly by whoever publishes.

Nothing here scans or ticks: a publisher names the users that can see its events and only
their futures are resolved. Timeouts are rounded up to a TIMEOUT_STEP so that the polls due
in the same step share one loop timer: thousands of parked polls cost a few dozen timers.
"""

from __future__ import annotations

import asyncio
import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


# A poll ends at most this long after its timeout, never before it.
TIMEOUT_STEP = 0.05


class WakeReason(enum.Enum):
    EVENT = "event"  # something the user can see was published
    TIMEOUT = "timeout"
    SUPERSEDED = "superseded"  # a newer poll of the same session arrived
    CLOSED = "closed"  # the session was revoked or the service is closing


@dataclass(slots=True, eq=False)
class Waiter:
    session_id: int
    user_id: int
    future: asyncio.Future[WakeReason]
    step: int = 0  # the timeout step it ends at (see PollHub._due)


class PollHub:
    def __init__(self) -> None:
        self._by_session: dict[int, Waiter] = {}
        self._by_user: dict[int, dict[int, Waiter]] = {}
        # Timeout step -> its loop timer and the waiters that time out then.
        self._due: dict[int, tuple[asyncio.TimerHandle, dict[Waiter, None]]] = {}

    @property
    def parked_users(self) -> Mapping[int, Mapping[int, Waiter]]:
        """User id -> that user's parked polls (by session id)."""
        return self._by_user

    def __len__(self) -> int:
        return len(self._by_session)

    def park(self, session_id: int, user_id: int, timeout: float) -> Waiter:
        """Register a poll of this session; any older parked poll of it ends as SUPERSEDED."""
        self.release_session(session_id, WakeReason.SUPERSEDED)
        loop = asyncio.get_running_loop()
        step = math.ceil((loop.time() + timeout) / TIMEOUT_STEP)
        waiter = Waiter(session_id, user_id, loop.create_future(), step)
        due = self._due.get(step)
        if due is None:
            due = self._due[step] = (loop.call_at(step * TIMEOUT_STEP, self._time_out, step), {})
        due[1][waiter] = None
        self._by_session[session_id] = waiter
        self._by_user.setdefault(user_id, {})[session_id] = waiter
        return waiter

    def discard(self, waiter: Waiter) -> None:
        """Forget a waiter whatever its state (used when a poll ends or is cancelled)."""
        due = self._due.get(waiter.step)
        if due is not None:
            # The step's timer stays: it finds fewer waiters, and later ones may join it.
            due[1].pop(waiter, None)
        if self._by_session.get(waiter.session_id) is waiter:
            del self._by_session[waiter.session_id]
            sessions = self._by_user.get(waiter.user_id)
            if sessions is not None:
                sessions.pop(waiter.session_id, None)
                if not sessions:
                    del self._by_user[waiter.user_id]

    def release_session(self, session_id: int, reason: WakeReason) -> None:
        waiter = self._by_session.get(session_id)
        if waiter is not None:
            self._resolve(waiter, reason)

    def wake_users(self, user_ids: Iterable[int]) -> None:
        # All of a user's polls end: its entry goes at once (one publish may wake thousands).
        by_session, due = self._by_session, self._due
        for user_id in user_ids:
            sessions = self._by_user.pop(user_id, None)
            if not sessions:
                continue
            for session_id, waiter in sessions.items():
                if by_session.get(session_id) is waiter:
                    del by_session[session_id]
                timed = due.get(waiter.step)
                if timed is not None:
                    timed[1].pop(waiter, None)
                if not waiter.future.done():
                    waiter.future.set_result(WakeReason.EVENT)

    def release_all(self, reason: WakeReason) -> None:
        for waiter in list(self._by_session.values()):
            self._resolve(waiter, reason)
        for timer, _ in self._due.values():
            timer.cancel()
        self._due.clear()

    def _time_out(self, step: int) -> None:
        _, waiters = self._due.pop(step, (None, {}))
        for waiter in list(waiters):
            self._resolve(waiter, WakeReason.TIMEOUT)

    def _resolve(self, waiter: Waiter, reason: WakeReason) -> None:
        self.discard(waiter)
        if not waiter.future.done():
            waiter.future.set_result(reason)

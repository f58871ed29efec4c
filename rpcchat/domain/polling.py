"""Parked long-polls: one future per waiting poll, woken directly by whoever publishes.

Nothing here scans or ticks: a publisher names the users that can see its events and only
their futures are resolved. A parked poll's own timeout is a single loop timer.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


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
    timer: asyncio.TimerHandle | None = None


class PollHub:
    def __init__(self) -> None:
        self._by_session: dict[int, Waiter] = {}
        self._by_user: dict[int, dict[int, Waiter]] = {}

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
        waiter = Waiter(session_id, user_id, loop.create_future())
        waiter.timer = loop.call_later(timeout, self._resolve, waiter, WakeReason.TIMEOUT)
        self._by_session[session_id] = waiter
        self._by_user.setdefault(user_id, {})[session_id] = waiter
        return waiter

    def discard(self, waiter: Waiter) -> None:
        """Forget a waiter whatever its state (used when a poll ends or is cancelled)."""
        if waiter.timer is not None:
            waiter.timer.cancel()
            waiter.timer = None
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
        for user_id in user_ids:
            sessions = self._by_user.get(user_id)
            if sessions:
                for waiter in list(sessions.values()):
                    self._resolve(waiter, WakeReason.EVENT)

    def release_all(self, reason: WakeReason) -> None:
        for waiter in list(self._by_session.values()):
            self._resolve(waiter, reason)

    def _resolve(self, waiter: Waiter, reason: WakeReason) -> None:
        self.discard(waiter)
        if not waiter.future.done():
            waiter.future.set_result(reason)

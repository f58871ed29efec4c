"""The rate limit: messages in `general` per user, counted in fixed periods.

Periods are aligned to multiples of `period` seconds since the Unix epoch, so the count
"resets at the end of each period" for everyone at the same, predictable time (with the
default 3600 s: on the hour), and a restart cannot shift a period.
Counts are kept in memory and saved with the message they count (`RateCountSaved` in the
same write), so a restart keeps them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from rpcchat.domain.feature_records import RateCountSaved
from rpcchat.domain.records import Wire
from rpcchat.errors import RateLimited


@dataclass(slots=True)
class _Period:
    start: float
    count: int


class RateCounter:
    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self._periods: dict[int, _Period] = {}

    @property
    def enabled(self) -> bool:
        return self.limit > 0 and self.period > 0

    def _period_start(self, now: float) -> float:
        return math.floor(now / self.period) * self.period

    def load(self, saved: Iterable[RateCountSaved]) -> None:
        """Counts saved before a restart. One from another period (or another `period`
        setting) no longer matches the current period, so it counts as zero."""
        for row in saved:
            self._periods[row.user_id] = _Period(row.period_start, row.count)

    def _used(self, user_id: int, start: float) -> int:
        current = self._periods.get(user_id)
        return current.count if current is not None and current.start == start else 0

    def check(self, user_id: int, now: float) -> None:
        """RateLimited (with retry_after and resets_at) when the user has no message left."""
        if not self.enabled:
            return
        start = self._period_start(now)
        if self._used(user_id, start) >= self.limit:
            resets_at = start + self.period
            raise RateLimited(retry_after=max(0.0, resets_at - now), resets_at=resets_at)

    def record(self, user_id: int, now: float) -> RateCountSaved | None:
        """Count one message; the change that saves the new count (None when off)."""
        if not self.enabled:
            return None
        start = self._period_start(now)
        count = self._used(user_id, start) + 1
        self._periods[user_id] = _Period(start, count)
        return RateCountSaved(user_id, start, count)

    def undo(self, saved: RateCountSaved) -> None:
        """Take back a count whose message could not be stored."""
        current = self._periods.get(saved.user_id)
        if current is not None and current.start == saved.period_start and current.count > 0:
            current.count -= 1

    def remaining(self, user_id: int, now: float) -> int:
        return max(0, self.limit - self._used(user_id, self._period_start(now)))

    def status(self, user_id: int, now: float) -> Wire:
        """The contract's `rate` object. With the limit off, remaining and resets_at are null."""
        if not self.enabled:
            return {"limit": 0, "remaining": None, "resets_at": None}
        return {
            "limit": self.limit,
            "remaining": self.remaining(user_id, now),
            "resets_at": self._period_start(now) + self.period,
        }

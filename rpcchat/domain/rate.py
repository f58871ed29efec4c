"""Counting of messages in `general` per user, in fixed periods.

Periods are aligned to multiples of `period` seconds since the Unix epoch, so the count
"resets at the end of each period" for everyone at the same, predictable time.
Counting only: refusing over-limit sends is a separate rule built on `remaining`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rpcchat.domain.records import Wire


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

    def record(self, user_id: int, now: float) -> None:
        if not self.enabled:
            return
        start = self._period_start(now)
        current = self._periods.get(user_id)
        if current is None or current.start != start:
            self._periods[user_id] = _Period(start, 1)
        else:
            current.count += 1

    def remaining(self, user_id: int, now: float) -> int:
        current = self._periods.get(user_id)
        used = current.count if current and current.start == self._period_start(now) else 0
        return max(0, self.limit - used)

    def status(self, user_id: int, now: float) -> Wire:
        """The contract's `rate` object. With the limit off, remaining and resets_at are null."""
        if not self.enabled:
            return {"limit": 0, "remaining": None, "resets_at": None}
        return {
            "limit": self.limit,
            "remaining": self.remaining(user_id, now),
            "resets_at": self._period_start(now) + self.period,
        }

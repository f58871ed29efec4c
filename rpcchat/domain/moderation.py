"""Reports and bans.

Each user has a *round*: the reports counted against it since its last ban. A reporter
counts once per round (a repeat is accepted and changes nothing). When a round reaches
the threshold the user is banned for `ban_duration` seconds and a new round begins, so
"after the ban its count starts again from zero". Reports made while a ban is in force
are accepted but not counted: the user is already banned.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from rpcchat.domain.feature_records import ReportFiled, StandingRow, StandingSaved
from rpcchat.domain.records import Wire
from rpcchat.errors import Banned

logger = logging.getLogger(__name__)

EVENT_USER_WARNED = "user.warned"
EVENT_USER_BANNED = "user.banned"
REASON_MAX = 1000


@dataclass(slots=True)
class _Standing:
    round: int = 0
    banned_until: float | None = None
    reporters: set[int] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    """What a report did. `changes` is empty when it was not counted (a repeat, or the user
    is banned already); `event` is (type, data) for the reported user alone."""

    warnings: int
    banned_until: float | None
    changes: list[ReportFiled | StandingSaved]
    event: tuple[str, Wire] | None
    before: _Standing | None = None  # the standing before a counted report, for `undo`


class Moderation:
    def __init__(self, threshold: int, ban_duration: float) -> None:
        self.threshold = threshold  # 0 or less: reports warn but never ban
        self.ban_duration = ban_duration
        self._standings: dict[int, _Standing] = {}

    def load(self, rows: Iterable[StandingRow]) -> None:
        for row in rows:
            self._standings[row.user_id] = _Standing(row.round, row.banned_until,
                                                     set(row.reporters))

    def banned_until(self, user_id: int, now: float) -> float | None:
        standing = self._standings.get(user_id)
        if standing is None or standing.banned_until is None or standing.banned_until <= now:
            return None
        return standing.banned_until

    def warnings(self, user_id: int, now: float) -> int:
        standing = self._standings.get(user_id)
        if standing is None or self.banned_until(user_id, now) is not None:
            return 0
        return len(standing.reporters)

    def check_can_post(self, user_id: int, now: float) -> None:
        until = self.banned_until(user_id, now)
        if until is not None:
            raise Banned(until)

    def report(self, reporter_id: int, reported_id: int, reason: str | None,
               now: float) -> ReportOutcome:
        """Count a report in memory at once; the caller stores `changes` and calls `undo`
        with the outcome if that fails."""
        standing = self._standings.setdefault(reported_id, _Standing())
        if self.banned_until(reported_id, now) is not None or reporter_id in standing.reporters:
            return ReportOutcome(self.warnings(reported_id, now),
                                 self.banned_until(reported_id, now), [], None)
        before = _Standing(standing.round, standing.banned_until, set(standing.reporters))
        filed = ReportFiled(reported_id, reporter_id, standing.round, reason, now)
        standing.reporters.add(reporter_id)
        warnings = len(standing.reporters)
        if self.threshold <= 0 or warnings < self.threshold:
            logger.info("report: user id %d has %d of %d warnings",
                        reported_id, warnings, self.threshold)
            return ReportOutcome(warnings, None, [filed],
                                 (EVENT_USER_WARNED, {"warnings": warnings,
                                                      "threshold": self.threshold}), before)
        standing.round += 1
        standing.reporters = set()
        standing.banned_until = now + self.ban_duration
        logger.info("ban: user id %d banned until %.0f", reported_id, standing.banned_until)
        return ReportOutcome(0, standing.banned_until,
                             [filed, StandingSaved(reported_id, standing.round,
                                                   standing.banned_until)],
                             (EVENT_USER_BANNED, {"until": standing.banned_until}), before)

    def undo(self, reported_id: int, reporter_id: int, outcome: ReportOutcome) -> None:
        """Forget a counted report whose write failed."""
        standing = self._standings.get(reported_id)
        before = outcome.before
        if standing is None or before is None:
            return
        if standing.round == before.round:
            standing.reporters.discard(reporter_id)
        else:  # the report had banned the user: back to the round before the ban
            standing.round = before.round
            standing.banned_until = before.banned_until
            standing.reporters = before.reporters - {reporter_id}

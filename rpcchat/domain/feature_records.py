"""Changes and stored rows of message lifetime, the rate limit, scheduled messages, reports
and bans.

Plain data only (no imports from the rest of the domain), so `records.Change` can include
these changes without an import cycle. `feature_store` turns them into SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

SCHEDULED_PENDING = "pending"
SCHEDULED_SENT = "sent"
SCHEDULED_CANCELLED = "cancelled"


# --- changes -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateCountSaved:
    """A user's message count in `general` for the period starting at `period_start`."""

    user_id: int
    period_start: float
    count: int


@dataclass(frozen=True, slots=True)
class ReportFiled:
    """One reporter's report of a user, in the reported user's current round."""

    reported_id: int
    reporter_id: int
    round: int
    reason: str | None
    ts: float


@dataclass(frozen=True, slots=True)
class StandingSaved:
    """A user's report round (raised by every ban, so the count starts again) and ban."""

    user_id: int
    round: int
    banned_until: float | None


@dataclass(frozen=True, slots=True)
class ScheduledSaved:
    """A new pending scheduled message."""

    scheduled_id: str
    number: int  # creation order: ties of deliver_at are delivered in this order
    user_id: int
    chat_id: str
    to_user_id: int | None  # set when addressed with `to` (the direct chat may not exist yet)
    text: str
    deliver_at: float
    created_at: float
    client_msg_id: str | None


@dataclass(frozen=True, slots=True)
class ScheduledFinished:
    """A scheduled message was sent or cancelled; the row goes at `expires_at`."""

    scheduled_id: str
    status: str
    message_id: int | None
    reason: str | None
    finished_at: float
    expires_at: float | None


FeatureChange = Union[RateCountSaved, ReportFiled, StandingSaved, ScheduledSaved,
                      ScheduledFinished]
FEATURE_CHANGE_TYPES = (RateCountSaved, ReportFiled, StandingSaved, ScheduledSaved,
                        ScheduledFinished)


# --- rows loaded at start ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScheduledRow:
    scheduled_id: str
    number: int
    user_id: int
    chat_id: str
    to_user_id: int | None
    text: str
    deliver_at: float
    created_at: float
    status: str
    message_id: int | None
    reason: str | None
    client_msg_id: str | None
    expires_at: float | None


@dataclass(frozen=True, slots=True)
class StandingRow:
    user_id: int
    round: int
    banned_until: float | None
    reporters: frozenset[int]  # who reported the user in the current round


@dataclass(frozen=True, slots=True)
class FeatureSnapshot:
    rate_counts: list[RateCountSaved] = field(default_factory=list)
    standings: list[StandingRow] = field(default_factory=list)
    scheduled: list[ScheduledRow] = field(default_factory=list)  # pending and finished


# --- expiry --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpiredMessage:
    """A message deleted because its lifetime ended (what memory and files must forget)."""

    message_id: int
    chat_id: str
    sender_id: int
    seq: int
    file_id: str | None
    client_msg_id: str | None


@dataclass(frozen=True, slots=True)
class ExpiryBatch:
    """What one expiry pass deleted, and when the next one is due (None: nothing expires)."""

    messages: list[ExpiredMessage]
    scheduled_ids: list[str]
    events: int
    more: bool  # the batch hit its size limit: run again at once
    next_due: float | None


@dataclass(frozen=True, slots=True)
class ParentRow:
    """What a comment needs of the message it comments on."""

    message_id: int
    chat_id: str
    expires_at: float | None

"""SQLite side of message lifetime, the rate limit, scheduled messages, reports and bans:
schema step 2, applying their changes, loading their state, and the expiry pass.

Everything here runs on a store thread with its connection (see sqlite_store.py).
"""

from __future__ import annotations

import sqlite3

from rpcchat.domain.feature_records import (
    SCHEDULED_PENDING,
    ExpiredMessage,
    ExpiryBatch,
    FeatureChange,
    FeatureSnapshot,
    ParentRow,
    RateCountSaved,
    ReportFiled,
    ScheduledFinished,
    ScheduledRow,
    ScheduledSaved,
    StandingRow,
    StandingSaved,
)

# Schema step 2. Messages already carry parent_id and expires_at (with their indexes).
SCHEMA_STEP_2: list[str] = [
    """CREATE TABLE rate_counts (
        user_id INTEGER PRIMARY KEY REFERENCES users (id),
        period_start REAL NOT NULL,
        count INTEGER NOT NULL
    )""",
    """CREATE TABLE standings (
        user_id INTEGER PRIMARY KEY REFERENCES users (id),
        round INTEGER NOT NULL,
        banned_until REAL
    )""",
    """CREATE TABLE reports (
        reported_id INTEGER NOT NULL REFERENCES users (id),
        round INTEGER NOT NULL,
        reporter_id INTEGER NOT NULL REFERENCES users (id),
        reason TEXT,
        ts REAL NOT NULL,
        PRIMARY KEY (reported_id, round, reporter_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE scheduled (
        id TEXT PRIMARY KEY,
        number INTEGER NOT NULL UNIQUE,
        user_id INTEGER NOT NULL REFERENCES users (id),
        chat_id TEXT NOT NULL,
        to_user_id INTEGER REFERENCES users (id),
        text TEXT NOT NULL,
        deliver_at REAL NOT NULL,
        created_at REAL NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'cancelled')),
        message_id INTEGER,
        reason TEXT,
        client_msg_id TEXT,
        finished_at REAL,
        expires_at REAL
    )""",
    "CREATE UNIQUE INDEX scheduled_by_client_msg_id ON scheduled (user_id, client_msg_id)"
    " WHERE client_msg_id IS NOT NULL",
    "CREATE INDEX scheduled_by_expiry ON scheduled (expires_at) WHERE expires_at IS NOT NULL",
]

# Rows deleted per expiry transaction, so user writes are never held up for long.
EXPIRY_BATCH = 1000


def apply_feature_change(conn: sqlite3.Connection, change: FeatureChange) -> None:
    if isinstance(change, RateCountSaved):
        conn.execute(
            "INSERT INTO rate_counts (user_id, period_start, count) VALUES (?, ?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET period_start = excluded.period_start,"
            " count = excluded.count",
            (change.user_id, change.period_start, change.count),
        )
    elif isinstance(change, ReportFiled):
        conn.execute(
            "INSERT INTO reports (reported_id, round, reporter_id, reason, ts)"
            " VALUES (?, ?, ?, ?, ?)",
            (change.reported_id, change.round, change.reporter_id, change.reason, change.ts),
        )
    elif isinstance(change, StandingSaved):
        conn.execute(
            "INSERT INTO standings (user_id, round, banned_until) VALUES (?, ?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET round = excluded.round,"
            " banned_until = excluded.banned_until",
            (change.user_id, change.round, change.banned_until),
        )
    elif isinstance(change, ScheduledSaved):
        conn.execute(
            "INSERT INTO scheduled (id, number, user_id, chat_id, to_user_id, text, deliver_at,"
            " created_at, status, client_msg_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (change.scheduled_id, change.number, change.user_id, change.chat_id,
             change.to_user_id, change.text, change.deliver_at, change.created_at,
             SCHEDULED_PENDING, change.client_msg_id),
        )
    elif isinstance(change, ScheduledFinished):
        updated = conn.execute(
            "UPDATE scheduled SET status = ?, message_id = ?, reason = ?, finished_at = ?,"
            " expires_at = ? WHERE id = ? AND status = ?",
            (change.status, change.message_id, change.reason, change.finished_at,
             change.expires_at, change.scheduled_id, SCHEDULED_PENDING),
        )
        if updated.rowcount != 1:
            raise LookupError(f"scheduled message {change.scheduled_id} is not pending")
    else:
        raise TypeError(f"unknown change {change!r}")


def load_feature_state(conn: sqlite3.Connection) -> FeatureSnapshot:
    # A user gets a standings row at its first ban; until then its round is 0.
    reporters: dict[int, set[int]] = {}
    for reported_id, reporter_id in conn.execute(
            "SELECT r.reported_id, r.reporter_id FROM reports r"
            " LEFT JOIN standings s ON s.user_id = r.reported_id"
            " WHERE r.round = coalesce(s.round, 0)"):
        reporters.setdefault(reported_id, set()).add(reporter_id)
    saved = {user_id: (round_, banned_until) for user_id, round_, banned_until
             in conn.execute("SELECT user_id, round, banned_until FROM standings")}
    standings = [
        StandingRow(user_id, *saved.get(user_id, (0, None)),
                    frozenset(reporters.get(user_id, ())))
        for user_id in sorted(saved.keys() | reporters.keys())
    ]
    return FeatureSnapshot(
        rate_counts=[RateCountSaved(*row) for row in conn.execute(
            "SELECT user_id, period_start, count FROM rate_counts")],
        standings=standings,
        scheduled=[ScheduledRow(*row) for row in conn.execute(
            "SELECT id, number, user_id, chat_id, to_user_id, text, deliver_at, created_at,"
            " status, message_id, reason, client_msg_id, expires_at FROM scheduled"
            " ORDER BY number")],
    )


def find_parent(conn: sqlite3.Connection, message_id: int) -> ParentRow | None:
    row = conn.execute("SELECT id, chat_id, expires_at FROM messages WHERE id = ?",
                       (message_id,)).fetchone()
    return None if row is None else ParentRow(*row)


def expire_due(conn: sqlite3.Connection, now: float, limit: int = EXPIRY_BATCH) -> ExpiryBatch:
    """Delete what expired by `now` (at most `limit` rows of each table): messages with
    their client_msg_id records, events, finished scheduled messages. Runs inside one
    transaction opened by the caller."""
    rows = conn.execute(
        "SELECT id, chat_id, sender_id, seq, file_id, client_msg_id FROM messages"
        " WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?",
        (now, limit)).fetchall()
    messages = [ExpiredMessage(*row) for row in rows]
    conn.executemany("DELETE FROM messages WHERE id = ?",
                     [(message.message_id,) for message in messages])
    conn.executemany("DELETE FROM client_msg_ids WHERE user_id = ? AND client_msg_id = ?",
                     [(message.sender_id, message.client_msg_id) for message in messages
                      if message.client_msg_id is not None])
    events = conn.execute(
        "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE expires_at IS NOT NULL"
        " AND expires_at <= ? ORDER BY expires_at LIMIT ?)", (now, limit)).rowcount
    scheduled_ids = [row[0] for row in conn.execute(
        "SELECT id FROM scheduled WHERE expires_at IS NOT NULL AND expires_at <= ?"
        " ORDER BY expires_at LIMIT ?", (now, limit))]
    conn.executemany("DELETE FROM scheduled WHERE id = ?",
                     [(scheduled_id,) for scheduled_id in scheduled_ids])
    more = max(len(messages), events, len(scheduled_ids)) >= limit
    return ExpiryBatch(messages, scheduled_ids, events, more, next_expiry(conn))


def next_expiry(conn: sqlite3.Connection) -> float | None:
    """The earliest expires_at of anything stored (each from its ordered index)."""
    earliest: float | None = None
    for table in ("messages", "events", "scheduled"):
        row = conn.execute(
            f"SELECT expires_at FROM {table} WHERE expires_at IS NOT NULL"
            " ORDER BY expires_at LIMIT 1").fetchone()
        if row is not None and (earliest is None or row[0] < earliest):
            earliest = float(row[0])
    return earliest

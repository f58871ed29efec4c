"""SQLite side of group chats and file uploads: schema step, writes and reads.

Called by `SqliteStore` on its own threads (writer for changes, reader for reads); the
functions take the connection of that thread.
"""

from __future__ import annotations

import sqlite3

from rpcchat.domain.group_file_records import (
    ChatLinkRow,
    DropChatLink,
    EndJoinRequest,
    EndUpload,
    FileMessage,
    GroupFileChange,
    GroupFileState,
    JoinRequestRow,
    NewChatLink,
    NewJoinRequest,
    NewUpload,
    SetChatOwner,
    UploadProgress,
    UploadRow,
)
from rpcchat.domain.message_sql import FILE_JSON_COLUMN, MESSAGE_SELECT, message_from_row

GROUP_FILE_MIGRATION: list[str] = [
    """CREATE TABLE chat_links (
        chat_id TEXT PRIMARY KEY REFERENCES chats (id),
        token TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL
    )""",
    """CREATE TABLE join_requests (
        chat_id TEXT NOT NULL REFERENCES chats (id),
        user_id INTEGER NOT NULL REFERENCES users (id),
        ts REAL NOT NULL,
        PRIMARY KEY (chat_id, user_id)
    )""",
    """CREATE TABLE uploads (
        id TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users (id),
        name TEXT NOT NULL,
        size INTEGER NOT NULL,
        content_type TEXT NOT NULL,
        sha256 TEXT,
        received INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        touched_at REAL NOT NULL
    )""",
    "CREATE INDEX messages_by_file ON messages (file_id) WHERE file_id IS NOT NULL",
]


def apply_group_file_change(conn: sqlite3.Connection, change: GroupFileChange) -> None:
    if isinstance(change, SetChatOwner):
        _expect_one(conn.execute("UPDATE chats SET owner_id = ? WHERE id = ?",
                                 (change.owner_id, change.chat_id)), change)
    elif isinstance(change, NewChatLink):
        conn.execute("INSERT INTO chat_links (chat_id, token, created_at) VALUES (?, ?, ?)",
                     (change.chat_id, change.token, change.created_at))
    elif isinstance(change, DropChatLink):
        conn.execute("DELETE FROM chat_links WHERE chat_id = ?", (change.chat_id,))
    elif isinstance(change, NewJoinRequest):
        conn.execute("INSERT INTO join_requests (chat_id, user_id, ts) VALUES (?, ?, ?)",
                     (change.chat_id, change.user_id, change.ts))
    elif isinstance(change, EndJoinRequest):
        conn.execute("DELETE FROM join_requests WHERE chat_id = ? AND user_id = ?",
                     (change.chat_id, change.user_id))
    elif isinstance(change, NewUpload):
        conn.execute(
            "INSERT INTO uploads (id, user_id, name, size, content_type, sha256, received,"
            " created_at, touched_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
            (change.upload_id, change.user_id, change.name, change.size, change.content_type,
             change.sha256, change.created_at, change.created_at))
    elif isinstance(change, UploadProgress):
        _expect_one(conn.execute(
            "UPDATE uploads SET received = ?, touched_at = ? WHERE id = ?",
            (change.received, change.touched_at, change.upload_id)), change)
    elif isinstance(change, EndUpload):
        conn.execute("DELETE FROM uploads WHERE id = ?", (change.upload_id,))
    else:
        raise TypeError(f"unknown change {change!r}")


def _expect_one(cursor: sqlite3.Cursor, change: GroupFileChange) -> None:
    if cursor.rowcount != 1:
        raise LookupError(f"{change!r} matched {cursor.rowcount} rows")


def load_group_file_state(conn: sqlite3.Connection, *, now: float) -> GroupFileState:
    """Links, pending join requests, unfinished uploads and the files still alive at `now`."""
    links = [ChatLinkRow(*row) for row in conn.execute("SELECT chat_id, token FROM chat_links")]
    requests = [JoinRequestRow(*row) for row in conn.execute(
        "SELECT chat_id, user_id, ts FROM join_requests ORDER BY ts, user_id")]
    uploads: list[UploadRow] = []
    finished: list[str] = []
    for row in conn.execute(
            "SELECT u.id, u.user_id, u.name, u.size, u.content_type, u.sha256, u.received,"
            " u.created_at, u.touched_at,"
            " EXISTS (SELECT 1 FROM messages m WHERE m.file_id = u.id)"
            " FROM uploads u ORDER BY u.created_at"):
        if row[9]:
            finished.append(row[0])
        else:
            uploads.append(UploadRow(*row[:9]))
    live = {file_id for (file_id,) in conn.execute(
        "SELECT file_id FROM messages WHERE file_id IS NOT NULL"
        " AND (expires_at IS NULL OR expires_at > ?)", (now,))}
    return GroupFileState(links, requests, uploads, finished, live)


def find_file_message(conn: sqlite3.Connection, *, file_id: str) -> FileMessage | None:
    """The Message carrying file `file_id` (expired or not), or None."""
    row = conn.execute(f"{MESSAGE_SELECT} WHERE m.file_id = ? ORDER BY m.id LIMIT 1",
                       (file_id,)).fetchone()
    if row is None or row[FILE_JSON_COLUMN] is None:
        return None
    return message_from_row(row)

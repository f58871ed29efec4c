"""Reading stored messages back as the contract's Message, for every SQL module that
returns messages (history, client_msg_id look-ups, file look-ups)."""

from __future__ import annotations

import json
from typing import Any

from rpcchat.domain.records import Wire
from rpcchat.domain.wire import message_wire

# Columns in the order `message_from_row` reads them; callers append JOIN/WHERE/ORDER BY.
MESSAGE_SELECT = (
    "SELECT m.id, m.chat_id, u.name, m.text, m.ts, m.parent_id, m.file_json,"
    " m.client_msg_id, m.expires_at FROM messages m JOIN users u ON u.id = m.sender_id"
)
FILE_JSON_COLUMN = 6


def message_from_row(row: tuple[Any, ...]) -> Wire:
    file_json = row[FILE_JSON_COLUMN]
    return message_wire(
        message_id=row[0], chat_id=row[1], sender=row[2], text=row[3], ts=row[4],
        parent_id=row[5], file=None if file_json is None else json.loads(file_json),
        client_msg_id=row[7], expires_at=row[8],
    )

"""Builders for the contract's objects, so every path produces the same shapes."""

from __future__ import annotations

from rpcchat.domain.records import EventRecord, Wire
from rpcchat.jsonrpc.encoding import EncodedOnce


def message_wire(
    *,
    message_id: int,
    chat_id: str,
    sender: str,
    text: str,
    ts: float,
    parent_id: int | None = None,
    file: Wire | None = None,
    client_msg_id: str | None = None,
    expires_at: float | None = None,
) -> Wire:
    return {
        "id": message_id,
        "chat": chat_id,
        "from": sender,
        "text": text,
        "ts": ts,
        "parent": parent_id,
        "file": file,
        "client_msg_id": client_msg_id,
        "expires_at": expires_at,
    }


def event_wire(event: EventRecord) -> Wire:
    # Every poll that returns this event sends the same JSON: encoded once, then reused.
    return EncodedOnce(seq=event.seq, type=event.type, ts=event.ts, data=event.data)

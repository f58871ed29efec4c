"""Comments: a message whose `parent` is another message of the same chat.

A comment on a comment is allowed; its parent is that comment (threads nest). A comment
expires with its parent at the latest (see lifetime.message_expiry).
"""

from __future__ import annotations

from functools import partial

from rpcchat.domain.feature_records import ParentRow
from rpcchat.domain.feature_store import find_parent
from rpcchat.domain.lifetime import is_expired
from rpcchat.domain.store import Store
from rpcchat.domain.writes import read_store
from rpcchat.errors import NotFound


async def load_parent(store: Store, message_id: int, now: float) -> ParentRow:
    """The message to comment on; NotFound when it does not exist or has expired."""
    parent = await read_store(store.read_job(partial(find_parent, message_id=message_id)),
                              "looking up a message")
    if parent is None:
        raise NotFound(f"no such message: {message_id}")
    check_alive(parent, now)
    return parent


def check_alive(parent: ParentRow, now: float) -> None:
    if is_expired(parent.expires_at, now):
        raise NotFound(f"no such message: {parent.message_id} (expired)")

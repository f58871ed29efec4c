"""The published event stream in memory: window, head, unread counts and wake-ups.

Publishing appends committed events to the window, counts messages for unread, and wakes
exactly the parked polls of users who can see them. Nothing here touches storage.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from rpcchat.domain.polling import PollHub
from rpcchat.domain.records import EVENT_MESSAGE, EventRecord, Wire
from rpcchat.domain.state import ChatState, EventWindow, UnreadIndex, UserState, WindowEntry
from rpcchat.domain.wire import event_wire


class EventFeed:
    def __init__(
        self,
        users: Mapping[int, UserState],
        chats: Mapping[str, ChatState],
        window: EventWindow,
        head: int,
    ) -> None:
        self._users = users
        self._chats = chats
        self.window = window
        self.head = head  # newest published (committed) seq
        self.unread = UnreadIndex()
        self.hub = PollHub()

    def collect(self, user: UserState, after: int, limit: int,
                now: float | None = None) -> tuple[list[Wire], int, bool]:
        """(events, next, more) from memory; `after` must be >= window.floor; `limit` may
        be 0 (then only `more` is answered). When nothing visible is left, `next` is the
        head, so the client skips what it cannot see. With `now`, expired events are
        skipped."""
        found, more = self.window.collect(user, after, limit, now)
        if more:
            # With limit 0 nothing is returned: resume right where this call started.
            return found, found[-1]["seq"] if found else after, True
        return found, self.head, False

    def publish(self, events: Sequence[EventRecord]) -> None:
        """Make committed events visible: window, unread counts, then wake-ups."""
        # Wake-ups need the entries only while somebody is parked (this runs on every write).
        entries: list[WindowEntry] | None = [] if self.hub.parked_users else None
        append = self.window.append
        head = self.head
        for event in events:
            seq = event.seq
            chat_id = event.chat_id
            entry = WindowEntry(seq, chat_id, event.target_id, event_wire(event),
                                event.expires_at)
            append(entry)
            if entries is not None:
                entries.append(entry)
            if event.type == EVENT_MESSAGE and chat_id and event.actor_id is not None:
                self.unread.add(chat_id, event.actor_id, seq)
            if seq > head:
                head = seq
        self.head = head
        if entries:
            self._wake(entries)

    def _wake(self, entries: Sequence[WindowEntry]) -> None:
        parked = self.hub.parked_users
        to_wake: set[int] = set()
        for entry in entries:
            if entry.target_id is not None:
                if entry.target_id in parked:
                    to_wake.add(entry.target_id)
                continue
            chat = self._chats.get(entry.chat_id) if entry.chat_id else None
            if chat is None:
                continue
            # Walk the smaller side: parked users of a huge chat, or members of a small one.
            members: Collection[int] = chat.members
            walk, check = (members, parked) if len(members) <= len(parked) else (parked, members)
            for user_id in walk:
                if user_id in check and user_id not in to_wake:
                    user = self._users.get(user_id)
                    if user is not None and user.can_see(entry.seq, entry.chat_id, None):
                        to_wake.add(user_id)
        self.hub.wake_users(to_wake)

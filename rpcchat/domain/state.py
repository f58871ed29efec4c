"""In-memory indexes that keep `poll`, `authenticate` and unread counts off SQLite."""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field

from rpcchat.domain.records import Interval, Wire, is_visible


@dataclass(slots=True, eq=False)
class UserState:
    user_id: int
    name: str
    name_key: str
    password_hash: str
    created_at: float
    cursor: int
    # chat id -> membership intervals, oldest first; the last one is open while a member.
    memberships: dict[str, list[Interval]] = field(default_factory=dict)

    def can_see(self, seq: int, chat_id: str | None, target_id: int | None) -> bool:
        return is_visible(self.user_id, self.memberships, seq, chat_id, target_id)

    def is_member(self, chat_id: str) -> bool:
        intervals = self.memberships.get(chat_id)
        return bool(intervals) and intervals[-1][1] is None  # type: ignore[index]

    def joined_seq(self, chat_id: str) -> int:
        """Seq of the current membership's join (the chat must be one of the user's)."""
        return self.memberships[chat_id][-1][0]

    def current_chats(self) -> Iterator[str]:
        return (chat for chat in self.memberships if self.is_member(chat))


@dataclass(slots=True, eq=False)
class ChatState:
    chat_id: str
    kind: str
    name: str
    owner_id: int | None
    created_at: float
    members: dict[int, None] = field(default_factory=dict)  # current members, join order


@dataclass(slots=True, eq=False)
class WindowEntry:
    seq: int
    chat_id: str | None
    target_id: int | None
    wire: Wire  # the Event object, built once and shared by every poll that returns it
    expires_at: float | None = None  # past it the event is hidden (message lifetime)


class EventWindow:
    """The newest events, ascending by seq. Every event with seq > `floor` is here, so a
    poll whose position is at or above the floor is answered from memory alone."""

    def __init__(self, capacity: int, floor: int, entries: list[WindowEntry]) -> None:
        if capacity < 1:
            raise ValueError("event window capacity must be at least 1")
        self._capacity = capacity
        self._floor = floor
        self._seqs: list[int] = [entry.seq for entry in entries]
        self._entries = list(entries)

    @property
    def floor(self) -> int:
        return self._floor

    def __len__(self) -> int:
        return len(self._entries)

    def append(self, entry: WindowEntry) -> None:
        self._seqs.append(entry.seq)
        self._entries.append(entry)
        # Trim in chunks so the cost of `del` from the front is amortised.
        if len(self._entries) > self._capacity + self._capacity // 4 + 1:
            cut = len(self._entries) - self._capacity
            self._floor = self._seqs[cut - 1]
            del self._seqs[:cut]
            del self._entries[:cut]

    def collect(self, user: UserState, after: int, limit: int,
                now: float | None = None) -> tuple[list[Wire], bool]:
        """Up to `limit` events with seq > `after` that `user` sees, and whether more
        visible events follow. `after` must be >= floor. With `now`, events that expired
        by then are skipped."""
        found: list[Wire] = []
        entries = self._entries
        for index in range(bisect_right(self._seqs, after), len(entries)):
            entry = entries[index]
            if now is not None and entry.expires_at is not None and entry.expires_at <= now:
                continue
            if user.can_see(entry.seq, entry.chat_id, entry.target_id):
                if len(found) == limit:
                    return found, True
                found.append(entry.wire)
        return found, False


class UnreadIndex:
    """Seqs of message events per chat (and per sender within a chat), in compact arrays.

    Unread for a user in a chat = messages above its position minus its own ones above
    it: two binary searches, no scan and no database.
    """

    def __init__(self) -> None:
        self._by_chat: dict[str, array[int]] = {}
        self._by_sender: dict[tuple[str, int], array[int]] = {}

    def add(self, chat_id: str, sender_id: int, seq: int) -> None:
        # get() first: setdefault would build an array on every message just to drop it.
        everyone = self._by_chat.get(chat_id)
        if everyone is None:
            everyone = self._by_chat[chat_id] = array("q")
        everyone.append(seq)
        key = (chat_id, sender_id)
        own = self._by_sender.get(key)
        if own is None:
            own = self._by_sender[key] = array("q")
        own.append(seq)

    def forget(self, chat_id: str, by_sender: Mapping[int, Collection[int]]) -> None:
        """Stop counting messages of a chat (they expired): sender id -> their seqs.
        Expiry goes mostly oldest first, so this is usually a cut from the array fronts."""
        everyone = self._by_chat.get(chat_id)
        if everyone:
            self._by_chat[chat_id] = _without(
                everyone, {seq for seqs in by_sender.values() for seq in seqs})
        for sender_id, seqs in by_sender.items():
            own = self._by_sender.get((chat_id, sender_id))
            if own:
                self._by_sender[(chat_id, sender_id)] = _without(own, seqs)

    def count(self, chat_id: str, user_id: int, after: int, upto: int | None) -> int:
        """Messages of others in a chat with after < seq <= upto (None: no upper bound)."""
        everyone = self._by_chat.get(chat_id)
        if not everyone:
            return 0
        own = self._by_sender.get((chat_id, user_id))
        return _count_between(everyone, after, upto) - (
            _count_between(own, after, upto) if own else 0
        )

    def unread_in_chat(self, user: UserState, chat_id: str) -> int:
        total = 0
        for joined, left in user.memberships.get(chat_id, ()):
            # Events before the join are not the member's; the join event is not a message.
            total += self.count(chat_id, user.user_id, max(user.cursor, joined - 1), left)
        return total

    def unread(self, user: UserState) -> int:
        return sum(self.unread_in_chat(user, chat_id) for chat_id in user.memberships)


def _without(seqs: array[int], doomed: Collection[int]) -> array[int]:
    # Seqs below the first one counted were never loaded (they are under every cursor).
    present = {seq for seq in doomed if seqs and seq >= seqs[0]}
    if not present:
        return seqs
    front = 0
    while front < len(seqs) and seqs[front] in present:
        front += 1
    if front == len(present):
        del seqs[:front]
        return seqs
    return array("q", (seq for seq in seqs[front:] if seq not in present))


def _count_between(seqs: array[int], after: int, upto: int | None) -> int:
    end = len(seqs) if upto is None else bisect_right(seqs, upto)
    return max(0, end - bisect_right(seqs, after))

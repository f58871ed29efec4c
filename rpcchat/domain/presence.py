"""Who is online: users seen lately, kept in the order they were last seen.

Counting then only drops the users whose last sighting fell out of the window, instead of
looking at every account on each `status` call.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import KeysView


class Presence:
    def __init__(self, window: float) -> None:
        self._window = window
        self._last_seen: OrderedDict[int, float] = OrderedDict()  # oldest sighting first

    def touch(self, user_id: int, now: float) -> None:
        """The user made a call at `now` (monotonic seconds)."""
        self._last_seen[user_id] = now
        self._last_seen.move_to_end(user_id)

    def recent(self, now: float) -> KeysView[int]:
        """Ids of the users seen within the window before `now`."""
        horizon = now - self._window
        seen = self._last_seen
        while seen:
            user_id, last = next(iter(seen.items()))
            if last >= horizon:
                break
            del seen[user_id]
        return seen.keys()

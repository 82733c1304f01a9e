"""The seen-id cache: refuses a message seen within the freshness window.

Ids are held by the second their message is stamped in, a set for each second. A replay is
a copy of a signed message, stamp included, so it is looked for in its own second's set;
and a second's set is let go whole once the window has passed it, so nothing is ever
removed from a set one id at a time. CPython regrows a set counting the slots its removals
left, so one set of every id, each removed as it expired, held a table sized for two to eight
times the ids in it, and a heap to expire them in order held one more int per id. At a
steady rate for two windows (bench/seen_cost.py), an id held cost 77 bytes at 1,100 a second
and a 30 s window (232 before), 114 at 2,000 a second and 300 s (146), and as much as before
at 333 a second and 300 s (147 against 146: a second's set of 333 has room for 1,228).

Memory is bounded by ``capacity``. When a flood fills it, the oldest second's ids are
dropped and the cache's *horizon* moves up to the end of that second: from then on a message
stamped at or before the horizon is refused, because the cache can no longer prove it is not
a replay. So a full cache narrows the window; it never lets a replay through.
"""

from __future__ import annotations

import heapq

from protocol.envelope import ID_SIZE
from protocol.errors import BadRequest, Replayed

# Ids are held and let go a second of stamps at a time: an id is let go at most this long
# after its stamp leaves the window, and a flood's horizon rises by whole seconds.
SECOND_MS = 1000


class SeenIds:
    def __init__(self, window_ms: int, capacity: int = 100_000) -> None:
        self.window_ms = window_ms
        self.capacity = capacity
        self.horizon_ms: int | None = None
        self._by_second: dict[int, set[int]] = {}
        self._seconds: list[int] = []  # the keys of _by_second: the earliest first
        self._held = 0

    def __len__(self) -> int:
        return self._held

    def check(self, msg_id: bytes, ts: int, now_ms: int) -> None:
        self._expire(now_ms)
        number = _as_int(msg_id)
        held = self._by_second.get(ts // SECOND_MS)
        if held is not None and number in held:
            raise Replayed("This message id was already received; a replayed message is refused.")
        if self.horizon_ms is not None and ts <= self.horizon_ms:
            raise Replayed(
                "The receiver is under a flood and cannot prove this message fresh; send a new one."
            )

    def record(self, msg_id: bytes, ts: int, now_ms: int) -> None:
        self._expire(now_ms)
        number = _as_int(msg_id)
        second = ts // SECOND_MS
        held = self._by_second.get(second)
        if held is None:
            held = self._by_second[second] = set()
            heapq.heappush(self._seconds, second)
        elif number in held:
            return
        held.add(number)
        self._held += 1
        while self._held > self.capacity:
            dropped = self._drop_earliest()
            self.horizon_ms = max(self.horizon_ms or dropped, dropped)

    def _expire(self, now_ms: int) -> None:
        # A second is let go once every stamp in it is older than the window allows.
        cutoff = now_ms - self.window_ms
        while self._seconds and (self._seconds[0] + 1) * SECOND_MS <= cutoff:
            self._drop_earliest()

    def _drop_earliest(self) -> int:
        """Let the earliest second's ids go; the last stamp that second could hold."""
        second = heapq.heappop(self._seconds)
        self._held -= len(self._by_second.pop(second))
        return (second + 1) * SECOND_MS - 1


def _as_int(msg_id: bytes) -> int:
    # Ids of another size would map to the same ints (b"\x00\x01" and b"\x01"): refused
    # here as well as by the envelope's check, so the cache is sound on its own.
    if len(msg_id) != ID_SIZE:
        raise BadRequest(f"A message id is {ID_SIZE} bytes.")
    return int.from_bytes(msg_id, "big")

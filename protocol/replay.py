"""The seen-id cache: refuses a message id seen within the freshness window.

Memory is bounded by ``capacity``. When a flood fills it, the oldest entry is dropped and
the cache's *horizon* moves up to that entry's timestamp: from then on a message stamped at
or before the horizon is refused, because the cache can no longer prove it is not a replay.
So a full cache narrows the window; it never lets a replay through.

An id is held as an int, and its place in the expiry heap as one more int, the stamp and the
id together (``ts << 128 | id``): ordered by stamp first, as (ts, id) tuples would be, at about
146 bytes an id held against about 236 for a dict of bytes and a heap of tuples. The cache
holds every id of the window, so this is what a busy engine's memory grows by.
"""

from __future__ import annotations

import heapq

from protocol.envelope import ID_SIZE
from protocol.errors import BadRequest, Replayed

ID_BITS = ID_SIZE * 8
ID_MASK = (1 << ID_BITS) - 1


class SeenIds:
    def __init__(self, window_ms: int, capacity: int = 100_000) -> None:
        self.window_ms = window_ms
        self.capacity = capacity
        self.horizon_ms: int | None = None
        self._expiry: list[int] = []  # ts << ID_BITS | id: the smallest expires first
        self._seen: set[int] = set()

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, msg_id: bytes, ts: int, now_ms: int) -> None:
        self._expire(now_ms)
        if _as_int(msg_id) in self._seen:
            raise Replayed("This message id was already received; a replayed message is refused.")
        if self.horizon_ms is not None and ts <= self.horizon_ms:
            raise Replayed(
                "The receiver is under a flood and cannot prove this message fresh; send a new one."
            )

    def record(self, msg_id: bytes, ts: int, now_ms: int) -> None:
        self._expire(now_ms)
        number = _as_int(msg_id)
        if number in self._seen:
            return
        while len(self._seen) >= self.capacity:
            oldest = heapq.heappop(self._expiry)
            self._seen.remove(oldest & ID_MASK)
            oldest_ts = oldest >> ID_BITS
            self.horizon_ms = max(self.horizon_ms or oldest_ts, oldest_ts)
        self._seen.add(number)
        heapq.heappush(self._expiry, ts << ID_BITS | number)

    def _expire(self, now_ms: int) -> None:
        # Whatever the id, an entry stamped before the cutoff sorts below this.
        below = (now_ms - self.window_ms) << ID_BITS
        while self._expiry and self._expiry[0] < below:
            self._seen.remove(heapq.heappop(self._expiry) & ID_MASK)


def _as_int(msg_id: bytes) -> int:
    # Ids of another size would map to the same ints (b"\x00\x01" and b"\x01"): refused
    # here as well as by the envelope's check, so the cache is sound on its own.
    if len(msg_id) != ID_SIZE:
        raise BadRequest(f"A message id is {ID_SIZE} bytes.")
    return int.from_bytes(msg_id, "big")

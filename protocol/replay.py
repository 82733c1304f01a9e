"""The seen-id cache: refuses a message id seen within the freshness window.

Memory is bounded by ``capacity``. When a flood fills it, the oldest entry is dropped and
the cache's *horizon* moves up to that entry's timestamp: from then on a message stamped at
or before the horizon is refused, because the cache can no longer prove it is not a replay.
So a full cache narrows the window; it never lets a replay through.
"""

from __future__ import annotations

import heapq

from protocol.errors import Replayed


class SeenIds:
    def __init__(self, window_ms: int, capacity: int = 100_000) -> None:
        self.window_ms = window_ms
        self.capacity = capacity
        self.horizon_ms: int | None = None
        self._expiry: list[tuple[int, bytes]] = []
        self._seen: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, msg_id: bytes, ts: int, now_ms: int) -> None:
        self._expire(now_ms)
        if msg_id in self._seen:
            raise Replayed("This message id was already received; a replayed message is refused.")
        if self.horizon_ms is not None and ts <= self.horizon_ms:
            raise Replayed(
                "The receiver is under a flood and cannot prove this message fresh; send a new one."
            )

    def record(self, msg_id: bytes, ts: int, now_ms: int) -> None:
        self._expire(now_ms)
        if msg_id in self._seen:
            return
        while len(self._seen) >= self.capacity:
            oldest_ts, oldest_id = heapq.heappop(self._expiry)
            del self._seen[oldest_id]
            self.horizon_ms = max(self.horizon_ms or oldest_ts, oldest_ts)
        self._seen[msg_id] = ts
        heapq.heappush(self._expiry, (ts, msg_id))

    def _expire(self, now_ms: int) -> None:
        cutoff = now_ms - self.window_ms
        while self._expiry and self._expiry[0][0] < cutoff:
            _, msg_id = heapq.heappop(self._expiry)
            del self._seen[msg_id]

"""What the seen-id cache costs in resident memory, measured in a fresh process.

``measure(trace, window_s)`` feeds a ``protocol.replay.SeenIds`` the ids a daemon took, at
the times it took them (16 random bytes each, stamped then), so the cache fills, expires and
refills as the daemon's did, and returns the most the fresh process's resident memory grew by
divided by the most ids it held at once. A cache filled once to a count is not what a daemon
holds: ids come and go, the sets holding them are sized by how many came in each second, and
the memory freed as they go is kept for reuse; a daemon pays all of that.
"""

from __future__ import annotations

import gc
import json
import os
import secrets
import subprocess
import sys

from bench import procstat
from protocol.envelope import ID_SIZE
from protocol.replay import SeenIds

# (seconds, ids taken so far): one entry per batch of messages, in order.
Trace = list[tuple[float, int]]


def measure(trace: Trace, window_s: float) -> float:
    """Bytes of resident memory per id held at most, in a subprocess."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.seen_cost"],
        input=json.dumps({"trace": trace, "window_s": window_s}),
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout)


def steady(rate: float, window_s: float, windows: int = 2) -> Trace:
    """A trace at a constant ``rate`` per second for ``windows`` windows, a second a batch."""
    seconds = int(window_s * windows)
    return [(float(s), round(rate * (s + 1))) for s in range(seconds)]


def _replay(trace: Trace, window_s: float) -> float:
    seen = SeenIds(window_ms=int(window_s * 1000))
    gc.collect()
    before = procstat.rss_bytes(os.getpid())
    taken = most = highest = 0
    for at, ids in trace:
        now = int(at * 1000)
        for _ in range(ids - taken):
            msg_id = secrets.token_bytes(ID_SIZE)
            seen.check(msg_id, now, now)
            seen.record(msg_id, now, now)
        taken = ids
        most = max(most, len(seen))
        # The most it held at once: a second's set let go gives its memory back.
        highest = max(highest, procstat.rss_bytes(os.getpid()))
    return (highest - before) / max(most, 1)


if __name__ == "__main__":
    given = json.load(sys.stdin)
    print(_replay([(float(t), int(n)) for t, n in given["trace"]], float(given["window_s"])))

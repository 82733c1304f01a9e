"""What one id held in the seen-id cache costs in resident memory, measured in a fresh process.

``python -m bench.seen_cost N`` fills a ``protocol.replay.SeenIds`` with N ids as the receive
pipeline does (16 random bytes each, stamped now) and prints the growth of its own resident
memory divided by N. A fresh interpreter, so that nothing else allocates meanwhile.
"""

from __future__ import annotations

import gc
import os
import secrets
import subprocess
import sys
import time

from bench import procstat
from protocol.envelope import ID_SIZE
from protocol.replay import SeenIds


def measure(ids: int) -> float:
    """Bytes of resident memory per id held, in a subprocess."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.seen_cost", str(ids)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout)


def _fill(ids: int) -> float:
    now = time.time_ns() // 1_000_000
    seen = SeenIds(window_ms=3_600_000, capacity=ids)
    gc.collect()
    before = procstat.rss_bytes(os.getpid())
    for n in range(ids):
        msg_id = secrets.token_bytes(ID_SIZE)
        seen.check(msg_id, now + n // 1000, now)
        seen.record(msg_id, now + n // 1000, now)
    gc.collect()
    assert len(seen) == ids
    return (procstat.rss_bytes(os.getpid()) - before) / ids


if __name__ == "__main__":
    print(_fill(int(sys.argv[1])))

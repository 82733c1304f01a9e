"""wsproxy_agent/memtrim.py: when a daemon gives freed heap back, and that it does."""

from __future__ import annotations

import subprocess
import sys

from wsproxy_agent import memtrim


def test_memory_is_due_back_once_per_burst_at_its_first_quiet_moment() -> None:
    after = memtrim.AfterBurst(after_messages=100)
    assert not after.due_when_quiet()
    after.handled(60)
    assert not after.due_when_quiet()  # a trickle is not a burst
    after.handled(40)
    assert after.due_when_quiet()
    assert not after.due_when_quiet()  # given back already
    after.handled(99)
    assert not after.due_when_quiet()
    after.handled(1)
    assert after.due_when_quiet()


FRAGMENTED_THREAD_ARENA = """
import threading
from wsproxy_agent import memtrim

kept = []

def burst():
    # Blocks above pymalloc's 512 bytes come from this thread's glibc arena; every 50th
    # stays in use, so the freed pages between them are not at the arena's top.
    blocks = [bytes(1000 + i % 500) for i in range(40_000)]
    kept.extend(blocks[::50])

thread = threading.Thread(target=burst)
thread.start()
thread.join()
before = memtrim.resident_bytes()
released = memtrim.release()
print(released.released_bytes, before - released.resident_bytes)
"""


def test_release_gives_back_the_free_pages_between_blocks_still_in_use() -> None:
    out = subprocess.run(
        [sys.executable, "-c", FRAGMENTED_THREAD_ARENA],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    released, fell_by = map(int, out.split())
    assert released >= 20 << 20  # of about 50 MiB freed
    assert fell_by >= released

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


# Blocks of a console's size allocated and freed in turn, three at a time: with glibc's
# default thresholds the free top of the heap then exceeds the trim threshold at each round,
# is handed back, and the next round faults its pages in again.
BLOCKS_IN_TURN = """
import resource, sys
from console_proxy.server import LARGEST_BLOCK_BYTES, KEPT_FREE_BYTES
from wsproxy_agent import memtrim

if sys.argv[1] == "kept":
    assert memtrim.keep_freed_for_reuse(LARGEST_BLOCK_BYTES, KEPT_FREE_BYTES)

def round_of_blocks():
    blocks = [b"\\x01" * (256 * 1024) for _ in range(3)]  # written: every page touched
    del blocks

for _ in range(3):
    round_of_blocks()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    round_of_blocks()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 100)
"""


def _faults_per_round(mode: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", BLOCKS_IN_TURN, mode], capture_output=True, text=True, check=True
    ).stdout
    return float(out)


def test_blocks_freed_in_turn_are_reused_instead_of_faulted_in_again() -> None:
    # Three blocks of 64 pages each: with the defaults most of them come back as faults.
    assert _faults_per_round("default") > 50
    assert _faults_per_round("kept") < 2

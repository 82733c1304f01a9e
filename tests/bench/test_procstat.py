"""What the console bench reads from /proc: a forked family's memory counted once, and the CPU
of children that have ended."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from bench import procstat

MIB = procstat.MIB

# Touches 64 MiB, forks a child that keeps it (shared, not copied), says both pids, waits.
SHARER = textwrap.dedent(
    """
    import os, sys, time
    held = bytearray(os.urandom(1024)) * (64 * 1024)
    child = os.fork()
    if child == 0:
        time.sleep(60)
        os._exit(0)
    print(os.getpid(), child, flush=True)
    sys.stdin.readline()
    os.kill(child, 9)
    """
)


def test_pss_counts_pages_a_fork_shares_once() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SHARER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        parent, child = (int(pid) for pid in proc.stdout.readline().split())
        rss = procstat.rss_bytes(parent) + procstat.rss_bytes(child)
        pss = procstat.pss_bytes(parent) + procstat.pss_bytes(child)
        # Resident memory counts the 64 MiB in each process; PSS splits it between them.
        assert rss > 2 * 64 * MIB
        assert 64 * MIB < pss < rss - 48 * MIB
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)


def test_cpu_of_children_counts_once_they_are_reaped() -> None:
    before = procstat.cpu_seconds(os.getpid(), reaped_children=True)
    own_before = procstat.cpu_seconds(os.getpid())
    busy = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass"
    subprocess.run([sys.executable, "-c", busy], check=True, timeout=60)
    children = procstat.cpu_seconds(os.getpid(), reaped_children=True) - before
    own = procstat.cpu_seconds(os.getpid()) - own_before
    assert children - own >= 0.4

"""One join or renewal at a time: a second waits, then gets a sentence naming the holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from proxy_agent.exclusive import Busy, one_at_a_time

HOLDER = """
import sys, time
from pathlib import Path
from proxy_agent.exclusive import one_at_a_time
with one_at_a_time(Path(sys.argv[1]), 0):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(lock: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_job_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    lock = tmp_path / "state" / "enrollment.lock"
    holder = _holder(lock)
    try:
        started = time.monotonic()
        with pytest.raises(Busy, match=f"pid {holder.pid}"), one_at_a_time(lock, 0.5):
            pass
        assert time.monotonic() - started >= 0.5  # it waited as long as it was told
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_leaves_the_host_free(tmp_path: Path) -> None:
    lock = tmp_path / "enrollment.lock"
    holder = _holder(lock)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with one_at_a_time(lock, 2):
        assert lock.read_text().strip() == str(os.getpid())


def test_the_lock_is_free_again_after_the_job(tmp_path: Path) -> None:
    lock = tmp_path / "enrollment.lock"
    with one_at_a_time(lock, 0):
        pass
    with one_at_a_time(lock, 0):
        pass

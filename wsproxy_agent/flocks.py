"""Waiting for an exclusive flock with a deadline (flock itself waits forever or not at all)."""

from __future__ import annotations

import fcntl
import time


def take_exclusive(fd: int, timeout: float, poll_s: float = 0.05) -> bool:
    """Lock ``fd`` exclusively, waiting up to ``timeout`` seconds; False if it stayed held."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)

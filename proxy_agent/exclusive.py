"""One join or renewal at a time on a proxy host.

`proxy join`, `proxy renew` and the daemon's own renewal all write the same key,
certificate and pending request; two at once would rename each other's files away. Each
holds an flock on one file in the state directory; the kernel drops it when the holder
dies, so a SIGKILLed join never leaves the host locked.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from wsproxy_agent import flocks
from wsproxy_agent.errors import AgentError

POLL_S = 0.2


class Busy(AgentError):
    """Another join or renewal holds the host."""


@contextlib.contextmanager
def one_at_a_time(lock_path: Path, wait_s: float) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if not flocks.take_exclusive(fd, wait_s, POLL_S):
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise Busy(
                f"Another join or renewal is running on this host (pid {holder}); "
                "wait for it to finish, then try again."
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock

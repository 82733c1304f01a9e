"""A test seam, inert unless its variable is set: hold the process right after a file write.

Two faults cannot be timed from outside without it: a SIGKILL, and a disk filling up, *between*
two of the installer's file writes. No real mechanism gives that point (the installer reads
nothing there that a FIFO could stand in for, and a ptrace-based pause is not wanted), so this
one function reads one clearly named variable, and nothing else does:

    WSPROXY_AGENT_TEST_PAUSE_AFTER=/some/dir/<file name>

After writing the new content of a file called ``<file name>``, the process creates that path
and waits until something is written into it. It pauses once: a hold file that already exists
lets it pass.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_AFTER = "WSPROXY_AGENT_TEST_PAUSE_AFTER"


def pause_after_writing(path: Path) -> None:
    hold = os.environ.get(PAUSE_AFTER)
    if not hold or Path(hold).name != path.name:
        return
    try:
        Path(hold).touch(exist_ok=False)
    except FileExistsError:
        return
    while os.path.getsize(hold) == 0:
        time.sleep(0.05)

"""Tests that need root (mounts, namespaces): skip with the reason, or fail where CI says so.

CI sets WSPROXY_REQUIRE_ROOT_TESTS=1, so a runner that lost root (or the right to mount) fails
instead of quietly turning these tests into skips that nobody reads.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

REQUIRE_ROOT_TESTS = "WSPROXY_REQUIRE_ROOT_TESTS"


def skip_or_fail(why: str) -> NoReturn:
    """Skip the test for ``why``; fail it instead when CI requires the root tests to run."""
    if os.environ.get(REQUIRE_ROOT_TESTS, "") not in ("", "0"):
        pytest.fail(f"{REQUIRE_ROOT_TESTS} is set but this test cannot run: {why}")
    pytest.skip(why)


@contextlib.contextmanager
def tmpfs(mountpoint: Path, size: str) -> Iterator[Path]:
    """A fresh tmpfs of ``size`` (mount's syntax: 4m, 64k) on ``mountpoint``, unmounted after.

    The caller stops every process using it first; a busy mount is detached lazily rather
    than left behind.
    """
    if os.geteuid() != 0:
        skip_or_fail("mounting a small tmpfs to fill up needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if done.returncode != 0:
        skip_or_fail(f"mount -t tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", str(mountpoint)], capture_output=True, timeout=30).returncode:
            subprocess.run(["umount", "-l", str(mountpoint)], check=True, timeout=30)


def fill(directory: Path) -> Path:
    """Fill the file system holding ``directory`` to the last byte; delete the file to free it."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)  # unbuffered: short writes take the last bytes too
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return filler

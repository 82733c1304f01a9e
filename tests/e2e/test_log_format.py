"""Log lines: JSON for the journal and pipes, readable key=value lines on a terminal.

The real engine daemon runs with its stderr on a pipe or on a pseudo-terminal (``pty``),
and its first line, ``engine_started``, is read back.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time

import pytest

from tests.e2e.conftest import Hosts

STARTED = "engine_started"


@pytest.fixture
def engine(hosts: Hosts) -> Hosts:
    hosts.engine_init()
    return hosts


def started_line(
    h: Hosts,
    *options: str,
    terminal: bool = False,
    journal_on_stderr: bool = False,
    env: dict[str, str] | None = None,
) -> str:
    """The daemon's engine_started line; ``journal_on_stderr`` sets JOURNAL_STREAM as
    systemd does, to the device:inode of the daemon's stderr."""
    environ = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"} | (env or {})
    argv = h.command(h.engine, *options, "engine", "run")
    if not terminal:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=environ,
        )
        assert proc.stderr is not None
        return _read_until_started(proc, proc.stderr.fileno())
    reader, tty = pty.openpty()
    if journal_on_stderr:
        st = os.fstat(tty)
        environ["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
    try:
        proc = subprocess.Popen(argv, stdin=tty, stdout=tty, stderr=tty, env=environ)
    finally:
        os.close(tty)
    try:
        return _read_until_started(proc, reader)
    finally:
        os.close(reader)


def _read_until_started(proc: subprocess.Popen[bytes], fd: int, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    seen = b""
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the daemon's end of the terminal is closed
                break
            if not chunk:
                break
            seen += chunk
            *complete, _ = seen.decode(errors="replace").split("\n")
            for line in complete:
                if STARTED in line:
                    return line.strip()
        raise AssertionError(f"no {STARTED} line; the daemon wrote:\n{seen.decode()}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def as_json(line: str) -> dict[str, object] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def assert_json(line: str) -> None:
    record = as_json(line)
    assert record is not None, f"not a JSON line: {line!r}"
    assert record["event"] == STARTED and record["level"] == "info"


def assert_readable(line: str, h: Hosts) -> None:
    assert as_json(line) is None, f"JSON on a terminal: {line!r}"
    assert f"listen=tcp://127.0.0.1:{h.port}" in line and "[info" in line


def test_json_lines_off_a_terminal(engine: Hosts) -> None:
    assert_json(started_line(engine))


def test_readable_lines_on_a_terminal(engine: Hosts) -> None:
    assert_readable(started_line(engine, terminal=True), engine)


def test_json_when_stderr_is_the_journal_stream(engine: Hosts) -> None:
    assert_json(started_line(engine, terminal=True, journal_on_stderr=True))


def test_an_inherited_journal_stream_leaves_a_terminal_readable(engine: Hosts) -> None:
    # A shell started from a service inherits JOURNAL_STREAM; its stderr is not the journal.
    line = started_line(engine, terminal=True, env={"JOURNAL_STREAM": "8:424242"})
    assert_readable(line, engine)


def test_log_format_option_wins(engine: Hosts) -> None:
    assert_readable(started_line(engine, "--log-format", "console"), engine)
    assert_json(started_line(engine, "--log-format", "json", terminal=True))

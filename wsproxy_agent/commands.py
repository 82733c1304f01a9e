"""The command runner: the one place the agents run an external program.

``engine-config``, ``systemctl`` and ``pki-enroll-request.sh`` are reached through here, in
production and in tests alike (tests point the configured argument lists at real stand-in
executables). Every run is bounded by a timeout and never goes through a shell.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from wsproxy_agent.errors import AgentError

DEFAULT_TIMEOUT = 120.0


class CommandFailed(AgentError):
    """A command could not run, exited non-zero, or ran past its timeout."""

    def __init__(self, argv: Sequence[str], sentence: str, output: str = "") -> None:
        super().__init__(sentence)
        self.argv = list(argv)
        self.output = output


@dataclass(frozen=True)
class Completed:
    argv: list[str]
    stdout: str
    stderr: str


def run(
    argv: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> Completed:
    argv = [str(a) for a in argv]
    if not argv:
        raise CommandFailed(
            argv, "No command is configured; set the command in the agent's config."
        )
    shown = " ".join(argv)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            # Its own process group, so a hung command's children die with it.
            start_new_session=True,
        )
    except FileNotFoundError:
        raise CommandFailed(
            argv, f"'{argv[0]}' was not found; install it or change the command in the config."
        ) from None
    except PermissionError:
        raise CommandFailed(argv, f"'{argv[0]}' is not executable by this user.") from None
    try:
        stdout, stderr = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        stdout, stderr = proc.communicate()
        raise CommandFailed(
            argv, f"'{shown}' did not finish within {timeout:g} s and was stopped.", stdout + stderr
        ) from None
    if proc.returncode != 0:
        detail = (stderr or stdout).strip().splitlines()
        last = detail[-1] if detail else "no output"
        raise CommandFailed(
            argv,
            f"'{shown}' failed with exit code {proc.returncode}: {last}",
            stdout + stderr,
        )
    return Completed(argv, stdout, stderr)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)

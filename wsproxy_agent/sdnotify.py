"""systemd's notify protocol (sd_notify(3)) without libsystemd.

Under ``Type=notify`` systemd calls the service started only when it sends READY=1, and
with ``WatchdogSec=`` it restarts a service that stops sending WATCHDOG=1. Each message
is one datagram of newline-separated assignments to the AF_UNIX socket named by
``NOTIFY_SOCKET``. Outside systemd that variable is unset and every call does nothing,
so the daemons call this unconditionally.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

from wsproxy_agent import logs


def notify_address(environ: Mapping[str, str]) -> str | None:
    """The socket NOTIFY_SOCKET names: a path, or an abstract name ('@' read as NUL)."""
    value = environ.get("NOTIFY_SOCKET", "")
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return None


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds systemd allows between WATCHDOG=1 pings, or None when it does not watch us.

    WATCHDOG_PID names the process systemd expects the pings from: the commands we run
    (engine-config, systemctl) inherit the variables but are not the ones watched.
    """
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
        owner = int(environ.get("WATCHDOG_PID", str(pid)))
    except ValueError:
        return None
    if usec <= 0 or owner != pid:
        return None
    return usec / 1_000_000


class Notifier:
    """The daemon's line to systemd: READY=1 once, WATCHDOG=1 when due, STOPPING=1 last."""

    def __init__(
        self,
        address: str | None,
        watchdog_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.address = address
        # sd_watchdog_enabled(3) asks for a ping every half interval, so one late
        # wake-up of the loop never costs a restart.
        self.ping_every = watchdog_s / 2 if watchdog_s else None
        self.clock = clock
        self.next_ping = 0.0
        self.log = logs.get("systemd")
        self._sock: socket.socket | None = None
        self._failure_logged = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        raw = environ.get("NOTIFY_SOCKET")
        address = notify_address(environ)
        notifier = cls(address, watchdog_interval(environ, os.getpid()))
        if raw and address is None:
            notifier.log.warning(
                "systemd_notify_unsupported",
                socket=raw,
                why="NOTIFY_SOCKET is neither a path nor an @abstract name; not notifying",
            )
        return notifier

    def ready(self, status: str) -> None:
        self._send(f"READY=1\nSTATUS={status}\nMAINPID={os.getpid()}")

    def keepalive(self) -> None:
        """Called from the daemon's loop on every wake-up: pings only when one is due."""
        if self.ping_every is None:
            return
        now = self.clock()
        if now < self.next_ping:
            return
        self.next_ping = now + self.ping_every
        self._send("WATCHDOG=1")

    def stopping(self) -> None:
        """The last message: systemd reads the exit that follows as a stop, not a crash."""
        self._send("STOPPING=1")
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _send(self, state: str) -> None:
        if self.address is None:
            return
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            # A blocking send, as libsystemd's: systemd drains its socket, and a READY=1
            # dropped because its queue was briefly full would fail the service's start.
            self._sock.sendto(state.encode("utf-8"), self.address)
        except OSError as exc:
            # Losing systemd must not stop the daemon serving proxies; say so once.
            if not self._failure_logged:
                self._failure_logged = True
                self.log.warning(
                    "systemd_notify_failed",
                    socket=self.address.replace("\0", "@", 1),
                    why=exc.strerror or str(exc),
                )

"""The local control socket: the command line asks a running daemon for live facts.

A plain Unix stream socket in a 0700 directory with a 0600 file, so only the daemon's user
can reach it, and nothing on the network can. Every decision still goes through the
registry on disk; this channel only asks and nudges.

One request per connection: the client writes a JSON object and shuts its side down; the
daemon answers with one JSON object and closes. Plain sockets rather than ZeroMQ because
`status` is typed by people: the client needs only the standard library (pyzmq's import is
a third of a status's start-up), and the daemon learns from the kernel who is asking
(SO_PEERCRED), not from the request.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsproxy_agent.errors import AgentError

ASK_TIMEOUT_MS = 1500
# A request is a handful of fields; an answer lists at most every proxy's health.
MAX_REQUEST_BYTES = 64 * 1024
MAX_ANSWER_BYTES = 64 * 1024 * 1024
# How long the daemon waits for a connected client to finish writing its request. Only the
# daemon's own user can connect, so this bounds a stuck client, not an attacker.
READ_REQUEST_S = 1.0
ANSWER_S = 5.0
BACKLOG = 16
# A Unix socket path must fit sun_path (108 bytes with its terminating NUL).
MAX_SOCKET_PATH = 107


def ask(
    path: Path, request: dict[str, Any], timeout_ms: int = ASK_TIMEOUT_MS
) -> dict[str, Any] | None:
    """The daemon's answer, or None when no daemon answers (not running, or hung)."""
    if not path.exists():
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_ms / 1000)
            sock.connect(str(path))
            sock.sendall(json.dumps(request).encode())
            sock.shutdown(socket.SHUT_WR)
            answer = json.loads(_read_to_end(sock, MAX_ANSWER_BYTES))
    except (OSError, ValueError):  # refused, timed out, cut short or not JSON
        return None
    return answer if isinstance(answer, dict) else None


@dataclass
class Request:
    """One client's request, answered once with ``answer`` (now or later)."""

    body: dict[str, Any]
    uid: int  # who asked, as the kernel says
    _conn: socket.socket

    def answer(self, reply: dict[str, Any]) -> None:
        """Send the answer and hang up; a client that has gone away loses it, nothing else."""
        with self._conn, contextlib.suppress(OSError):
            self._conn.settimeout(ANSWER_S)
            self._conn.sendall(json.dumps(reply).encode())


class ControlServer:
    """The daemon's end: a listening socket its loop polls (``fileno``), never blocking on
    it longer than one client's request takes to arrive."""

    def __init__(self, path: Path) -> None:
        if len(str(path).encode()) > MAX_SOCKET_PATH:
            raise AgentError(
                f"The control socket path {path} is longer than {MAX_SOCKET_PATH} bytes, the "
                "limit for Unix sockets; use a shorter --root."
            )
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(path))
        path.chmod(0o600)
        self._sock.listen(BACKLOG)
        self._sock.setblocking(False)

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        self._sock.close()
        self.path.unlink(missing_ok=True)

    def take(self) -> Request | None:
        """The next waiting request, or None when none waits. A request that is not a JSON
        object is answered with the reason and not handed on."""
        try:
            conn, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError):
            return None
        uid = _peer_uid(conn)
        try:
            conn.settimeout(READ_REQUEST_S)
            body = json.loads(_read_to_end(conn, MAX_REQUEST_BYTES))
        except (OSError, ValueError):
            body = None
        if not isinstance(body, dict):
            Request({}, uid, conn).answer(
                {"ok": False, "error": "The request was not one JSON object; nothing was done."}
            )
            return None
        return Request(body, uid, conn)


def _read_to_end(sock: socket.socket, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := sock.recv(65536):
        size += len(chunk)
        if size > limit:
            raise ValueError(f"more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])

"""systemd's end of NOTIFY_SOCKET for tests: a real datagram socket that records who sent what.

The kernel attaches the sender's pid to each datagram (SO_PASSCRED), as it does for
systemd, which is how systemd tells the main process from its children (NotifyAccess=main).
"""

from __future__ import annotations

import os
import socket
import struct
import time
from dataclasses import dataclass

_UCRED = struct.Struct("iII")  # pid, uid, gid
FILLER = b"FILLER"


@dataclass(frozen=True)
class Notification:
    pid: int
    fields: dict[str, str]


class NotifyListener:
    def __init__(self, env_value: str) -> None:
        """``env_value`` is what NOTIFY_SOCKET will hold: a path, or ``@name`` (abstract)."""
        self.env_value = env_value
        self.address = "\0" + env_value[1:] if env_value.startswith("@") else env_value
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(self.address)
        self.received: list[Notification] = []
        self._fillers: list[socket.socket] = []

    def close(self) -> None:
        for filler in self._fillers:
            filler.close()
        self.sock.close()
        if not self.env_value.startswith("@"):
            os.unlink(self.address)

    def next(self, timeout: float) -> Notification | None:
        """The next notification other than our own fillers, or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(_UCRED.size))
            except TimeoutError:
                return None
            if data == FILLER:
                continue
            pid = next(
                _UCRED.unpack(cdata[: _UCRED.size])[0]
                for level, kind, cdata in ancillary
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS
            )
            lines = data.decode().splitlines()
            note = Notification(pid, dict(line.split("=", 1) for line in lines))
            self.received.append(note)
            return note
        return None

    def wait_for(self, field: str, timeout: float = 20.0) -> Notification:
        """Read until a notification sets ``field`` (e.g. READY); fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            note = self.next(left)
            if note is not None and field in note.fields:
                return note
        raise AssertionError(f"no {field}= notification within {timeout} s: {self.received}")

    def count(self, field: str) -> int:
        return sum(field in note.fields for note in self.received)

    def fill(self) -> None:
        """Fill the socket's queue so a blocking sender waits until we read.

        Each filler sends until EAGAIN; a fresh filler that cannot send even once tells a
        full queue (net.unix.max_dgram_qlen) apart from a filler's own full send buffer.
        """
        while True:
            filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            filler.setblocking(False)
            self._fillers.append(filler)
            sent = 0
            try:
                while True:
                    filler.sendto(FILLER, self.address)
                    sent += 1
            except BlockingIOError:
                if sent == 0:
                    return

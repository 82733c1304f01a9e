"""A QEMU guest with no disk whose firmware screen is the VNC desktop the console shows.

SeaBIOS prints its banner and "No bootable device." and then waits there (QEMU's default
reboot-timeout tells it not to retry), so the picture stays still while the test looks at it.
QMP tells which port VNC took and takes QEMU's own screenshot to compare the browser's with.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.console.picture import Picture
from tests.e2e.conftest import wait_for

QEMU = "qemu-system-x86_64"
RFB_BANNER = b"RFB 003.008\n"


class Qmp:
    """QEMU's machine protocol over its Unix socket: one command at a time, events skipped."""

    def __init__(self, path: Path, timeout: float = 30) -> None:
        self._sock = socket.socket(socket.AF_UNIX)
        self._sock.settimeout(timeout)
        self._sock.connect(str(path))
        self._file = self._sock.makefile("rw")
        json.loads(self._file.readline())  # the greeting
        self.execute("qmp_capabilities")

    def execute(self, command: str, **arguments: Any) -> Any:
        message = {"execute": command, **({"arguments": arguments} if arguments else {})}
        self._file.write(json.dumps(message) + "\n")
        self._file.flush()
        while True:
            reply = json.loads(self._file.readline())
            if "event" in reply:
                continue
            if "error" in reply:
                raise RuntimeError(f"QMP {command}: {reply['error']}")
            return reply["return"]

    def close(self) -> None:
        self._file.close()
        self._sock.close()


@dataclass
class Guest:
    vnc_port: int
    qmp: Qmp
    workdir: Path

    def screendump(self) -> Picture:
        """What QEMU's display shows now, from QEMU itself rather than through VNC."""
        target = self.workdir / "screendump.ppm"
        self.qmp.execute("screendump", filename=str(target))
        return Picture.from_ppm(target.read_bytes())


def rfb_banner(port: int) -> bytes:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            return s.recv(len(RFB_BANNER))
    except OSError:
        return b""


def _wait_for_qmp(path: Path, qemu: subprocess.Popen[bytes], log: Path) -> Qmp:
    def ready() -> bool:
        if qemu.poll() is not None:
            raise AssertionError(f"QEMU exited with {qemu.returncode}: {log.read_text()}")
        return path.exists()

    wait_for(ready, "QEMU's QMP socket", timeout=60)
    return Qmp(path)


@contextlib.contextmanager
def firmware_guest(workdir: Path) -> Iterator[Guest]:
    """A running guest showing its firmware screen on a free VNC port on 127.0.0.1."""
    qmp_path = workdir / "qmp.sock"
    log = workdir / "qemu.log"
    # `to=` lets QEMU take the first free display from 5900 on instead of racing for one.
    with log.open("wb") as out:
        qemu = subprocess.Popen(
            [
                QEMU,
                *("-nodefaults", "-vga", "std", "-display", "none", "-m", "64"),
                *("-machine", "pc", "-no-reboot"),
                *("-vnc", "127.0.0.1:0,to=99"),
                *("-qmp", f"unix:{qmp_path},server=on,wait=off"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    qmp = None
    try:
        qmp = _wait_for_qmp(qmp_path, qemu, log)
        port = int(qmp.execute("query-vnc")["service"])
        wait_for(lambda: rfb_banner(port) == RFB_BANNER, "QEMU's VNC server", timeout=60)
        guest = Guest(port, qmp, workdir)
        wait_for(lambda: _firmware_done(guest), "the firmware to give up booting", timeout=90)
        yield guest
    finally:
        if qmp is not None:
            qmp.close()
        qemu.terminate()
        try:
            qemu.wait(timeout=10)
        except subprocess.TimeoutExpired:
            qemu.kill()
            qemu.wait()


def _firmware_done(guest: Guest) -> bool:
    # SeaBIOS's banner and two failed boot attempts take five lines; "No bootable device."
    # is the sixth and last, after which the screen stays still but for the cursor.
    return guest.screendump().text_lines() >= 6

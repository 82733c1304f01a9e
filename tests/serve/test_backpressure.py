"""A side that stops reading stops its sender: the proxy buffers a bounded amount, not all.

The bound is the kernel's socket buffers on both legs plus the proxy's own (websockets'
queue of 16 messages of up to 1 MiB, a few hundred KiB of the target's): some tens of MiB
at most. Without
backpressure the proxy would take everything, here 256 MiB, into memory.
"""

from __future__ import annotations

import asyncio
import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from tests.serve.conftest import ServeHost, connect_to, run

MIB = 1024 * 1024
OFFERED = 256 * MIB
BOUND = 96 * MIB


class Stalled(socketserver.ThreadingTCPServer):
    """A console target that accepts and then never reads, or floods and never reads."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, flood: bool) -> None:
        self.flood = flood
        self.sent = 0
        self.release = threading.Event()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                if not flood:
                    outer.release.wait(60)
                    return
                sock.settimeout(1)
                chunk = b"\0" * MIB
                while not outer.release.is_set() and outer.sent < OFFERED:
                    try:
                        outer.sent += sock.send(chunk)
                    except TimeoutError:
                        continue
                    except OSError:
                        return

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


@pytest.fixture(params=[False, True], ids=["target-does-not-read", "client-does-not-read"])
def stalled(request: pytest.FixtureRequest) -> Iterator[Stalled]:
    server = Stalled(flood=request.param)
    yield server
    server.close()


def test_a_side_that_does_not_read_holds_back_its_sender(
    serve_host: ServeHost, stalled: Stalled
) -> None:
    serve_host.install()
    serve_host.start()
    port = stalled.server_address[1]

    async def client_pushes() -> int:
        pushed = 0
        ws = await connect_to(serve_host, serve_host.pki.ticket("127.0.0.1", port))
        try:
            while pushed < OFFERED:
                try:
                    await asyncio.wait_for(ws.send(b"\0" * MIB), 3)
                except TimeoutError:
                    break  # held back
                pushed += MIB
        finally:
            ws.transport.abort()  # a closing handshake would wait on the stalled proxy
        return pushed

    async def client_sits() -> None:
        ws = await connect_to(serve_host, serve_host.pki.ticket("127.0.0.1", port))
        try:
            deadline = time.monotonic() + 30
            last, since = -1, time.monotonic()
            # Until the flood has stood still for 2 s (or gone through entirely).
            while time.monotonic() < deadline and stalled.sent < OFFERED:
                if stalled.sent != last:
                    last, since = stalled.sent, time.monotonic()
                elif time.monotonic() - since > 2:
                    break
                await asyncio.sleep(0.1)
        finally:
            ws.transport.abort()

    if stalled.flood:
        run(client_sits())
        moved = stalled.sent
    else:
        moved = run(client_pushes())
    assert 0 < moved < BOUND, f"{moved / MIB:.0f} MiB went in before the sender was held back"

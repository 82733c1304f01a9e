"""Bytes keep their order while a console switches between its two ways of carrying them.

While neither side pushes back, a console hands bytes on from the event loop's callbacks as
they arrive; once one does, they queue for the console's task, which waits
(console_proxy/connection.py). A reader that stops and starts again makes a console switch
back and forth many times: whatever arrives while bytes are queued must go after them.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.serve.conftest import ServeHost, binary, connect_to, run

MIB = 1024 * 1024
TOTAL = 24 * MIB
PAUSE_EVERY = MIB // 2  # the reader stops this often
PAUSE_S = 0.02


def stream() -> bytes:
    return random.Random(7).randbytes(TOTAL)


def pieces(data: bytes) -> Iterator[bytes]:
    """``data`` in pieces of uneven sizes, none lined up with a buffer."""
    sizes = random.Random(11)
    at = 0
    while at < len(data):
        size = sizes.randint(1, 96 * 1024)
        yield data[at : at + size]
        at += size


class Target:
    """One console's target on a thread: a reader that stops and starts (``slow_reader``),
    or a sender of the whole stream as fast as the proxy takes it."""

    def __init__(self, slow_reader: bool) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received = hashlib.sha256()
        self.count = 0
        self.done = threading.Event()
        work = self._read_haltingly if slow_reader else self._send_stream
        self.thread = threading.Thread(target=self._serve, args=(work,), daemon=True)
        self.thread.start()

    def _serve(self, work: Callable[[socket.socket], None]) -> None:
        conn, _ = self.listener.accept()
        with conn:
            work(conn)
        self.done.set()

    def _read_haltingly(self, conn: socket.socket) -> None:
        since_pause = 0
        while self.count < TOTAL:
            data = conn.recv(256 * 1024)
            if not data:
                return
            self.received.update(data)
            self.count += len(data)
            since_pause += len(data)
            if since_pause >= PAUSE_EVERY:
                since_pause = 0
                time.sleep(PAUSE_S)

    def _send_stream(self, conn: socket.socket) -> None:
        for piece in pieces(stream()):
            conn.sendall(piece)
        conn.recv(1)  # until the console ends

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def started(serve_host: ServeHost) -> ServeHost:
    serve_host.install()
    serve_host.start()
    return serve_host


def test_the_browser_s_bytes_reach_a_halting_target_in_order(started: ServeHost) -> None:
    target = Target(slow_reader=True)
    try:

        async def console() -> None:
            async with connect_to(started, started.pki.ticket("127.0.0.1", target.port)) as ws:
                for piece in pieces(stream()):
                    await ws.send(piece)
                assert await asyncio.to_thread(target.done.wait, 60)

        run(console())
        assert target.count == TOTAL
        assert target.received.hexdigest() == hashlib.sha256(stream()).hexdigest()
    finally:
        target.close()


def test_the_target_s_bytes_reach_a_halting_browser_in_order(started: ServeHost) -> None:
    target = Target(slow_reader=False)
    try:

        async def console() -> None:
            received, count, since_pause = hashlib.sha256(), 0, 0
            async with connect_to(started, started.pki.ticket("127.0.0.1", target.port)) as ws:
                while count < TOTAL:
                    data = await binary(ws)
                    received.update(data)
                    count += len(data)
                    since_pause += len(data)
                    if since_pause >= PAUSE_EVERY:
                        since_pause = 0
                        await asyncio.sleep(PAUSE_S)
            assert count == TOTAL
            assert received.hexdigest() == hashlib.sha256(stream()).hexdigest()

        run(console())
    finally:
        target.close()

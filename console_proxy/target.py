"""A console's target, the VM's display: its TCP (or TLS) connection as an asyncio protocol.

What the target sends is handed on in the chunks the event loop read, joined only when
several wait; asyncio's StreamReader copied every byte twice more on its way to the browser
(into its buffer, out of it, and again when its buffer shrank). Reading pauses while more
than PAUSE_READING_AT bytes wait for the browser's side, so a browser that does not read
holds back its VM, not the proxy's memory.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

# Bytes from the target that may wait for the browser's side before reading pauses. One read
# of the event loop's (up to 256 KiB) may come on top: the most one console holds here.
PAUSE_READING_AT = 128 * 1024


class TargetClosed(ConnectionResetError):
    """Written to a target that has gone."""


class TargetConnection(asyncio.Protocol):
    # Set by the console's bridge while it carries bytes: takes what the target sent as it is
    # read (True), or leaves it to wait for ``read()`` (False). Not while bytes wait: they go
    # first.
    deliver: Callable[[bytes], bool] | None = None

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._chunks: deque[bytes] = deque()
        self._waiting_bytes = 0
        self._reading_paused = False
        self._ended = False  # the target sent its last byte (EOF) or the connection is gone
        self._lost = False
        self._error: OSError | None = None  # why the connection was lost, if not cleanly
        self._readable: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # The event loop's side.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.deliver is not None and not self._chunks and self.deliver(data):
            return
        self._chunks.append(data)
        self._waiting_bytes += len(data)
        if self._waiting_bytes > PAUSE_READING_AT and not self._reading_paused:
            assert self.transport is not None
            self._reading_paused = True
            self.transport.pause_reading()
        _wake(self._readable)

    def eof_received(self) -> bool:
        self._ended = True
        _wake(self._readable)
        return False  # a console ends when its target stops sending: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = self._lost = True
        if isinstance(exc, OSError):
            self._error = exc
        _wake(self._readable)
        _wake(self._writable)
        _wake(self._gone)

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        _wake(self._writable)
        self._writable = None

    # The console's side.

    async def read(self) -> bytes:
        """All the target has sent since the last read, at once; b"" when it has ended.
        Raises the connection's error once the bytes that came before it are read."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._ended:
                return b""
            self._readable = asyncio.get_running_loop().create_future()
            try:
                await self._readable
            finally:
                self._readable = None
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._waiting_bytes = 0
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def writable(self) -> bool:
        """Whether a write now goes out without waiting: connected, and not pushing back."""
        return not self._lost and self._writable is None

    async def drain(self) -> None:
        """Wait while the target's side holds more than its transport's high-water mark."""
        while True:
            if self._lost:
                raise self._error or TargetClosed("the console target closed the connection")
            if self._writable is None:
                return
            await self._writable

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def wait_closed(self) -> None:
        await self._gone


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)

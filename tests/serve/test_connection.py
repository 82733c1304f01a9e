"""The browser's connection hands binary frames to its console as they are parsed, but never
ahead of frames already queued, and never a text or fragmented message
(console_proxy/connection.py)."""

from __future__ import annotations

import asyncio

from websockets.asyncio.connection import Connection
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from console_proxy.connection import ConsoleConnection


class Transport(asyncio.Transport):
    """Where the connection would write, read and pause: nowhere."""

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def is_closing(self) -> bool:
        return False


def opened() -> ConsoleConnection:
    """A connection past its handshake (and past the front door's TLS), fed frames by hand."""
    connection = ConsoleConnection(ServerProtocol(), None)  # type: ignore[arg-type]
    Connection.connection_made(connection, Transport())
    connection.request = Request("/ticket", Headers())
    return connection


def taking(after: int) -> tuple[ConsoleConnection, list[bytes]]:
    """An opened connection whose console refuses the first ``after`` frames offered (it
    pushes back), then takes; and the frames offered so far."""
    connection = opened()
    taken: list[bytes] = []

    def take(data: bytes) -> bool:
        taken.append(data)
        return len(taken) > after

    connection.take_frame = take
    return connection, taken


def test_a_binary_frame_is_taken_as_it_is_parsed_and_not_queued() -> None:
    async def main() -> None:
        connection, taken = taking(0)
        connection.process_event(Frame(Opcode.BINARY, b"keys"))
        assert taken == [b"keys"]
        assert len(connection.recv_messages.frames) == 0

    asyncio.run(main())


def test_frames_after_a_queued_one_queue_behind_it() -> None:
    async def main() -> None:
        connection, taken = taking(1)
        connection.process_event(Frame(Opcode.BINARY, b"first"))  # refused: queued
        connection.process_event(Frame(Opcode.BINARY, b"second"))  # would be taken: not offered
        assert taken == [b"first"]
        assert await connection.recv() == b"first"
        assert await connection.recv() == b"second"

    asyncio.run(main())


def test_text_and_fragmented_messages_are_never_offered() -> None:
    async def main() -> None:
        connection, taken = taking(0)
        connection.process_event(Frame(Opcode.TEXT, b"hello"))
        assert await connection.recv() == "hello"
        connection.process_event(Frame(Opcode.BINARY, b"frag", fin=False))
        connection.process_event(Frame(Opcode.CONT, b"ment"))
        assert await connection.recv() == b"fragment"
        assert taken == []

    asyncio.run(main())

"""The target's connection on its own: reads whole, pauses, drains and ends as the bridge needs.

On a real socket pair, one end the proxy's ``TargetConnection``, the other the test's plain
socket standing in for the VM's display.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest

from console_proxy.target import PAUSE_READING_AT, TargetClosed, TargetConnection

MIB = 1024 * 1024


def with_target(test: Callable[[TargetConnection, socket.socket], Awaitable[None]]) -> None:
    async def main() -> None:
        ours, display = socket.socketpair()
        display.setblocking(False)
        _, target = await asyncio.get_running_loop().create_connection(TargetConnection, sock=ours)
        try:
            await test(target, display)
        finally:
            target.close()
            display.close()

    asyncio.run(main())


async def send_all(display: socket.socket, data: bytes) -> None:
    await asyncio.get_running_loop().sock_sendall(display, data)


def test_a_read_takes_all_that_arrived_and_ends_with_empty_bytes_after_eof() -> None:
    async def test(target: TargetConnection, display: socket.socket) -> None:
        for part in (b"RFB ", b"003.", b"008\n"):
            await send_all(display, part)
        await asyncio.sleep(0.05)
        assert await target.read() == b"RFB 003.008\n"
        display.shutdown(socket.SHUT_WR)
        assert await asyncio.wait_for(target.read(), 5) == b""
        assert await target.read() == b""

    with_target(test)


def test_reading_pauses_while_bytes_wait_and_resumes_once_they_are_taken() -> None:
    async def test(target: TargetConnection, display: socket.socket) -> None:
        assert target.transport is not None
        flood = asyncio.ensure_future(send_all(display, b"\0" * (16 * MIB)))
        await asyncio.sleep(0.3)
        assert not target.transport.is_reading()
        held = await target.read()
        # What waits is bounded: the threshold and one read of the event loop's on top.
        assert PAUSE_READING_AT < len(held) <= PAUSE_READING_AT + 256 * 1024
        assert target.transport.is_reading()
        total = len(held)
        while total < 16 * MIB:
            total += len(await asyncio.wait_for(target.read(), 5))
        await flood
        assert total == 16 * MIB

    with_target(test)


def test_drain_waits_for_a_target_that_does_not_read_and_fails_once_it_is_gone() -> None:
    async def test(target: TargetConnection, display: socket.socket) -> None:
        target.write(b"\0" * (8 * MIB))
        drained = asyncio.ensure_future(target.drain())
        await asyncio.sleep(0.3)
        assert not drained.done()
        loop = asyncio.get_running_loop()
        taken = 0
        while taken < 8 * MIB:
            taken += len(await loop.sock_recv(display, MIB))
        await asyncio.wait_for(drained, 5)
        display.close()
        target.write(b"more")
        with pytest.raises(ConnectionError):  # a broken pipe or a reset, by timing
            for _ in range(100):
                await target.drain()
                await asyncio.sleep(0.01)

    with_target(test)


def test_bytes_before_a_lost_connection_are_read_before_its_error() -> None:
    async def test(target: TargetConnection, display: socket.socket) -> None:
        target.data_received(b"last frame")
        reset = ConnectionResetError(104, "Connection reset by peer")
        target.connection_lost(reset)
        assert await target.read() == b"last frame"
        with pytest.raises(ConnectionResetError) as raised:
            await target.read()
        assert raised.value is reset
        with pytest.raises(ConnectionResetError):
            await target.drain()

    with_target(test)


def test_a_clean_loss_makes_drain_fail_with_a_sentence() -> None:
    async def test(target: TargetConnection, display: socket.socket) -> None:
        target.connection_lost(None)
        assert await target.read() == b""
        with pytest.raises(TargetClosed, match="closed the connection"):
            await target.drain()

    with_target(test)


def test_bytes_go_to_deliver_as_read_but_never_ahead_of_bytes_waiting() -> None:
    async def test(target: TargetConnection, display: socket.socket) -> None:
        offered: list[bytes] = []

        def deliver(data: bytes) -> bool:  # refuses the first bytes (pushes back), then takes
            offered.append(data)
            return len(offered) > 1

        target.deliver = deliver
        await send_all(display, b"first")
        while not offered:
            await asyncio.sleep(0.01)
        await send_all(display, b"second")  # would be taken: bytes wait, so not offered
        await asyncio.sleep(0.1)
        assert offered == [b"first"]
        assert await target.read() == b"firstsecond"
        await send_all(display, b"third")  # nothing waits: taken as read
        while len(offered) < 2:
            await asyncio.sleep(0.01)
        assert offered == [b"first", b"third"]

    with_target(test)

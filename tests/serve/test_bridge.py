"""Consoles: bytes both ways, large and many at once, closing, subprotocols, TLS targets."""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
import time

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from tests.e2e.conftest import wait_for
from tests.serve.conftest import Echo, ServeHost, binary, connect_to, run


def test_a_console_carries_bytes_both_ways(serve_host: ServeHost) -> None:
    target = Echo(banner=b"RFB 003.008\n")
    try:
        serve_host.install()
        serve_host.start()

        async def console() -> None:
            async with connect_to(
                serve_host, serve_host.pki.ticket("127.0.0.1", target.port)
            ) as ws:
                assert await ws.recv() == b"RFB 003.008\n"  # the target speaks first
                for size in (1, 1000, 65536):
                    payload = os.urandom(size)
                    await ws.send(payload)
                    assert await _recv_exactly(ws, size) == payload

        run(console())
        (opened,) = serve_host.events("console_opened")
        assert opened["target"] == f"127.0.0.1:{target.port}"
        wait_for(lambda: serve_host.events("console_closed"), "the console's end in the log")
        (closed,) = serve_host.events("console_closed")
        assert closed["bytes_to_target"] == 1 + 1000 + 65536
        assert closed["bytes_to_client"] == 12 + 1 + 1000 + 65536
    finally:
        target.close()


def test_large_payloads_arrive_whole_and_in_order(serve_host: ServeHost, echo: Echo) -> None:
    serve_host.install()
    serve_host.start()
    # Up to the largest message the proxy takes, in sizes that do not line up with buffers.
    sizes = [1024 * 1024 - n * 4099 for n in range(24)]

    async def console() -> None:
        async with connect_to(serve_host, serve_host.pki.ticket("127.0.0.1", echo.port)) as ws:
            sent, received = hashlib.sha256(), hashlib.sha256()

            async def send() -> None:
                for size in sizes:
                    chunk = os.urandom(size)
                    sent.update(chunk)
                    await ws.send(chunk)

            async def receive() -> None:
                count = 0
                while count < sum(sizes):
                    data = await binary(ws)
                    received.update(data)
                    count += len(data)

            await asyncio.gather(send(), receive())
            assert received.hexdigest() == sent.hexdigest()

    run(console())
    wait_for(lambda: serve_host.events("console_closed"), "the console's end in the log")
    (closed,) = serve_host.events("console_closed")
    assert closed["bytes_to_target"] == closed["bytes_to_client"] == sum(sizes)


def test_fifty_consoles_at_once(serve_host: ServeHost, echo: Echo) -> None:
    serve_host.install()
    serve_host.start()
    consoles = 50

    async def one(n: int, all_open: asyncio.Barrier) -> bytes:
        ticket = serve_host.pki.ticket("127.0.0.1", echo.port)
        async with connect_to(serve_host, ticket) as ws:
            await all_open.wait()  # every console is open at the same time
            payload = n.to_bytes(2, "big") + os.urandom(50_000)
            await ws.send(payload)
            assert await _recv_exactly(ws, len(payload)) == payload
            return payload[:2]

    async def all_of_them() -> list[bytes]:
        barrier = asyncio.Barrier(consoles)
        return await asyncio.gather(*(one(n, barrier) for n in range(consoles)))

    assert run(all_of_them()) == [n.to_bytes(2, "big") for n in range(consoles)]
    assert len(serve_host.events("console_opened")) == consoles
    assert echo.connections == consoles


def test_the_target_closing_closes_the_console(serve_host: ServeHost) -> None:
    target = Echo(banner=b"bye", hang_up=True)
    try:
        serve_host.install()
        serve_host.start()

        async def console() -> ConnectionClosed:
            async with connect_to(
                serve_host, serve_host.pki.ticket("127.0.0.1", target.port)
            ) as ws:
                assert await ws.recv() == b"bye"
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 20)
                return closed.value

        closed = run(console())
        assert closed.rcvd is not None and closed.rcvd.code == CloseCode.NORMAL_CLOSURE
        wait_for(lambda: serve_host.events("console_closed"), "the console's end in the log")
        assert serve_host.events("console_closed")[0]["ended_by"] == "target"
    finally:
        target.close()


def test_the_client_leaving_closes_the_target_connection(serve_host: ServeHost, echo: Echo) -> None:
    serve_host.install()
    serve_host.start()

    async def console() -> None:
        async with connect_to(serve_host, serve_host.pki.ticket("127.0.0.1", echo.port)) as ws:
            await ws.send(b"x")
            assert await ws.recv() == b"x"

    run(console())
    # The echo server's read returns EOF only once the proxy closed its side.
    assert echo.closed_by_client.wait(20)
    wait_for(lambda: serve_host.events("console_closed"), "the console's end in the log")
    assert serve_host.events("console_closed")[0]["ended_by"] == "client"


def test_binary_subprotocol_is_accepted_when_offered_and_none_otherwise(
    serve_host: ServeHost, echo: Echo
) -> None:
    serve_host.install()
    serve_host.start()

    async def negotiated(offer: list[str] | None) -> str | None:
        ticket = serve_host.pki.ticket("127.0.0.1", echo.port)
        async with connect_to(serve_host, ticket, subprotocols=offer) as ws:
            await ws.send(b"ping")
            assert await ws.recv() == b"ping"
            subprotocol: str | None = ws.subprotocol
            return subprotocol

    assert run(negotiated(["binary"])) == "binary"
    assert run(negotiated(["base64", "binary"])) == "binary"
    assert run(negotiated(None)) is None


def test_a_text_message_closes_the_console_with_a_reason(serve_host: ServeHost, echo: Echo) -> None:
    serve_host.install()
    serve_host.start()

    async def console() -> ConnectionClosed:
        ticket = serve_host.pki.ticket("127.0.0.1", echo.port)
        async with connect_to(serve_host, ticket, subprotocols=["base64"]) as ws:
            assert ws.subprotocol is None  # base64 (old websockify clients) is not offered back
            await ws.send("UkZCIDAwMy4wMDgK")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            return closed.value

    closed = run(console())
    assert closed.rcvd is not None
    assert closed.rcvd.code == CloseCode.UNSUPPORTED_DATA
    assert "send binary" in closed.rcvd.reason
    assert echo.connections == 1


def test_a_message_over_the_cap_closes_the_console(serve_host: ServeHost, echo: Echo) -> None:
    serve_host.install()
    serve_host.start()

    async def console() -> ConnectionClosed:
        async with connect_to(serve_host, serve_host.pki.ticket("127.0.0.1", echo.port)) as ws:
            await ws.send(os.urandom(1024 * 1024 + 1))
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            return closed.value

    closed = run(console())
    assert closed.rcvd is not None and closed.rcvd.code == CloseCode.MESSAGE_TOO_BIG


def test_ssl_target_reaches_a_tls_target(serve_host: ServeHost) -> None:
    issued = serve_host.pki.issue("vnc.serve.test")
    cert = serve_host.root / "vnc.pem"
    cert.write_bytes(issued.cert_pem + issued.key_pem)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert)
    target = Echo(tls=tls)
    try:
        serve_host.install()
        serve_host.start()

        async def console(ssl_target: bool) -> bytes:
            ticket = serve_host.pki.ticket("127.0.0.1", target.port, ssl_target=ssl_target)
            async with connect_to(serve_host, ticket) as ws:
                await ws.send(b"over tls")
                return await binary(ws, 20)

        assert run(console(True)) == b"over tls"
        (opened,) = serve_host.events("console_opened")
        assert opened["ssl_target"] is True
    finally:
        target.close()


async def _recv_exactly(ws: ClientConnection, size: int) -> bytes:
    """Bytes from the proxy until ``size``: TCP does not keep the client's message bounds."""
    data = b""
    deadline = time.monotonic() + 30
    while len(data) < size:
        data += await binary(ws, max(0.1, deadline - time.monotonic()))
    return data

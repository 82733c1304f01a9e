"""The front door: each connection is TLS or plain, told apart by its first byte, as oVirt's.

oVirt's proxy (websockify) serves ``wss://`` and, unless ``SSL_ONLY``, ``ws://`` on one
port: it peeks at the first byte and starts TLS when it opens a TLS handshake. The
websockets server takes a TLS context per listening socket, not per connection, so each
connection is held back here (reading paused) until its first byte has arrived; TLS then
starts with the server context of that moment (``ServerTls.context()``, the newest
certificate), and only after that does the websocket connection begin.
"""

from __future__ import annotations

import asyncio
import http
import os
import socket
import ssl
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import InvalidStatus
from websockets.http11 import Request, Response

from console_proxy.settings import ServeSettings
from console_proxy.tls import ServerTls
from wsproxy_agent import logs

# A TLS record of type handshake (22), or an SSLv2-style hello (128): what websockify takes
# for TLS.
TLS_FIRST_BYTES = frozenset({0x16, 0x80})


class Front:
    """What every connection's door shares: the settings, the TLS contexts, the log."""

    def __init__(
        self, settings: ServeSettings, tls: ServerTls | None, log: Any, open_timeout: float
    ) -> None:
        self.settings = settings
        self.tls = tls
        self.log = log
        self.open_timeout = open_timeout
        self.opening: set[asyncio.Task[None]] = set()

    def connection_class(self, base: type[FrontDoorConnection]) -> type[FrontDoorConnection]:
        """What websockets makes for each connection (its ``create_connection``): ``base``
        with this door."""
        return type("Connection", (base,), {"front": self})

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.settings.ssl_only and connection.transport.get_extra_info("sslcontext") is None:
            logs.decision(
                self.log,
                "refuse",
                who=peer_of(connection.transport),
                why="plain_ws_with_ssl_only",
                detail="a ws:// (plain) request while SSL_ONLY=True",
            )
            return connection.respond(
                http.HTTPStatus.FORBIDDEN,
                "This proxy accepts only wss:// (SSL_ONLY=True in its config).\n",
            )
        return None

    def abort_opening(self) -> None:
        """Stop: connections still choosing TLS or plain go away at once."""
        for task in list(self.opening):
            task.cancel()


class FrontDoorConnection(ServerConnection):
    front: Front

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._opened = False
        self._lost = False
        # Known while connected only: a transport that is gone forgets its peer.
        self.who = peer_of(transport)
        # Bytes that TLS delivered before the websocket connection began, in order.
        self._early: list[bytes | None] = []
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()
        task = asyncio.get_running_loop().create_task(self._open(transport))
        self.front.opening.add(task)
        task.add_done_callback(self.front.opening.discard)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._opened:
            self._lost = True
            return
        refused = self.protocol.handshake_exc
        # InvalidStatus: a response process_request chose, and logged, itself.
        if refused is not None and not isinstance(refused, InvalidStatus):
            self.front.log.info("handshake_refused", who=self.who, why=_chain(refused))
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._opened:
            super().data_received(data)
        else:
            self._early.append(data)

    def eof_received(self) -> None:
        if self._opened:
            super().eof_received()
        else:
            self._early.append(None)

    async def _open(self, transport: asyncio.Transport) -> None:
        front = self.front
        who = self.who
        try:
            async with asyncio.timeout(front.open_timeout):
                first = await _first_byte(transport)
                if first is None:
                    transport.abort()
                    return
                if first in TLS_FIRST_BYTES:
                    if front.tls is None:
                        front.log.info(
                            "tls_refused", who=who, why="no SSL_CERTIFICATE is configured"
                        )
                        transport.abort()
                        return
                    secured = await asyncio.get_running_loop().start_tls(
                        transport, self, front.tls.context(), server_side=True
                    )
                    if secured is None:
                        return
                    transport = secured
        except TimeoutError:
            front.log.info("connection_dropped", who=who, why="nothing or no TLS handshake in time")
            transport.abort()
            return
        except asyncio.CancelledError:  # the server is stopping
            transport.abort()
            raise
        except (OSError, EOFError) as exc:  # ssl.SSLError is an OSError
            # start_tls has closed the connection; a port scanner or a client that does not
            # trust our certificate ends here.
            front.log.info("tls_handshake_failed", who=who, why=_why(exc))
            return
        if self._lost or transport.is_closing():
            return
        self._opened = True
        super().connection_made(transport)
        for early in self._early:
            if early is None:
                super().eof_received()
            else:
                super().data_received(early)
        self._early.clear()
        transport.resume_reading()


async def _first_byte(transport: asyncio.Transport) -> int | None:
    """The first byte the client sent, left unread; None when it closed without one."""
    sock = transport.get_extra_info("socket")
    # A duplicate descriptor: asyncio allows no reader on the transport's own.
    peek = socket.socket(fileno=os.dup(sock.fileno()))
    loop = asyncio.get_running_loop()
    try:
        peek.setblocking(False)
        while True:
            ready = loop.create_future()
            loop.add_reader(peek.fileno(), _set_done, ready)
            try:
                await ready
            finally:
                loop.remove_reader(peek.fileno())
            try:
                data = peek.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                continue
            except OSError:
                return None
            return data[0] if data else None
    finally:
        peek.close()


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def peer_of(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer)


def _chain(exc: BaseException) -> str:
    """The error and its causes in one line (websockets chains the parser's to its own)."""
    words = [str(exc)]
    while exc.__cause__ is not None:
        exc = exc.__cause__
        words.append(str(exc))
    return "; ".join(w for w in words if w)


def _why(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return str(exc) or type(exc).__name__

"""One console: check the ticket in the URL, connect to its target, carry bytes both ways.

Binary websocket messages go to the target's TCP stream as they are, and what the target
sends goes back as binary messages: from the event loop's callbacks while neither side
pushes back (console_proxy/connection.py), else through the console's two tasks. Each side
waits for the other to take what it was given (websockets' send waits while its buffer is
full, ``drain`` does for TCP, and the target's reading pauses while its bytes wait), so a
slow reader slows its sender down instead of filling memory.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from console_proxy.connection import ConsoleConnection
from console_proxy.front import peer_of
from console_proxy.target import TargetConnection
from console_proxy.trust import TicketKey
from protocol.ticket import ConsoleTarget, TicketError, verify_ticket
from wsproxy_agent import logs

# How long a console's target may take to accept the TCP connection (and TLS, for
# ssl_target) before the browser is told it is unreachable.
CONNECT_TIMEOUT_S = 10.0
# How long closing the target's side may take (a TLS target's close_notify) before dropping it.
TARGET_CLOSE_S = 5.0


@dataclass
class Traffic:
    to_target: int = 0
    to_client: int = 0
    error: str | None = None  # why the target's connection failed, if it did


class Bridge:
    def __init__(self, ticket_key: TicketKey, target_tls: ssl.SSLContext, log: Any) -> None:
        self.ticket_key = ticket_key
        self.target_tls = target_tls
        self.log = log
        self.open_consoles = 0

    async def handle(self, ws: ServerConnection) -> None:
        assert isinstance(ws, ConsoleConnection)  # serve_consoles makes each connection one
        who = peer_of(ws.transport)
        target = await self._check(ws, who)
        if target is None:
            return
        connection = await self._connect(ws, who, target)
        if connection is None:
            return
        where = f"{target.host}:{target.port}"
        self.log.info("console_opened", who=who, target=where, ssl_target=target.ssl_target)
        started = time.monotonic()
        traffic = Traffic()
        self.open_consoles += 1
        try:
            ended_by = await self._carry(ws, connection, traffic)
        finally:
            self.open_consoles -= 1
        self.log.info(
            "console_closed",
            who=who,
            target=where,
            ended_by=ended_by,
            bytes_to_target=traffic.to_target,
            bytes_to_client=traffic.to_client,
            seconds=round(time.monotonic() - started, 3),
            **({"error": traffic.error} if traffic.error else {}),
        )

    async def _check(self, ws: ConsoleConnection, who: str) -> ConsoleTarget | None:
        assert ws.request is not None
        # oVirt takes the whole path after its '/' as the ticket.
        ticket = ws.request.path[1:]
        try:
            target = verify_ticket(ticket, self.ticket_key.public_key(), now=datetime.now(UTC))
        except TicketError as exc:
            logs.decision(self.log, "refuse", who=who, why=exc.reason.value, detail=exc.sentence)
            await ws.close(CloseCode.POLICY_VIOLATION, f"ticket refused: {exc.reason.value}")
            return None
        if target.path is not None:
            # oVirt's proxy opens a second websocket for KubeVirt consoles ('path' and
            # 'token' in the ticket); this proxy carries only VNC over TCP.
            logs.decision(
                self.log,
                "refuse",
                who=who,
                why="path_target_unsupported",
                detail="the ticket asks for a websocket target (KubeVirt), which is not supported",
            )
            await ws.close(CloseCode.POLICY_VIOLATION, "ticket refused: path_target_unsupported")
            return None
        return target

    async def _connect(
        self, ws: ConsoleConnection, who: str, target: ConsoleTarget
    ) -> TargetConnection | None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                _, connection = await asyncio.get_running_loop().create_connection(
                    TargetConnection,
                    target.host,
                    target.port,
                    ssl=self.target_tls if target.ssl_target else None,
                )
                return connection
        except (OSError, TimeoutError) as exc:  # refused, unresolvable, TLS failed, too slow
            why = _unreachable_why(exc)
            self.log.warning(
                "console_target_unreachable",
                who=who,
                target=f"{target.host}:{target.port}",
                ssl_target=target.ssl_target,
                why=why,
            )
            await ws.close(CloseCode.BAD_GATEWAY, "console target unreachable")
            return None

    async def _carry(
        self,
        ws: ConsoleConnection,
        target: TargetConnection,
        traffic: Traffic,
    ) -> str:
        """Carry bytes until either side ends; then close both. Says what ended it."""
        ws.take_frame = functools.partial(_frame_to_target, target, traffic)
        target.deliver = functools.partial(_bytes_to_client, ws, traffic)
        to_target = asyncio.create_task(_client_to_target(ws, target, traffic))
        to_client = asyncio.create_task(_target_to_client(target, ws, traffic))
        try:
            done, _ = await asyncio.wait(
                {to_target, to_client}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            ws.take_frame = None
            target.deliver = None
            for task in (to_target, to_client):
                task.cancel()
            await asyncio.gather(to_target, to_client, return_exceptions=True)
            target.close()
            try:
                async with asyncio.timeout(TARGET_CLOSE_S):
                    await target.wait_closed()
            except (OSError, TimeoutError):
                pass  # the target is gone either way
        ended_by: str = (to_target if to_target in done else to_client).result()
        code, reason = _CLOSES[ended_by]
        await ws.close(code, reason)
        return ended_by


# How the browser's side is closed, by what ended the console (after the client's own
# close, websockets sends nothing more).
_CLOSES = {
    "client": (CloseCode.NORMAL_CLOSURE, ""),
    "client_sent_text": (
        CloseCode.UNSUPPORTED_DATA,
        "text messages are not supported; send binary",
    ),
    "target": (CloseCode.NORMAL_CLOSURE, "console target closed the connection"),
    "target_failed": (CloseCode.BAD_GATEWAY, "console target connection lost"),
}


def _unreachable_why(exc: OSError | TimeoutError) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT_S:g} s"
    if isinstance(exc, ssl.SSLError):
        return f"TLS with the target failed: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return f"the host name does not resolve: {exc.strerror}"
    return _os_why(exc)


def _os_why(exc: OSError) -> str:
    # asyncio words a refused connect as "Connect call failed (...)"; the errno says why.
    return os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__


def _frame_to_target(target: TargetConnection, traffic: Traffic, data: bytes) -> bool:
    """A binary message straight from the parser to the target, while the target takes it
    without waiting (else the console's task writes it, and waits)."""
    if not target.writable():
        return False
    target.write(data)
    traffic.to_target += len(data)
    return True


def _bytes_to_client(ws: ConsoleConnection, traffic: Traffic, data: bytes) -> bool:
    """The target's bytes straight to the browser as one message, while its side is open and
    takes them without waiting (else the console's task sends them, and waits)."""
    if not ws.send_now(data):
        return False
    traffic.to_client += len(data)
    return True


async def _client_to_target(
    ws: ConsoleConnection, target: TargetConnection, traffic: Traffic
) -> str:
    try:
        async for message in ws:
            if isinstance(message, str):
                return "client_sent_text"
            target.write(message)
            traffic.to_target += len(message)
            await target.drain()
    except ConnectionClosed:
        pass  # an abnormal close from the client ends the console like a normal one
    except OSError as exc:
        traffic.error = _os_why(exc)
        return "target_failed"
    return "client"


async def _target_to_client(
    target: TargetConnection, ws: ConsoleConnection, traffic: Traffic
) -> str:
    try:
        while data := await target.read():
            await ws.send(data)
            traffic.to_client += len(data)
    except ConnectionClosed:
        return "client"
    except OSError as exc:
        traffic.error = _os_why(exc)
        return "target_failed"
    return "target"

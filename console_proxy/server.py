"""``proxy serve``: listen as oVirt's websocket proxy does, serve consoles until SIGTERM.

SIGHUP (systemd's ExecReload) reads the certificate, key and CERT_FOR_DATA_VERIFICATION
again at once; they are also read again whenever a new connection finds them changed.
One process's server; console_proxy/workers.py forks several of them (--workers).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from console_proxy.bridge import Bridge
from console_proxy.connection import ConsoleConnection
from console_proxy.front import Front
from console_proxy.settings import ServeSettings
from console_proxy.tls import ServerTls, target_context
from console_proxy.trust import TicketKey
from wsproxy_agent import logs, memtrim, sdnotify
from wsproxy_agent.errors import AgentError

# Largest websocket message a client may send: noVNC's are key, pointer and clipboard
# events, far smaller. A larger one closes the console with 1009 (message too big).
MAX_MESSAGE_BYTES = 1024 * 1024
# Seconds a connection may take from TCP accept to a complete websocket handshake.
OPEN_TIMEOUT_S = 10.0
# What may wait to go to a browser before a console's sender waits. websockets' default,
# 32 KiB, is less than one message of a download: every message then waited for the socket
# to drain, and a download took 2.53 s of CPU per GB; with this, 2.19 s, and 12% more MB/s.
WRITE_LIMIT_BYTES = 512 * 1024
BINARY = Subprotocol("binary")
# The heap blocks a console allocates and frees in turn, kept for reuse rather than handed
# back on each free (wsproxy_agent/memtrim.py): a read from the target (up to 256 KiB), its
# frame and TLS records, the browser's side's buffer, a whole message from the browser.
LARGEST_BLOCK_BYTES = 2 * MAX_MESSAGE_BYTES
# Free heap top kept: a few consoles' worth, in a process that serves dozens.
KEPT_FREE_BYTES = 8 * 1024 * 1024


class ListenError(AgentError):
    """The proxy's address cannot be listened on."""


def listen_socket(settings: ServeSettings, reuse_port: bool = False) -> socket.socket:
    """oVirt's choice of address: PROXY_HOST resolved, IPv4 first unless SOURCE_IS_IPV6.

    ``reuse_port``: one of several sockets on that address, the kernel spreading new
    connections over them (SO_REUSEPORT), one per worker process.
    """
    family = socket.AF_INET6 if settings.source_is_ipv6 else socket.AF_INET
    host = settings.proxy_host
    where = f"{host}:{settings.proxy_port}"
    if host == "*":
        address = "::" if settings.source_is_ipv6 else "0.0.0.0"
    else:
        try:
            found = socket.getaddrinfo(
                host, settings.proxy_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        except socket.gaierror as exc:
            raise ListenError(f"PROXY_HOST {host!r} does not resolve: {exc.strerror}.") from None
        found.sort(key=lambda info: info[0] != family)
        family, address = found[0][0], str(found[0][4][0])
    try:
        # '*' with SOURCE_IS_IPV6 takes IPv4 too, as on oVirt's hosts (Linux's default).
        dualstack = address == "::" and socket.has_dualstack_ipv6()
        return socket.create_server(
            (address, settings.proxy_port),
            family=family,
            dualstack_ipv6=dualstack,
            reuse_port=reuse_port,
        )
    except OSError as exc:
        hint = (
            " Is ovirt-websocket-proxy (or another proxy serve) still running on it?"
            if exc.errno == errno.EADDRINUSE
            else ""
        )
        raise ListenError(f"Cannot listen on {where}: {exc.strerror}.{hint}") from None


def select_subprotocol(
    connection: ServerConnection, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    """'binary' when the client offers it (older noVNC does), else none, as websockify."""
    return BINARY if BINARY in offered else None


@dataclass(frozen=True)
class Consoles:
    """What start-up loads and checks before any socket; workers are forked with it."""

    settings: ServeSettings
    tls: ServerTls | None
    ticket_key: TicketKey

    @classmethod
    def load(cls, settings: ServeSettings, log: Any) -> Consoles:
        if settings.trace_enable:
            log.warning("trace_ignored", why="TRACE_ENABLE is set; proxy serve records no traffic")
        assert settings.cert_for_data_verification is not None
        tls = ServerTls(settings, log) if settings.tls_configured else None
        return cls(settings, tls, TicketKey(settings.cert_for_data_verification, log))

    def listening(self, sock: socket.socket) -> dict[str, Any]:
        """The fields of the line that says where consoles are served."""
        host, port = sock.getsockname()[:2]
        return {
            "address": host,
            "port": port,
            "tls": self.tls is not None,
            "ssl_only": self.settings.ssl_only,
            "ssl_min_version": self.settings.ssl_min_version,
        }


def keep_freed_blocks() -> None:
    """Before serving, for this process and the workers it forks (they inherit the setting)."""
    memtrim.keep_freed_for_reuse(LARGEST_BLOCK_BYTES, KEPT_FREE_BYTES)


def serving_status(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"serving consoles on {host}:{port}"


async def serve_consoles(
    consoles: Consoles,
    sock: socket.socket,
    log: Any,
    listening: Callable[[], None],
    stopping: Callable[[], None] | None = None,
) -> None:
    """Serve on ``sock`` until SIGTERM or SIGINT; ``listening`` once accepting, ``stopping``
    as the consoles are about to be closed."""
    bridge = Bridge(consoles.ticket_key, target_context(), log)
    front = Front(consoles.settings, consoles.tls, log, OPEN_TIMEOUT_S)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _reload, consoles.tls, consoles.ticket_key, log)
    async with serve(
        bridge.handle,
        sock=sock,
        create_connection=front.connection_class(ConsoleConnection),
        process_request=front.process_request,
        select_subprotocol=select_subprotocol,
        # Console pixels are mostly compressed already; deflate would cost CPU per byte.
        compression=None,
        max_size=MAX_MESSAGE_BYTES,
        write_limit=WRITE_LIMIT_BYTES,
        open_timeout=OPEN_TIMEOUT_S,
        server_header=None,
        logger=_websockets_logger(log),
    ):
        listening()
        await stop.wait()
        log.info("console_proxy_stopping", open_consoles=bridge.open_consoles)
        if stopping is not None:
            stopping()
        front.abort_opening()
    log.info("console_proxy_stopped")


def _reload(tls: ServerTls | None, ticket_key: TicketKey, log: Any) -> None:
    log.info("reload_requested", why="SIGHUP")
    if tls is not None:
        tls.reload()
    ticket_key.reload()


class _ToStructlog(logging.Handler):
    """websockets and asyncio log through the standard library; their warnings and errors
    become our structured lines (a traceback there is a bug of ours, never bad input)."""

    def __init__(self, log: Any) -> None:
        super().__init__(logging.WARNING)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        method = self.log.error if record.levelno >= logging.ERROR else self.log.warning
        method(record.getMessage(), logger=record.name, exc_info=record.exc_info or False)


def _websockets_logger(log: Any) -> logging.Logger:
    handler = _ToStructlog(log)
    for name in ("websockets", "asyncio"):
        library = logging.getLogger(name)
        library.propagate = False
        library.addHandler(handler)
        library.setLevel(logging.WARNING)
    return logging.getLogger("websockets.server")


def run(settings: ServeSettings) -> int:
    """One process, the one systemd started (--workers 1)."""
    log = logs.get("console_proxy")
    consoles = Consoles.load(settings, log)
    sock = listen_socket(settings)
    systemd = sdnotify.Notifier.from_environ()

    def listening() -> None:
        log.info("console_proxy_listening", **consoles.listening(sock))
        systemd.ready(serving_status(sock))

    asyncio.run(serve_consoles(consoles, sock, log, listening, systemd.stopping))
    return 0

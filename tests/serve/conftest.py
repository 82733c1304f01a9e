"""``proxy serve`` in real processes: a host root with real certificates from an engine CA,
a TCP echo server as the console's target, and websocket clients from the websockets library.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.asyncio.client import ClientConnection, connect

from engine_agent import pki
from protocol.ticket import issue_ticket
from proxy_agent import setup_conf
from tests.e2e.conftest import log_events, wait_for
from wsproxy_agent.demo import free_port
from wsproxy_agent.files import NewFile, write_all_atomic
from wsproxy_agent.paths import HostPaths

T = TypeVar("T")

PROXY_FQDN = "proxy.serve.test"
ENGINE_FQDN = "engine.serve.test"


@dataclass(frozen=True)
class Issued:
    cert_pem: bytes
    key_pem: bytes
    serial: int


@dataclass
class Pki:
    """An engine CA as 'engine init --create-ca' makes it, in its own root."""

    paths: HostPaths

    @property
    def ca_pem(self) -> bytes:
        return self.paths.ca_cert.read_bytes()

    @property
    def engine_cert_pem(self) -> bytes:
        return self.paths.engine_cert.read_bytes()

    @property
    def engine_key(self) -> rsa.RSAPrivateKey:
        key = serialization.load_pem_private_key(self.paths.engine_key.read_bytes(), None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key

    def issue(self, fqdn: str = PROXY_FQDN) -> Issued:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = pki.issue_certificate(
            pki.load_ca(self.paths),
            key.public_key(),
            fqdn,
            now=datetime.now(UTC),
            lifetime_days=30,
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return Issued(cert.public_bytes(serialization.Encoding.PEM), key_pem, cert.serial_number)

    def ticket(
        self,
        host: str,
        port: int,
        *,
        ttl: int = 120,
        ssl_target: bool = False,
        now: datetime | None = None,
        key: rsa.RSAPrivateKey | None = None,
    ) -> str:
        return issue_ticket(
            key or self.engine_key,
            self.engine_cert_pem.decode(),
            host,
            port,
            now=now or datetime.now(UTC),
            ttl_seconds=ttl,
            ssl_target=ssl_target,
            salt=os.urandom(8),
        )


@pytest.fixture(scope="session")
def engine_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    paths = HostPaths.under(tmp_path_factory.mktemp("engine"))
    pki.create_ca(paths, ca_subject="/C=US/O=Serve", engine_fqdn=ENGINE_FQDN, now=datetime.now(UTC))
    return Pki(paths)


@dataclass
class ServeHost:
    """A proxy host root, configured as 'proxy join' leaves it, and its 'proxy serve'."""

    root: Path
    pki: Pki
    port: int
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)
    issued: Issued | None = None
    # One process, whose log lines say each thing once; None: proxy serve's default.
    workers: int | None = 1

    def __post_init__(self) -> None:
        self.log_path = self.root / "serve.log"

    @property
    def paths(self) -> HostPaths:
        return HostPaths.under(self.root)

    def install(self, issued: Issued | None = None, **extra: str) -> None:
        """The files a join installs; ``extra`` keys go to 10-setup.conf where it has room for
        them, else to 20-local.conf. On loopback only, unless PROXY_HOST says otherwise."""
        extra.setdefault("PROXY_HOST", "127.0.0.1")
        self.issued = issued or self.pki.issue()
        self.replace_pair(self.issued.cert_pem, self.issued.key_pem)
        self.write(self.paths.proxy_engine_cert, self.pki.engine_cert_pem)
        setup = {k: v for k, v in extra.items() if k in setup_conf.EXTRA_KEYS}
        self.write(self.paths.setup_conf, setup_conf.render(self.port, self.paths, setup).encode())
        # What 10-setup.conf does not hold, a site sets in a later file.
        local = "".join(f"{k}={v}\n" for k, v in extra.items() if k not in setup)
        if local:
            self.write(self.paths.proxy_conf_dir / "20-local.conf", local.encode())

    def replace_pair(self, cert_pem: bytes, key_pem: bytes) -> None:
        """As the agent installs a renewal: new files renamed over the old ones."""
        for directory in (self.paths.proxy_cert.parent, self.paths.proxy_tls_key.parent):
            directory.mkdir(parents=True, exist_ok=True)
        write_all_atomic(
            [
                NewFile(self.paths.proxy_tls_key, key_pem, 0o600, owner=None),
                NewFile(self.paths.proxy_cert, cert_pem, 0o600, owner=None),
            ]
        )

    def write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "wsproxy_agent", "--root", str(self.root), *args]

    def start(self, env: dict[str, str] | None = None, wait: bool = True) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command(
                "--log-format",
                "json",
                "proxy",
                "serve",
                *([] if self.workers is None else ["--workers", str(self.workers)]),
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        log.close()
        if wait:
            wait_for(self.listening, "proxy serve to listen", timeout=30)

    def listening(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"proxy serve exited {self.proc.returncode}:\n{self.log()}")
        return bool(self.events("console_proxy_listening"))

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def events(self, name: str) -> list[dict[str, Any]]:
        return log_events(self.log(), name)

    def refusals(self) -> list[dict[str, Any]]:
        return [e for e in self.events("security_decision") if e.get("decision") == "refuse"]

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def url(self, ticket: str, scheme: str = "wss") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/{ticket}"


@pytest.fixture
def serve_host(tmp_path: Path, engine_pki: Pki) -> Iterator[ServeHost]:
    host = ServeHost(tmp_path / "proxy", engine_pki, free_port())
    host.root.mkdir()
    yield host
    if host.proc is not None and host.proc.poll() is None:
        host.proc.kill()
        host.proc.wait(timeout=10)


def client_tls(pki: Pki, **versions: ssl.TLSVersion) -> ssl.SSLContext:
    """A browser's view: trusts only the engine CA and checks the proxy's name."""
    context = ssl.create_default_context(cadata=pki.ca_pem.decode())
    for name, value in versions.items():
        setattr(context, name, value)
    return context


def connect_to(host: ServeHost, ticket: str, *, plain: bool = False, **kwargs: Any) -> connect:
    """A websocket client for ``ticket``: wss trusting the engine CA, or ws when ``plain``."""
    if not plain:
        kwargs.setdefault("ssl", client_tls(host.pki))
        kwargs.setdefault("server_hostname", PROXY_FQDN)
    kwargs.setdefault("open_timeout", 20)
    kwargs.setdefault("max_size", None)
    return connect(host.url(ticket, "ws" if plain else "wss"), **kwargs)


async def binary(ws: ClientConnection, timeout: float = 30) -> bytes:
    """The next message, which a console carries in binary frames: a text one fails the test."""
    data = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(data, bytes), f"a text message where a console sends binary: {data[:80]!r}"
    return data


def peer_serial(ws: ClientConnection) -> int:
    der = ws.transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


class _TargetServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    # Fifty consoles connect at once; with socketserver's backlog of 5, some were reset.
    request_queue_size = 128


class Echo:
    """The console's target: a TCP server that sends back what it gets; TLS when asked."""

    def __init__(
        self, tls: ssl.SSLContext | None = None, banner: bytes = b"", hang_up: bool = False
    ) -> None:
        """``banner`` is sent first, as a VNC server does; ``hang_up`` closes after it."""
        self.connections = 0
        self.closed_by_client = threading.Event()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer.connections += 1
                sock: socket.socket = self.request
                if tls is not None:
                    sock = tls.wrap_socket(sock, server_side=True)
                if banner:
                    sock.sendall(banner)
                if hang_up:
                    sock.close()
                    return
                while data := sock.recv(65536):
                    sock.sendall(data)
                outer.closed_by_client.set()

        self.server = _TargetServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def echo() -> Iterator[Echo]:
    server = Echo()
    yield server
    server.close()


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)

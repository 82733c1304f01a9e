"""The console path end to end: enrolled agents, ``proxy serve``, QEMU, noVNC in Chromium.

One of each per module, shared by its tests (QEMU and Chromium take seconds to start):
an engine and a proxy host enrolled through a token join, ``proxy serve`` running on the
files that join delivered, a disk-less QEMU whose firmware screen is the VNC desktop, noVNC
served over HTTP, and a headless Chromium that trusts only the engine's CA.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.console.browser import CERTUTIL, CHROMIUM, Page, chromium_page
from tests.console.novnc import NOVNC, ConsolePage, novnc_server
from tests.console.qemu import QEMU, Guest, firmware_guest
from tests.e2e.conftest import (
    PROXY_FQDN,
    Hosts,
    host_pair,
    joined,
    log_events,
    short_tempdir,
    wait_for,
)
from tests.support.privileged import skip_or_fail
from wsproxy_agent.demo import free_port

# Debian package of each program the test runs.
NEEDED = {
    QEMU: "qemu-system-x86",
    CHROMIUM: "chromium",
    CERTUTIL: "libnss3-tools",
}
ARTIFACTS = Path(__file__).with_name("artifacts")


@dataclass
class ServedProxy:
    """``proxy serve`` on the proxy host's root, and where its JSON log goes."""

    hosts: Hosts
    port: int
    log_path: Path

    def url(self, ticket: str) -> str:
        return f"wss://{PROXY_FQDN}:{self.port}/{ticket}"

    def refusals(self) -> list[str]:
        """The reasons of the tickets it refused so far, from its log."""
        log = self.log_path.read_text() if self.log_path.exists() else ""
        return [
            str(event["why"])
            for event in log_events(log, "security_decision")
            if event.get("decision") == "refuse"
        ]


@pytest.fixture(scope="module")
def console_tools() -> None:
    missing = [f"{name} (Debian: {pkg})" for name, pkg in NEEDED.items() if not shutil.which(name)]
    if not (NOVNC / "core" / "rfb.js").exists():
        missing.append(f"{NOVNC} (Debian: novnc)")
    if missing:
        skip_or_fail(f"the console end-to-end test needs {', '.join(missing)}")


@pytest.fixture(scope="module")
def enrolled(console_tools: None) -> Iterator[Hosts]:
    """An engine host and a proxy host after a token join, the engine daemon running."""
    with host_pair(short_tempdir()) as h:
        h.engine_init()
        h.start_engine()
        yield joined(h)


@pytest.fixture(scope="module")
def served(enrolled: Hosts) -> Iterator[ServedProxy]:
    """``proxy serve`` with the certificate, key and engine certificate the join delivered.

    It reads 10-setup.conf as the join wrote it; a later conf.d file moves it to a free port
    on loopback, as an administrator's local file would.
    """
    h = enrolled
    port = free_port()
    local = h.proxy / "etc/ovirt-engine/ovirt-websocket-proxy.conf.d/20-test.conf"
    local.write_text(f"PROXY_HOST=127.0.0.1\nPROXY_PORT={port}\n")
    log_path = h.top / "serve.log"
    with log_path.open("ab") as log:
        serve = subprocess.Popen(
            h.command(h.proxy, "--log-format", "json", "proxy", "serve"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def listening() -> bool:
            if serve.poll() is not None:
                raise AssertionError(f"proxy serve exited: {log_path.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
            except OSError:
                return False
            return True

        wait_for(listening, "proxy serve to listen", timeout=60)
        yield ServedProxy(h, port, log_path)
    finally:
        serve.terminate()
        try:
            serve.wait(timeout=15)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()


@pytest.fixture(scope="module")
def console_workdir(console_tools: None) -> Iterator[Path]:
    path = short_tempdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def guest(console_workdir: Path) -> Iterator[Guest]:
    with firmware_guest(console_workdir) as g:
        yield g


@pytest.fixture(scope="module")
def console_site(console_tools: None) -> Iterator[ConsolePage]:
    with novnc_server() as site:
        yield site


@pytest.fixture(scope="module")
def page(console_workdir: Path, enrolled: Hosts) -> Iterator[Page]:
    """Chromium trusting the engine's CA, resolving the proxy's FQDN to loopback."""
    ca = enrolled.engine / "etc/pki/ovirt-engine/ca.pem"
    with chromium_page(console_workdir, ca, f"MAP {PROXY_FQDN} 127.0.0.1") as p:
        yield p


@pytest.fixture(scope="module")
def artifacts() -> Path:
    """Where screenshots go to outlive the test: $WSPROXY_ARTIFACTS, else tests/console/artifacts."""
    path = Path(os.environ.get("WSPROXY_ARTIFACTS") or ARTIFACTS)
    path.mkdir(parents=True, exist_ok=True)
    return path

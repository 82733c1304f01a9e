"""``proxy serve`` on what a real token join delivered, chosen with ``proxy join --service``."""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime

import click
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from protocol.ticket import issue_ticket
from proxy_agent.cli import proxy_join
from tests.e2e.conftest import (
    PROXY_FQDN,
    STANDINS,
    Hosts,
    Standin,
    host_pair,
    short_tempdir,
    wait_for,
)
from tests.serve.conftest import Echo, run
from wsproxy_agent import config
from wsproxy_agent.demo import free_port
from wsproxy_agent.paths import HostPaths


@pytest.fixture
def running() -> Iterator[Hosts]:
    with host_pair(short_tempdir()) as hosts:
        hosts.engine_init()
        hosts.start_engine()
        yield hosts


def test_service_choices_are_the_known_services() -> None:
    (option,) = [p for p in proxy_join.params if p.name == "service"]
    assert isinstance(option.type, click.Choice)
    assert sorted(option.type.choices) == sorted(config.PROXY_SERVICES)


def test_join_for_proxy_serve_then_serve_a_console_with_the_delivered_files(
    running: Hosts,
) -> None:
    h = running
    # 'systemctl' on the PATH of the join is a stand-in that records what it was asked.
    bin_dir = h.top / "path"
    bin_dir.mkdir()
    shutil.copy(STANDINS / "recorder", bin_dir / "systemctl")
    systemctl = Standin(bin_dir / "systemctl")
    port = free_port()
    join = subprocess.run(
        h.command(
            h.proxy,
            "proxy",
            "join",
            h.token("--port", str(port)),
            "--fqdn",
            PROXY_FQDN,
            "--service",
            "wsproxy-agent-serve",
            "--timeout",
            "30",
        ),
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )
    assert join.returncode == 0, join.stdout + join.stderr

    written = tomllib.loads((h.proxy / "etc/wsproxy-agent/proxy.toml").read_text())
    assert written["service_restart_command"] == [
        "systemctl",
        "reload-or-restart",
        "wsproxy-agent-serve.service",
    ]
    assert written["service_check_command"][-1] == "wsproxy-agent-serve.service"
    assert [args for _, args in systemctl.calls] == [
        ["reload-or-restart", "wsproxy-agent-serve.service"]
    ]

    # The files the join installed, as they are, with only the address narrowed to loopback.
    proxy_paths = HostPaths.under(h.proxy)
    (proxy_paths.proxy_conf_dir / "20-local.conf").write_text("PROXY_HOST=127.0.0.1\n")
    log = (h.top / "serve.log").open("ab")
    serve = subprocess.Popen(
        h.command(h.proxy, "--log-format", "json", "proxy", "serve"), stdout=log, stderr=log
    )
    h.daemons.append(serve)  # stopped with the engine when the test ends
    wait_for(lambda: b"console_proxy_listening" in (h.top / "serve.log").read_bytes(), "serve")

    engine_paths = HostPaths.under(h.engine)
    engine_key = serialization.load_pem_private_key(engine_paths.engine_key.read_bytes(), None)
    assert isinstance(engine_key, rsa.RSAPrivateKey)
    echo = Echo()
    try:
        ticket = issue_ticket(
            engine_key,
            engine_paths.engine_cert.read_text(),
            "127.0.0.1",
            echo.port,
            now=datetime.now(UTC),
            salt=os.urandom(8),
        )
        browser = ssl.create_default_context(cadata=engine_paths.ca_cert.read_text())

        async def console() -> bytes:
            from websockets.asyncio.client import connect

            url = f"wss://127.0.0.1:{port}/{ticket}"
            async with connect(url, ssl=browser, server_hostname=PROXY_FQDN) as ws:
                await ws.send(b"through the joined proxy")
                answer = await ws.recv()
                assert isinstance(answer, bytes), "console bytes come back as a binary frame"
                return answer

        assert run(console()) == b"through the joined proxy"
    finally:
        echo.close()
    serve.send_signal(signal.SIGTERM)
    assert serve.wait(timeout=30) == 0

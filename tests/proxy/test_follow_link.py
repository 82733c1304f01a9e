"""The proxy daemon follows its link to the engine: every return counts, however quick.

A real engine-side socket (CurveZMQ on) and the daemon's real EngineLink; the engine side
goes away and comes back while nobody looks, as when the engine restarts within one of
the daemon's polls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from protocol import identity
from protocol.joinstring import b64
from proxy_agent import state
from proxy_agent.daemon import ProxyDaemon
from proxy_agent.link import EngineLink
from proxy_agent.settings import ProxySettings
from wsproxy_agent import config, transport
from wsproxy_agent.demo import free_port
from wsproxy_agent.keyfiles import load_or_create_identity
from wsproxy_agent.paths import HostPaths


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Engine:
    """The engine's ROUTER on loopback, which can go away and come back on the same port."""

    def __init__(self) -> None:
        self.ctx: transport.Context = zmq.Context()
        self.public, self.secret = zmq.curve_keypair()
        self.address = f"127.0.0.1:{free_port()}"
        self.sock: Any = None
        self.start()

    def start(self) -> None:
        def bound() -> bool:
            try:
                self.sock = transport.server(self.ctx, f"tcp://{self.address}", self.secret)
            except zmq.ZMQError:  # the old listener is still being released
                return False
            return True

        wait_for(bound, "the engine's port to be free again")

    def stop(self) -> None:
        self.sock.close()

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()


@pytest.fixture
def engine() -> Iterator[Engine]:
    e = Engine()
    yield e
    e.close()


def daemon_for(root: Path, engine: Engine) -> ProxyDaemon:
    paths = HostPaths.under(root)
    paths.state_dir.mkdir(parents=True)
    load_or_create_identity(paths.identity_key)
    values = {
        **config.PROXY_DEFAULTS,
        "fqdn": "proxy.example.com",
        "engine": engine.address,
        "engine_curve_key": b64(transport.curve_to_raw(engine.public)),
        "engine_identity_key": b64(identity.public_raw(identity.generate())),
    }
    return ProxyDaemon(ProxySettings(paths=paths, **values))


def look_away_until(link: EngineLink, handshakes: int) -> None:
    """Let the link take its events, without the daemon looking, up to that many handshakes."""
    wait_for(lambda: link.receive(0.05) is None and link.handshakes >= handshakes, "a handshake")


def test_a_loss_and_return_between_two_looks_is_followed_as_a_return(
    tmp_path: Path, engine: Engine
) -> None:
    daemon = daemon_for(tmp_path, engine)
    link = daemon._open_link()
    try:
        look_away_until(link, 1)
        assert daemon._follow_link(link)  # up for the first time

        engine.stop()
        wait_for(lambda: link.receive(0.05) is None and not link.connected, "the loss")
        engine.start()
        look_away_until(link, 2)
        assert link.connected

        # The return is seen although the link looks as it did at the last look: the daemon
        # then sends its first beat after a reconnect, and records the outage.
        assert daemon._follow_link(link)
        outage = state.load(daemon.paths.proxy_state)["last_outage"]
        assert outage["from"] == int(link.lost_at or 0) and outage["seconds"] >= 0
        assert not daemon._follow_link(link)  # once per return
    finally:
        link.close()

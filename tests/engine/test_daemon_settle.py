"""The loop's settling wait: proxies' messages gather for COALESCE_S, an operator's request
cuts it short.

Under a fleet's heartbeats the engine is nearly always settling, so without the cut every
``status`` on the engine host waited out the rest of the wait.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
import zmq

from engine_agent.daemon import EngineDaemon
from wsproxy_agent.control import ControlServer

LONG_S = 10.0  # a settling far longer than any test machine takes to wake


@pytest.fixture
def control(daemon: EngineDaemon) -> Iterator[tuple[ControlServer, zmq.Poller]]:
    server = ControlServer(daemon.paths.engine_control)
    control_only = zmq.Poller()
    control_only.register(server, zmq.POLLIN)
    try:
        yield server, control_only
    finally:
        server.close()


def test_settling_waits_when_no_operator_asks(
    daemon: EngineDaemon, control: tuple[ControlServer, zmq.Poller]
) -> None:
    _, control_only = control
    started = time.monotonic()
    daemon._settle(control_only, started + 0.3)
    assert time.monotonic() - started >= 0.25


def test_an_operators_request_cuts_the_settling_short(
    daemon: EngineDaemon, control: tuple[ControlServer, zmq.Poller]
) -> None:
    server, control_only = control
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(str(daemon.paths.engine_control))
        client.sendall(json.dumps({"op": "ping"}).encode())
        client.shutdown(socket.SHUT_WR)
        started = time.monotonic()
        daemon._settle(control_only, started + LONG_S)
        assert time.monotonic() - started < LONG_S / 2
        request = server.take()
        assert request is not None and request.body == {"op": "ping"}


def test_a_stopping_daemon_does_not_settle(
    daemon: EngineDaemon, control: tuple[ControlServer, zmq.Poller]
) -> None:
    _, control_only = control
    daemon.stop()
    started = time.monotonic()
    daemon._settle(control_only, started + LONG_S)
    assert time.monotonic() - started < LONG_S / 2

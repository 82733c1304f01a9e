"""One turn of the engine's loop, and how long the loop waits before it looks again.

Woken by proxies' messages alone, the loop waits COALESCE_S so that a fleet's heartbeats,
arriving a few milliseconds apart, are taken together. An operator must not pay that wait:
``status --live`` asks round after round, and the next request arrives as soon as the last
answer has gone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from engine_agent.daemon import COALESCE_S, EngineDaemon, LiveQuery
from wsproxy_agent.control import ControlServer


@pytest.fixture
def loop(daemon: EngineDaemon) -> Iterator[tuple[zmq.Poller, ControlServer]]:
    control = ControlServer(daemon.paths.engine_control)
    poller = zmq.Poller()
    poller.register(daemon.sock, zmq.POLLIN)
    try:
        yield poller, control
    finally:
        control.close()


def proxies_woke_it(daemon: EngineDaemon) -> list[tuple[Any, int]]:
    """What the poller returns when proxies' messages woke the loop (here none waits)."""
    return [(daemon.sock, zmq.POLLIN)]


def test_a_turn_for_proxies_messages_alone_settles(
    daemon: EngineDaemon, loop: tuple[zmq.Poller, ControlServer]
) -> None:
    poller, control = loop
    ctx: zmq.Context[Any] = zmq.Context.instance()
    assert daemon._turn(proxies_woke_it(daemon), poller, control, ctx) == COALESCE_S


def test_no_settling_while_a_live_query_waits_for_answers(
    daemon: EngineDaemon, loop: tuple[zmq.Poller, ControlServer]
) -> None:
    poller, control = loop
    daemon.live = LiveQuery(time.monotonic() + 60)
    daemon.live.expect("p0.example", b"q" * 16, time.monotonic())
    ctx: zmq.Context[Any] = zmq.Context.instance()
    assert daemon._turn(proxies_woke_it(daemon), poller, control, ctx) == 0.0
    assert daemon.live is not None


def test_no_settling_in_the_turn_that_answers_the_operator(
    daemon: EngineDaemon, loop: tuple[zmq.Poller, ControlServer]
) -> None:
    """The bench's back-to-back live rounds lost 50 ms each here: the round ended in a turn
    woken by the last reply, the loop then settled, and the operator's next request waited."""
    poller, control = loop
    daemon.live = LiveQuery(time.monotonic() - 1)  # time is up: this turn answers
    daemon.live.expect("p0.example", b"q" * 16, time.monotonic() - 2)
    ctx: zmq.Context[Any] = zmq.Context.instance()
    assert daemon._turn(proxies_woke_it(daemon), poller, control, ctx) == 0.0
    assert daemon.live is None

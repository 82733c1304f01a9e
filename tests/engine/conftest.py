"""An engine daemon built in the test's process, its loop not running: a test hands its
methods what the sockets would."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from engine_agent.daemon import EngineDaemon
from engine_agent.settings import EngineSettings
from tests.e2e.conftest import host_pair, short_tempdir


@pytest.fixture
def daemon() -> Iterator[EngineDaemon]:
    with host_pair(short_tempdir()) as h:
        h.engine_init()
        engine = EngineDaemon(EngineSettings.load(h.engine))
        ctx: zmq.Context[Any] = zmq.Context()
        engine.sock = ctx.socket(zmq.ROUTER)  # replies to unknown routes fail, as they may
        engine.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        try:
            yield engine
        finally:
            engine.sock.close(linger=0)
            ctx.term()
            engine.registry.close()
            engine.seen_store.close()

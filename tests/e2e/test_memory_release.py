"""After a burst of heartbeats the real engine daemon gives the memory it left in glibc's
arenas back to the system once it is quiet again (wsproxy_agent/memtrim.py)."""

from __future__ import annotations

import time

from protocol import catalogue as cat
from protocol.envelope import seal
from proxy_agent import health
from proxy_agent.settings import ProxySettings
from tests.e2e.conftest import Hosts, joined, log_events, wait_for
from tests.e2e.rawclient import RawProxy
from wsproxy_agent import memtrim
from wsproxy_agent.keyfiles import load_identity

BURST = memtrim.AFTER_MESSAGES


def test_the_engine_gives_back_what_a_burst_of_heartbeats_left(running: Hosts) -> None:
    h = joined(running)
    settings = ProxySettings.load(h.proxy)
    raw = RawProxy(h.engine, h.port, load_identity(settings.paths.identity_key))
    try:
        body = health.snapshot(settings)
        now_ms = time.time_ns() // 1_000_000
        sealed = [
            seal(raw.key, cat.HEARTBEAT, body, recipient=raw.engine_fp, now_ms=now_ms)
            for _ in range(BURST)
        ]
        for heartbeat in sealed:  # sealed ahead, sent at once: libzmq queues them all
            raw.send_frames(list(heartbeat.frames))
        wait_for(
            lambda: log_events(h.engine_log(), "memory_released"),
            "the engine to give memory back",
            timeout=60,
        )
    finally:
        raw.close()
    (released,) = log_events(h.engine_log(), "memory_released")
    # How much depends on where glibc put what (tests/test_memtrim.py proves the amount).
    assert isinstance(released["released_bytes"], int) and released["released_bytes"] > 0
    assert isinstance(released["resident_bytes"], int) and released["resident_bytes"] > 0

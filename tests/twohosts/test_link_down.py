"""The network between the hosts goes away for a minute and comes back."""

from __future__ import annotations

import time

from tests.e2e.conftest import Hosts, log_events, log_number, wait_for
from tests.twohosts.netns import Link
from wsproxy_agent.transport import HEARTBEAT_MS, RECONNECT_MAX_MS

OUTAGE_S = 60


def _engine_status(h: Hosts) -> str:
    return h.cli(h.engine, "status").stdout


def test_link_down_for_a_minute_then_back(two_running: tuple[Hosts, Link]) -> None:
    h, link = two_running
    h.configure(h.engine, heartbeat_interval=2, stale_after_missed=3)
    h.configure(h.proxy, heartbeat_interval=2)
    joined = h.join(h.token())
    assert joined.returncode == 0, joined.stdout + joined.stderr
    h.start_proxy()
    wait_for(lambda: log_events(h.proxy_log(), "engine_link_up"), "the proxy's link")
    wait_for(lambda: "STALE" not in _engine_status(h), "a first heartbeat")
    [before] = h.registry()
    audit_before = len(h.audit())
    restarts_before = len(h.systemctl_proxy.calls)
    switches_before = len(h.engine_config.calls)

    link.down()
    cut = time.monotonic()
    # The engine notices missed heartbeats; the proxy notices the dead link (ZMTP heartbeats).
    wait_for(lambda: "STALE" in _engine_status(h), "the engine to mark the proxy stale", 30)
    wait_for(lambda: log_events(h.proxy_log(), "engine_link_lost"), "the proxy to see the loss", 40)
    during = h.cli(h.proxy, "status")
    assert "DOWN since" in during.stdout and during.returncode == 1
    assert "unreachable since" in during.stdout + during.stderr
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - cut)))

    link.up()
    healed = time.monotonic()
    wait_for(
        lambda: log_events(h.proxy_log(), "engine_link_restored"),
        "the proxy to reconnect",
        RECONNECT_MAX_MS[1] / 1000 * 1.5 + 15,
    )
    reconnect_s = time.monotonic() - healed
    [restored] = log_events(h.proxy_log(), "engine_link_restored")
    # The proxy counts the gap from when ZMTP heartbeats declared the link dead.
    detect_s = HEARTBEAT_MS * 3 / 1000
    assert OUTAGE_S - detect_s - 5 <= log_number(restored["gap_s"]) <= OUTAGE_S + 20
    # Back within one capped backoff step (plus libzmq's jitter and the poll), not minutes.
    assert reconnect_s <= RECONNECT_MAX_MS[1] / 1000 * 1.1 + 5, reconnect_s
    wait_for(lambda: "STALE" not in _engine_status(h), "the engine to hear it again", 20)

    # The retries backed off: growing delays up to a cap.
    delays = [
        log_number(e["in_ms"]) for e in log_events(h.proxy_log(), "engine_reconnect_scheduled")
    ]
    assert len(delays) >= 3, delays
    assert max(delays) > 2 * min(delays), delays
    assert max(delays) <= RECONNECT_MAX_MS[1], delays

    after = h.cli(h.proxy, "status")
    assert after.returncode == 0, after.stdout + after.stderr
    assert "last outage" in after.stdout and "DOWN since" not in after.stdout
    # No duplicate work: the same certificate, no new enrollment, install, restart or switch.
    [now] = h.registry()
    assert now["serial"] == before["serial"] and now["state"] == before["state"]
    assert len(h.audit()) == audit_before
    assert len(h.systemctl_proxy.calls) - restarts_before <= 0 or all(
        "is-active" in c for _, c in h.systemctl_proxy.calls[restarts_before:]
    )
    assert len(h.engine_config.calls) == switches_before

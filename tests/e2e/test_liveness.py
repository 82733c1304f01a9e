"""Heartbeats, staleness and status --live (pushed status queries)."""

from __future__ import annotations

import json
import re
import signal

from protocol import identity
from tests.e2e.conftest import PROXY_FQDN, Hosts, joined, wait_for
from tests.support.fleet import enter_as_enrolled

SILENT_FQDN = "silent.e2e.test"


def test_status_live_shows_who_answers(running: Hosts) -> None:
    h = joined(running)
    proxy = h.start_proxy()
    wait_for(lambda: h.registry()[0]["health"] is not None, "a heartbeat with health")
    live = h.cli(h.engine, "status", "--live", "--json")
    assert live.returncode == 0, live.stdout + live.stderr
    report = json.loads(live.stdout)
    answer = report["live"][PROXY_FQDN]
    assert answer["service_active"] is True and answer["cert_days_left"] > 390
    assert answer["fqdn"] == PROXY_FQDN

    proxy.send_signal(signal.SIGSTOP)  # alive on the network, but not answering
    try:
        silent = h.cli(h.engine, "status", "--live", "--timeout", "1")
        assert silent.returncode == 1
        assert (
            f"{PROXY_FQDN}  NO ANSWER" in silent.stdout and "No answer within 1 s" in silent.stdout
        )
    finally:
        proxy.send_signal(signal.SIGCONT)


def enroll_silent_proxy(h: Hosts) -> None:
    """A second enrolled proxy that never connects: asking everyone waits for it in vain."""
    enter_as_enrolled(h.engine, [(SILENT_FQDN, identity.generate())], "test")


def test_status_live_asks_one_proxy_and_times_its_answer(running: Hosts) -> None:
    h = joined(running)
    h.start_proxy()
    wait_for(lambda: h.registry()[0]["health"] is not None, "a heartbeat with health")
    enroll_silent_proxy(h)
    everyone = json.loads(h.cli(h.engine, "status", "--live", "--timeout", "1", "--json").stdout)
    assert everyone["live"][SILENT_FQDN] is None and everyone["live"][PROXY_FQDN] is not None

    one = h.cli(h.engine, "status", "--proxy", PROXY_FQDN, "--json")
    assert one.returncode == 0, one.stdout + one.stderr
    [(fqdn, answer)] = json.loads(one.stdout)["live"].items()
    assert fqdn == PROXY_FQDN and answer["fqdn"] == PROXY_FQDN
    # From the engine's push to the verified reply: real, and well under the 3 s wait.
    assert 0 < answer["rtt_ms"] < 3000
    text = h.cli(h.engine, "status", "--proxy", PROXY_FQDN).stdout
    assert re.search(rf"{re.escape(PROXY_FQDN)}  answered in \d+ ms: service active", text), text

    unknown = h.cli(h.engine, "status", "--proxy", "nobody.e2e.test", "--json")
    report = json.loads(unknown.stdout)
    assert unknown.returncode == 1 and report["live"] is None
    [fix] = [
        p["fix"]
        for p in report["problems"]
        if "nobody.e2e.test is not an enrolled proxy" in p["problem"]
    ]
    assert fix == "wsproxy-agent keys list"


def test_a_proxy_that_stops_heartbeating_is_marked_stale(running: Hosts) -> None:
    h = joined(running)
    toml = h.engine / "etc/wsproxy-agent/engine.toml"
    text = toml.read_text().replace("heartbeat_interval = 30", "heartbeat_interval = 1")
    toml.write_text(text.replace("stale_after_missed = 3", "stale_after_missed = 2"))
    wait_for(
        lambda: "STALE" in h.cli(h.engine, "status").stdout, "the proxy to be marked stale", 10
    )
    status = h.cli(h.engine, "status")
    assert status.returncode == 1 and "heartbeats missed" in status.stdout
    proxy_toml = h.proxy / "etc/wsproxy-agent/proxy.toml"
    proxy_toml.write_text(
        proxy_toml.read_text().replace("heartbeat_interval = 30", "heartbeat_interval = 1")
    )
    h.start_proxy()  # heartbeats again, every second
    wait_for(
        lambda: "STALE" not in h.cli(h.engine, "status").stdout, "the proxy to be fresh again", 10
    )
    assert h.cli(h.engine, "status").returncode == 0

"""``status`` on both hosts: renewal due dates, the last error of each step, stale proxies,
and for every problem the command that fixes it (text and --json)."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from typing import Any

from cryptography import x509

from tests.e2e.conftest import PROXY_FQDN, Hosts, joined, log_events, wait_for
from wsproxy_agent import control
from wsproxy_agent.paths import HostPaths

CERT = "etc/pki/ovirt-engine/certs/websocket-proxy.cer"
STATE = "var/lib/wsproxy-agent/proxy-state.json"


def status(h: Hosts, root: Any) -> dict[str, Any]:
    """The --json report, after checking the shape every report shares."""
    proc = h.cli(root, "status", "--json")
    report: dict[str, Any] = json.loads(proc.stdout)
    assert proc.returncode == (1 if report["problems"] else 0)
    for p in report["problems"]:
        assert set(p) == {"problem", "fix"} and p["problem"] and p["fix"], p
    return report


def fixes_for(report: dict[str, Any], words: str) -> list[str]:
    return [p["fix"] for p in report["problems"] if words in p["problem"]]


def engine_row(h: Hosts) -> dict[str, Any]:
    [row] = status(h, h.engine)["proxies"]
    assert isinstance(row, dict)
    return row


def utc(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def test_renewal_due_dates_on_both_hosts_follow_the_certificate(running: Hosts) -> None:
    h = joined(running)
    cert = x509.load_pem_x509_certificate(h.proxy_file(CERT).read_bytes())
    start = int(cert.not_valid_before_utc.timestamp())
    lifetime = int(cert.not_valid_after_utc.timestamp()) - start
    two_thirds = start + lifetime * 2 // 3

    row = engine_row(h)
    assert abs(row["renew_due"] - two_thirds) <= 1 and row["renewal_overdue"] is False
    assert f"renewal due about {utc(row['renew_due'])}" in h.cli(h.engine, "status").stdout

    # The proxy's daemon is down: the plain two-thirds rule, said to be approximate.
    proxy = status(h, h.proxy)
    assert proxy["renewal"]["due"] == row["renew_due"] and proxy["renewal"]["exact"] is False
    assert f"due about {utc(row['renew_due'])}" in h.cli(h.proxy, "status").stdout

    # Running, the daemon's own plan, with the jitter it drew.
    h.start_proxy()
    wait_for(lambda: status(h, h.proxy)["renewal"]["exact"], "the daemon's renewal plan")
    pong = control.ask(HostPaths.under(h.proxy).proxy_control, {"op": "ping"})
    assert pong is not None, "the proxy daemon did not answer its control socket"
    jitter = pong["jitter"]
    due = status(h, h.proxy)["renewal"]["due"]
    assert abs(due - (start + lifetime * (2 / 3 + jitter))) <= 1
    assert abs(due - two_thirds) <= lifetime * 0.05 + 1
    assert re.search(rf"renewal +due {utc(due)}", h.cli(h.proxy, "status").stdout)


def test_a_failed_renewal_shows_its_error_and_fix_until_a_renewal_succeeds(
    running: Hosts,
) -> None:
    h = joined(running)
    h.systemctl_proxy.fail("Job for ovirt-websocket-proxy.service failed")
    assert h.cli(h.proxy, "proxy", "renew").returncode == 1

    proxy = status(h, h.proxy)
    error = proxy["errors"]["restart"]
    assert "Job for ovirt-websocket-proxy.service failed" in error["message"]
    assert abs(error["at"] - time.time()) < 120
    [fix] = fixes_for(proxy, "Restarting the websocket proxy failed")
    assert fix.endswith("then wsproxy-agent proxy renew")
    assert proxy["facts"]["enrolled"] == "active"  # a failed renewal leaves it enrolled
    text = h.cli(h.proxy, "status").stdout
    assert "restart  " in text and "fix: fix the websocket proxy" in text

    engine = status(h, h.engine)
    assert "install failed" in engine["proxies"][0]["last_error"]["message"]
    [fix] = fixes_for(engine, "install failed")
    assert f"wsproxy-agent engine renew {PROXY_FQDN}" in fix

    h.systemctl_proxy.heal()
    renewed = h.cli(h.proxy, "proxy", "renew")
    assert renewed.returncode == 0, renewed.stdout + renewed.stderr
    proxy = status(h, h.proxy)
    assert proxy["errors"] == {}
    assert fixes_for(proxy, "failed") == []
    assert engine_row(h)["last_error"] is None


def test_the_daemon_shows_a_failed_renewal_and_its_next_try(running: Hosts) -> None:
    h = joined(running)
    state_file = h.proxy / STATE
    saved = json.loads(state_file.read_text())
    saved["not_before"] -= 10 * (saved["not_after"] - saved["not_before"])  # long due
    state_file.write_text(json.dumps(saved))
    ca_key = HostPaths.under(h.engine).ca_key
    ca_key.rename(ca_key.with_name("hidden"))  # the engine cannot sign
    h.start_proxy()
    wait_for(
        lambda: status(h, h.proxy)["renewal"]["failures"] == 1, "the failed renewal", timeout=30
    )
    proxy = status(h, h.proxy)
    assert proxy["renewal"]["next_try"] > time.time() + 30  # the backoff, not at once
    assert "failed 1 time, next try" in h.cli(h.proxy, "status").stdout
    assert proxy["errors"]["renew"]["message"]
    assert fixes_for(proxy, "Renewing failed") == ["wsproxy-agent proxy renew"]
    [fix] = fixes_for(status(h, h.engine), "renewal refused")
    assert f"wsproxy-agent engine renew {PROXY_FQDN}" in fix

    ca_key.with_name("hidden").rename(ca_key)
    renewed = h.cli(h.proxy, "proxy", "renew")
    assert renewed.returncode == 0, renewed.stdout + renewed.stderr

    def failures_forgotten() -> bool:  # in the daemon's own plan, made for the new certificate
        plan = status(h, h.proxy)["renewal"]
        return bool(plan["exact"]) and plan["failures"] == 0

    wait_for(failures_forgotten, "the daemon to see the renewal done")
    proxy = status(h, h.proxy)
    assert proxy["renewal"]["due"] > time.time() and proxy["errors"] == {}
    assert proxy["problems"] == []
    assert status(h, h.engine)["problems"] == []


def test_the_engine_says_when_a_renewal_is_overdue(running: Hosts) -> None:
    h = joined(running)
    now = int(time.time())
    db = sqlite3.connect(h.engine / "var/lib/wsproxy-agent/registry.sqlite")
    with db:  # issued 300 of 398 days ago: due about 265 days in, so well past
        db.execute(
            "UPDATE proxies SET not_before = ?, not_after = ?",
            (now - 300 * 86400, now + 98 * 86400),
        )
    db.close()
    row = engine_row(h)
    assert row["renewal_overdue"] is True
    assert "renewal OVERDUE, was due about" in h.cli(h.engine, "status").stdout
    [fix] = fixes_for(status(h, h.engine), "was not renewed")
    assert (
        fix
        == f"wsproxy-agent engine renew {PROXY_FQDN} (or on {PROXY_FQDN}: wsproxy-agent proxy renew)"
    )


def test_an_activation_failure_shows_with_engine_activate_as_the_fix(running: Hosts) -> None:
    h = running
    h.engine_config.fail("Error setting WebSocketProxy")
    assert h.join(h.token()).returncode == 1

    engine = status(h, h.engine)
    [fix] = fixes_for(engine, "switching the engine over failed")
    assert fix.endswith(f"wsproxy-agent engine activate {PROXY_FQDN}")
    assert f"fix: fix that, then: wsproxy-agent engine activate {PROXY_FQDN}" in (
        h.cli(h.engine, "status").stdout
    )
    proxy = status(h, h.proxy)
    assert "Error setting WebSocketProxy" in proxy["errors"]["activation"]["message"]
    assert fixes_for(proxy, "Switching the engine over failed") == [
        f"on the engine: wsproxy-agent engine activate {PROXY_FQDN}"
    ]


def test_no_activate_is_not_an_activation_error(running: Hosts) -> None:
    h = joined(running, "--no-activate")
    assert "activation" not in status(h, h.proxy)["errors"]


def test_a_stale_proxy_shows_with_its_fix(running: Hosts) -> None:
    h = joined(running)
    toml = h.engine / "etc/wsproxy-agent/engine.toml"
    text = toml.read_text().replace("heartbeat_interval = 30", "heartbeat_interval = 1")
    toml.write_text(text.replace("stale_after_missed = 3", "stale_after_missed = 2"))
    wait_for(lambda: engine_row(h)["stale"], "the proxy to be marked stale", 10)
    [fix] = fixes_for(status(h, h.engine), "heartbeats missed")
    assert fix.startswith(f"on {PROXY_FQDN}: systemctl restart wsproxy-agent-proxy")
    assert "STALE" in h.cli(h.engine, "status").stdout


def test_a_join_that_cannot_reach_the_engine_says_how_to_fix_it(hosts: Hosts) -> None:
    h = hosts
    h.engine_init()  # but no engine daemon
    assert h.join(h.token()).returncode != 0
    proxy = status(h, h.proxy)
    assert proxy["facts"]["enrolled"] == "no" and "handshake" in proxy["errors"]["link"]["message"]
    [fix] = fixes_for(proxy, "Reaching the engine failed")
    assert "systemctl start wsproxy-agent-engine" in fix and "wsproxy-agent proxy join" in fix
    # The file now holds that error, but the daemon still needs a finished join to run.
    run = h.cli(h.proxy, "proxy", "run", timeout=20)
    assert run.returncode == 1 and "proxy join" in run.stderr


def test_a_config_broken_on_disk_costs_a_status_call_not_the_daemon(running: Hosts) -> None:
    h = joined(running)
    h.start_proxy()
    for root, role, log in ((h.engine, "engine", h.engine_log), (h.proxy, "proxy", h.proxy_log)):
        toml = root / f"etc/wsproxy-agent/{role}.toml"
        good = toml.read_text()
        toml.write_text(good + "\n[half written\n")  # an editor's save cut short
        broken = h.cli(root, "status")
        assert broken.returncode != 0 and "is not valid TOML" in broken.stderr, broken
        assert "Traceback" not in broken.stderr
        [failed] = log_events(log(), "status_report_failed")
        assert "is not valid TOML" in str(failed["why"])

        toml.write_text(good)
        assert "running (pid" in h.cli(root, "status").stdout, f"the {role} daemon stopped"

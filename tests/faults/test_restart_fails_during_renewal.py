"""The proxy service's restart failing or hanging during a renewal, and engine-config untouched.

A renewal is finished only when the service runs on the new certificate: a restart that fails
or hangs (bounded by command_timeout, 5 s here) is reported to the engine as a failed install,
the renewal stays unfinished, and asking again after the fault is healed completes it with the
certificate the engine already signed.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.e2e.conftest import PROXY_FQDN, Hosts, joined, wait_for
from tests.faults.conftest import (
    engine_config_calls,
    key_matches_cert,
    pending_request,
    processes_running,
    proxy_state,
    push_renewal,
    renewals_signed,
    restarts,
    serial_of,
    snapshot,
)

SERVICE_ERROR = "Job for ovirt-websocket-proxy.service failed"


def assert_renewal_unfinished(h: Hosts, signed_serial: str, why: str) -> None:
    """What both sides record after the proxy reported a failed install."""
    saved = proxy_state(h)
    assert saved["enrollment"] == "active"  # still enrolled: it may (and will) try again
    assert why in saved["errors"]["restart"]["message"]
    assert saved.get("renewed_at") is None
    assert pending_request(h)  # the retry must ask with the same CSR
    [row] = h.registry()
    assert row["state"] == "active" and row["active"] == 1
    assert row["serial"] == signed_serial
    failures = [
        json.loads(line) for line in h.engine_log().splitlines() if '"proxy_install_failed"' in line
    ]
    assert failures and failures[-1]["fqdn"] == PROXY_FQDN and why in failures[-1]["why"]
    status = h.cli(h.proxy, "status")
    assert status.returncode == 1
    assert "Restarting the websocket proxy failed" in status.stdout and why in status.stdout


def assert_renewed_once(h: Hosts, signed_serial: str, engine_config_before: int) -> None:
    files = snapshot(h)
    assert key_matches_cert(files)
    assert serial_of(files) == signed_serial == h.registry()[0]["serial"]
    assert renewals_signed(h) == 1
    saved = proxy_state(h)
    assert saved["serial"] == signed_serial and saved["renewed_at"]
    assert "restart" not in saved.get("errors", {})
    assert not pending_request(h)
    assert "Restarting the websocket proxy failed" not in h.cli(h.proxy, "status").stdout
    assert engine_config_calls(h) == engine_config_before  # renewal never switches the engine


def test_restart_failing_during_proxy_renew(running: Hosts) -> None:
    h = joined(running)
    old = snapshot(h)
    engine_config_before = engine_config_calls(h)
    h.systemctl_proxy.fail(SERVICE_ERROR)
    result = h.cli(h.proxy, "proxy", "renew")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "websocket proxy service did not restart" in result.stderr
    assert SERVICE_ERROR in result.stderr
    assert "Traceback" not in result.stderr
    signed = h.registry()[0]["serial"]
    assert isinstance(signed, str)  # the engine signed the renewal
    assert signed != serial_of(old)
    assert_renewal_unfinished(h, signed, SERVICE_ERROR)

    h.systemctl_proxy.heal()
    again = h.cli(h.proxy, "proxy", "renew")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "renewed" in again.stdout
    assert_renewed_once(h, signed, engine_config_before)


def test_restart_hanging_during_proxy_renew_is_cut_off(running: Hosts) -> None:
    h = joined(running)
    engine_config_before = engine_config_calls(h)
    h.systemctl_proxy.hang()
    started = time.monotonic()
    result = h.cli(h.proxy, "proxy", "renew")
    took = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    assert "did not finish within 5 s and was stopped" in result.stderr
    assert took < 60  # bounded by command_timeout (5 s), not the stand-in's hour
    assert not processes_running(h.systemctl_proxy.path)  # the hung command was killed
    signed = h.registry()[0]["serial"]
    assert isinstance(signed, str)  # the engine signed the renewal
    assert_renewal_unfinished(h, signed, "did not finish within 5 s")

    h.systemctl_proxy.heal()
    again = h.cli(h.proxy, "proxy", "renew")
    assert again.returncode == 0, again.stdout + again.stderr
    assert_renewed_once(h, signed, engine_config_before)


def test_the_daemon_retries_a_renewal_whose_restart_failed(running: Hosts) -> None:
    h = joined(running)
    state_file = h.proxy / "var/lib/wsproxy-agent/proxy-state.json"
    saved = json.loads(state_file.read_text())
    saved["not_before"] -= 10 * (saved["not_after"] - saved["not_before"])  # long due
    state_file.write_text(json.dumps(saved))
    engine_config_before = engine_config_calls(h)
    h.systemctl_proxy.fail(SERVICE_ERROR)
    h.start_proxy()
    wait_for(lambda: '"renewal_failed"' in h.proxy_log(), "the scheduled renewal to fail", 60)
    [failed] = [json.loads(x) for x in h.proxy_log().splitlines() if '"renewal_failed"' in x]
    assert SERVICE_ERROR in failed["why"] and failed["retry_in_s"] == 60
    signed = h.registry()[0]["serial"]
    assert isinstance(signed, str)  # the engine signed the renewal
    assert_renewal_unfinished(h, signed, SERVICE_ERROR)

    h.systemctl_proxy.heal()
    restarted = restarts(h)
    push_renewal(h)  # the operator's "try again now", instead of waiting out the backoff
    wait_for(lambda: '"renewal_done"' in h.proxy_log(), "the retried renewal", 60)
    assert restarts(h) == restarted + 1
    assert_renewed_once(h, signed, engine_config_before)


@pytest.mark.parametrize("fault", ["fail", "hang"])
def test_renewal_does_not_run_engine_config(running: Hosts, fault: str) -> None:
    h = joined(running)
    before = engine_config_calls(h)
    getattr(h.engine_config, fault)()  # were renewal to switch the engine, this would bite
    started = time.monotonic()
    result = h.cli(h.proxy, "proxy", "renew")
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 60
    assert engine_config_calls(h) == before
    [row] = h.registry()
    assert row["state"] == "active" and row["activation_error"] is None
    assert os.path.exists(h.proxy / "etc/pki/ovirt-engine/certs/websocket-proxy.cer.bak")

"""Renewal: signed with the identity key, a new TLS key, installed only after it verifies."""

from __future__ import annotations

import json
import os
import time

from cryptography import x509

from tests.e2e.conftest import PROXY_FQDN, Hosts, joined, wait_for

CERT = "etc/pki/ovirt-engine/certs/websocket-proxy.cer"
KEY = "etc/pki/ovirt-engine/keys/websocket-proxy.key.nopass"


def test_proxy_renew_installs_a_new_certificate_and_key(running: Hosts) -> None:
    h = joined(running)
    old_cert, old_key = h.proxy_file(CERT).read_bytes(), h.proxy_file(KEY).read_bytes()
    [before] = h.registry()
    restarts = len(h.systemctl_proxy.calls)
    result = h.cli(h.proxy, "proxy", "renew")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "renewed" in result.stdout
    [after] = h.registry()
    assert after["serial"] != before["serial"] and after["state"] == "active"
    assert h.proxy_file(CERT).read_bytes() != old_cert and h.proxy_file(KEY).read_bytes() != old_key
    assert h.proxy_file(CERT + ".bak").read_bytes() == old_cert  # the old one is kept
    assert len(h.systemctl_proxy.calls) == restarts + 1
    assert [a for a in h.audit() if a["action"] == "renew"]
    # No token was involved and the engine was not switched again.
    assert len([c for _, c in h.engine_config.calls if c[0] == "-s"]) == 1


def test_renewal_after_the_certificate_expired_while_off(running: Hosts) -> None:
    h = joined(running)
    state_file = h.proxy / "var/lib/wsproxy-agent/proxy-state.json"
    saved = json.loads(state_file.read_text())
    saved["not_after"] = int(time.time()) - 86400  # as if it had been off past its expiry
    state_file.write_text(json.dumps(saved))
    result = h.cli(h.proxy, "proxy", "renew")
    assert result.returncode == 0, result.stdout + result.stderr
    cert = x509.load_pem_x509_certificate(h.proxy_file(CERT).read_bytes())
    assert cert.not_valid_after_utc.timestamp() > time.time() + 300 * 86400


def test_a_revoked_proxy_cannot_renew(running: Hosts) -> None:
    h = joined(running)
    old = h.proxy_file(CERT).read_bytes()
    h.cli(h.engine, "keys", "delete", PROXY_FQDN, check=True)
    result = h.cli(h.proxy, "proxy", "renew", "--timeout", "6")
    assert result.returncode == 1
    assert h.proxy_file(CERT).read_bytes() == old


def test_renew_before_joining_says_so(hosts: Hosts) -> None:
    h = hosts
    (h.proxy / "etc/wsproxy-agent/proxy.toml").write_text(
        (h.proxy / "etc/wsproxy-agent/proxy.toml").read_text() + 'engine = "127.0.0.1:1"\n'
    )
    result = h.cli(h.proxy, "proxy", "renew")
    assert result.returncode == 1 and "proxy join" in result.stderr


def test_the_daemon_renews_by_itself_when_due(running: Hosts) -> None:
    h = joined(running)
    state_file = h.proxy / "var/lib/wsproxy-agent/proxy-state.json"
    saved = json.loads(state_file.read_text())
    lifetime = saved["not_after"] - saved["not_before"]
    saved["not_before"] -= 10 * lifetime  # two thirds of the way are long past
    state_file.write_text(json.dumps(saved))
    serial = saved["serial"]
    h.start_proxy()
    wait_for(
        lambda: json.loads(state_file.read_text()).get("serial") != serial,
        "the daemon to renew",
        30,
    )
    assert h.registry()[0]["serial"] == json.loads(state_file.read_text())["serial"]
    assert '"renewal_done"' in h.proxy_log()
    assert os.path.exists(h.proxy_file(CERT + ".bak"))


def test_the_engine_can_push_renew_now(running: Hosts) -> None:
    h = joined(running)
    state_file = h.proxy / "var/lib/wsproxy-agent/proxy-state.json"
    serial = json.loads(state_file.read_text())["serial"]
    down = h.cli(h.engine, "engine", "renew", PROXY_FQDN)
    assert down.returncode == 1 and "not connected" in down.stderr  # no daemon on the proxy yet
    h.start_proxy()
    wait_for(lambda: h.registry()[0]["health"] is not None, "a heartbeat")
    h.cli(h.engine, "engine", "renew", PROXY_FQDN, check=True)
    wait_for(
        lambda: json.loads(state_file.read_text()).get("serial") != serial, "the pushed renewal", 30
    )
    assert '"renewal_requested"' in h.proxy_log()

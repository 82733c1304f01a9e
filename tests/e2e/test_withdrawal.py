"""Taking a proxy out: keys delete revokes and switches back; engine deactivate only switches."""

from __future__ import annotations

from protocol import catalogue as cat
from protocol import identity
from tests.e2e.conftest import PROXY_FQDN, Hosts, joined, wait_for
from tests.e2e.rawclient import RawProxy


def test_keys_delete_revokes_switches_back_and_tells_the_proxy(running: Hosts) -> None:
    h = joined(running)
    h.start_proxy()
    wait_for(lambda: h.registry()[0]["health"] is not None, "a heartbeat")
    result = h.cli(h.engine, "keys", "delete", PROXY_FQDN)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "revoked" in result.stdout and "switched back" in result.stdout
    assert h.engine_config.calls[-1][1] == ["-s", "WebSocketProxy=Engine:6100"]
    assert h.systemctl_engine.calls[-1][1] == ["restart", "ovirt-engine.service"]
    [row] = h.registry()
    assert row["state"] == "revoked" and row["active"] == 0
    wait_for(
        lambda: (
            "revoked by the engine" in h.cli(h.proxy, "status").stdout.lower()
            or "revoked this proxy" in h.cli(h.proxy, "status").stdout
        ),
        "the proxy to hear of it",
    )
    decisions = [a["action"] for a in h.audit() if a["fqdn"] == PROXY_FQDN]
    assert "revoke" in decisions and "switch_back" in decisions
    assert '"decision": "revoked"' in h.proxy_log()
    # From now on its messages are refused: a heartbeat signed with its key is not accepted.
    key = identity.private_from_pem((h.proxy / "var/lib/wsproxy-agent/identity.key").read_bytes())
    raw = RawProxy(h.engine, h.port, key)
    try:
        raw.send(
            cat.HEARTBEAT,
            {
                "service_active": True,
                "cert_days_left": 300,
                "setup_conf_sha256": "0" * 64,
                "agent_version": "x",
            },
        )
        wait_for(
            lambda: f"No key is held for {raw.fp}" in h.engine_log(), "the engine to refuse it"
        )
    finally:
        raw.close()
    assert h.registry()[0]["state"] == "revoked"


def test_keys_delete_leaves_a_value_someone_else_set_since(running: Hosts) -> None:
    h = joined(running)
    h.engine_config.path.with_name("engine-config.state").write_text("other.example:6100\n")
    result = h.cli(h.engine, "keys", "revoke", PROXY_FQDN)  # the alias
    assert result.returncode == 0, result.stderr
    assert [args for _, args in h.engine_config.calls][-1] == ["-g", "WebSocketProxy"]
    assert h.registry()[0]["state"] == "revoked"


def test_failed_switch_back_is_reported_and_retried(running: Hosts) -> None:
    h = joined(running)
    h.engine_config.fail("engine-config: database is down")
    result = h.cli(h.engine, "keys", "delete", PROXY_FQDN)
    assert result.returncode == 1 and "database is down" in result.stderr
    [row] = h.registry()
    assert row["state"] == "revoked" and row["active"] == 1  # revoked at once, still pointed at
    status = h.cli(h.engine, "status")
    assert status.returncode == 1 and "switching the engine back failed" in status.stdout
    assert "engine deactivate" in status.stdout
    h.engine_config.heal()
    h.cli(h.engine, "engine", "deactivate", PROXY_FQDN, check=True)
    assert h.registry()[0]["active"] == 0
    assert h.cli(h.engine, "status").returncode == 0


def test_deactivate_then_activate_again(running: Hosts) -> None:
    h = joined(running)
    h.cli(h.engine, "engine", "deactivate", PROXY_FQDN, check=True)
    [row] = h.registry()
    assert row["state"] == "enrolled" and row["active"] == 0
    assert h.engine_config.calls[-1][1] == ["-s", "WebSocketProxy=Engine:6100"]
    again = h.cli(h.engine, "engine", "deactivate", PROXY_FQDN)
    assert again.returncode == 1 and "nothing to switch back" in again.stderr
    h.cli(h.engine, "engine", "activate", PROXY_FQDN, check=True)
    wait_for(lambda: h.registry()[0]["state"] == "active", "activation")
    assert h.engine_config.calls[-1][1] == ["-s", f"WebSocketProxy={PROXY_FQDN}:6100"]


def test_rebuilt_proxy_rejoins_with_a_fresh_token_and_replaces_its_key(running: Hosts) -> None:
    h = joined(running)
    [old] = h.registry()
    rebuilt = h.top / "rebuilt"
    (rebuilt / "etc/wsproxy-agent").mkdir(parents=True)
    (rebuilt / "etc/wsproxy-agent/proxy.toml").write_text(
        (h.proxy / "etc/wsproxy-agent/proxy.toml").read_text()
    )
    result = h.join(h.token(), root=rebuilt)
    assert result.returncode == 0, result.stdout + result.stderr
    [new] = h.registry()
    assert new["fingerprint"] != old["fingerprint"] and new["state"] == "active"
    assert any("replaces key " + str(old["fingerprint"]) in str(a["why"]) for a in h.audit())

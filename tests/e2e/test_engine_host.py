"""The engine host's own contract: adopting a PKI, clean shutdown, the control socket, tokens."""

from __future__ import annotations

import shutil
import signal
import stat

from tests.e2e.conftest import Hosts


def test_init_adopts_an_existing_ovirt_pki(hosts: Hosts) -> None:
    h = hosts
    h.engine_init()
    pki = h.engine / "etc/pki/ovirt-engine"
    adopted = h.top / "adopted"
    shutil.copytree(pki, adopted / "etc/pki/ovirt-engine")
    result = h.cli(adopted, "engine", "init", "--fqdn", "engine.e2e.test", check=True)
    assert "created a CA" not in result.stdout
    assert (adopted / "etc/pki/ovirt-engine/ca.pem").read_bytes() == (pki / "ca.pem").read_bytes()
    for private in ("var/lib/wsproxy-agent/identity.key", "var/lib/wsproxy-agent/curve.key_secret"):
        assert stat.S_IMODE((adopted / private).stat().st_mode) == 0o600


def test_init_without_a_pki_says_what_to_do(hosts: Hosts) -> None:
    result = hosts.cli(hosts.top / "bare", "engine", "init", "--fqdn", "engine.e2e.test")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "ca.pem" in result.stderr


def test_create_ca_refuses_to_replace_a_ca(hosts: Hosts) -> None:
    hosts.engine_init()
    before = (hosts.engine / "etc/pki/ovirt-engine/ca.pem").read_bytes()
    result = hosts.cli(hosts.engine, "engine", "init", "--create-ca")
    assert result.returncode == 1 and "drop --create-ca" in result.stderr
    assert (hosts.engine / "etc/pki/ovirt-engine/ca.pem").read_bytes() == before


def test_sigterm_stops_the_daemon_cleanly_and_the_control_socket_is_private(hosts: Hosts) -> None:
    h = hosts
    h.engine_init()
    proc = h.start_engine()
    sock = h.engine / "run/wsproxy-agent/engine.sock"
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert not sock.exists()
    assert '"engine_stopping"' in h.engine_log()
    status = h.cli(h.engine, "status")
    assert status.returncode == 1 and "not running" in status.stdout


def test_revoked_token_is_refused(running: Hosts) -> None:
    h = running
    join = h.token()
    token_id = join.split("//")[1].split(".")[0]
    h.cli(h.engine, "token", "revoke", token_id, check=True)
    result = h.join(join)
    assert result.returncode == 1 and "revoked" in result.stderr
    assert h.registry() == []
    assert any(a["action"] == "token_revoke" for a in h.audit())


def test_ec_key_join(running: Hosts) -> None:
    h = running
    result = h.join(h.token(), "--key-type", "ec")
    assert result.returncode == 0, result.stdout + result.stderr
    key = (h.proxy / "etc/pki/ovirt-engine/keys/websocket-proxy.key.nopass").read_text()
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    assert isinstance(load_pem_private_key(key.encode(), None), ec.EllipticCurvePrivateKey)


def test_pending_join_times_out_with_its_own_exit_code(running: Hosts) -> None:
    h = running
    result = h.cli(h.proxy, *h.pending_join_args(timeout="4"))
    assert result.returncode == 4, result.stdout + result.stderr
    assert "run the same join again" in result.stderr
    [row] = h.registry()
    assert row["state"] == "pending"

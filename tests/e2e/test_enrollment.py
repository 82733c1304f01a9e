"""End to end: token join, pending then accept or reject, activation only after success."""

from __future__ import annotations

import re
import socket
import ssl
import stat
import subprocess
import threading
import time
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.e2e.conftest import PROXY_FQDN, STANDINS, Hosts, wait_for

KEY = "etc/pki/ovirt-engine/keys/websocket-proxy.key.nopass"
CERT = "etc/pki/ovirt-engine/certs/websocket-proxy.cer"
ENGINE_CERT = "etc/pki/ovirt-engine/certs/engine.cer"
SETUP_CONF = "etc/ovirt-engine/ovirt-websocket-proxy.conf.d/10-setup.conf"


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)


def test_token_join_installs_verified_files_and_switches_engine(running: Hosts) -> None:
    h = running
    result = h.join(h.token())
    assert result.returncode == 0, result.stdout + result.stderr
    for step in (
        "connected",
        "approved",
        "certificate checked",
        "files installed",
        "service restarted",
        "engine switched over",
    ):
        assert step in result.stdout
    # Key generation is timed apart (an RSA key's cost is luck), in words a script can read.
    for made in (r"identity key \(Ed25519\)", r"TLS key \(RSA\) and certificate request"):
        assert re.search(made + r" made in \d+\.\d ms", result.stdout), result.stdout

    ca = h.engine / "etc/pki/ovirt-engine/ca.pem"
    verify = openssl("verify", "-CAfile", str(ca), str(h.proxy_file(CERT)))
    assert verify.returncode == 0 and ": OK" in verify.stdout
    for rel in (KEY, CERT, ENGINE_CERT, SETUP_CONF):
        assert stat.S_IMODE(h.proxy_file(rel).stat().st_mode) == 0o600, rel

    text = openssl("x509", "-in", str(h.proxy_file(CERT)), "-noout", "-text").stdout
    assert "CA:FALSE" in text
    assert "Digital Signature, Key Encipherment" in text
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in text
    assert f"DNS:{PROXY_FQDN}" in text and text.count("DNS:") == 1
    cert = x509.load_pem_x509_certificate(h.proxy_file(CERT).read_bytes())
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and set(eku.value) == {
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    }
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).critical

    conf = h.proxy_file(SETUP_CONF).read_text()
    assert "PROXY_PORT=6100" in conf
    assert "SSL_CERTIFICATE=/etc/pki/ovirt-engine/certs/websocket-proxy.cer" in conf
    assert "SSL_KEY=/etc/pki/ovirt-engine/keys/websocket-proxy.key.nopass" in conf
    assert "CERT_FOR_DATA_VERIFICATION=/etc/pki/ovirt-engine/certs/engine.cer" in conf
    assert "SSL_ONLY=True" in conf

    tls_handshake(h, ca)

    # Activation: engine-config read then set, then the engine restart; all after the proxy
    # service restarted and reported.
    proxy_restart = h.systemctl_proxy.calls
    config_calls = h.engine_config.calls
    assert [args for _, args in config_calls] == [
        ["-g", "WebSocketProxy"],
        ["-s", f"WebSocketProxy={PROXY_FQDN}:6100"],
    ]
    assert [args for _, args in h.systemctl_engine.calls] == [["restart", "ovirt-engine.service"]]
    assert proxy_restart[0][0] < config_calls[1][0]
    [row] = h.registry()
    assert (
        row["state"] == "active" and row["active"] == 1 and row["replaced_value"] == "Engine:6100"
    )

    assert h.cli(h.engine, "status").returncode == 0
    for root in (h.engine, h.proxy):
        assert status_imports(root) == "[]"  # status stays off cryptography and structlog
    proxy_status = h.cli(h.proxy, "status")
    assert "The proxy daemon is not running" in proxy_status.stdout and proxy_status.returncode == 1


def status_imports(root: Path) -> str:
    import sys

    code = (
        "import sys; from wsproxy_agent.cli import main\n"
        "try:\n    main(['--root', sys.argv[1], 'status'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('cryptography', 'structlog')))"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True)
    return proc.stdout.strip().splitlines()[-1]


def tls_handshake(h: Hosts, ca: Path) -> None:
    """A Python TLS server with the installed pair; a client trusting only our CA connects."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(h.proxy_file(CERT), h.proxy_file(KEY))
    client_ctx = ssl.create_default_context(cafile=str(ca))
    client_ctx.load_verify_locations(cafile=str(ca))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"ok")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    with (
        socket.create_connection(listener.getsockname(), timeout=10) as raw,
        client_ctx.wrap_socket(raw, server_hostname=PROXY_FQDN) as tls,
    ):
        assert tls.recv(2) == b"ok"
    thread.join(10)
    listener.close()
    assert not errors
    # The same client refuses the certificate for any other name.
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        t = threading.Thread(target=lambda: _accept_once(other, server_ctx))
        t.start()
        with socket.create_connection(other.getsockname(), timeout=10) as raw:
            try:
                client_ctx.wrap_socket(raw, server_hostname="other.e2e.test")
                raise AssertionError("hostname check did not refuse another name")
            except ssl.SSLCertVerificationError:
                pass
        t.join(10)


def _accept_once(listener: socket.socket, ctx: ssl.SSLContext) -> None:
    listener.settimeout(10)
    try:
        conn, _ = listener.accept()
        with ctx.wrap_socket(conn, server_side=True):
            pass
    except (ssl.SSLError, OSError):
        pass


def test_pending_then_accept(running: Hosts) -> None:
    h = running
    join = h.start_pending_join()
    wait_for(
        lambda: any(k["state"] == "pending" for k in h.key_list()), "the request to be pending"
    )
    [pending] = h.key_list()
    fingerprint = pending["fingerprint"]
    assert isinstance(fingerprint, str)
    assert h.registry()[0]["cert_pem"] is None  # nothing is signed before an operator decides
    assert h.cli(h.engine, "status").returncode == 1  # a pending request needs attention
    accept = h.cli(h.engine, "keys", "accept", PROXY_FQDN, check=True)
    assert fingerprint in accept.stdout
    out, err = join.communicate(timeout=60)
    assert join.returncode == 0, out + err
    assert "pending: an operator must accept" in out and fingerprint in out
    assert "engine switched over" in out
    [row] = h.registry()
    assert row["state"] == "active" and row["serial"]
    actions = [a["action"] for a in h.audit() if a["fqdn"] == PROXY_FQDN]
    assert actions[:2] == ["request_without_token", "accept"]


def test_pending_then_reject(running: Hosts) -> None:
    h = running
    join = h.start_pending_join()
    wait_for(
        lambda: any(k["state"] == "pending" for k in h.key_list()), "the request to be pending"
    )
    h.cli(h.engine, "keys", "reject", PROXY_FQDN, check=True)
    out, err = join.communicate(timeout=60)
    assert join.returncode == 3, out + err
    assert "rejected" in err
    assert not h.proxy_file(CERT).exists()
    assert h.registry()[0]["cert_pem"] is None
    assert h.engine_config.calls == []


def test_keys_decisions_work_while_the_daemon_is_down(hosts: Hosts) -> None:
    h = hosts
    h.engine_init()
    engine = h.start_engine()
    join = h.start_pending_join()
    wait_for(
        lambda: any(k["state"] == "pending" for k in h.key_list()), "the request to be pending"
    )
    h.kill_engine(engine)
    h.cli(h.engine, "keys", "accept", PROXY_FQDN, check=True)  # no daemon to talk to
    h.start_engine()
    out, err = join.communicate(timeout=60)
    assert join.returncode == 0, out + err
    assert h.registry()[0]["state"] == "active"


def test_failed_proxy_restart_never_activates(running: Hosts) -> None:
    h = running
    h.systemctl_proxy.fail("Job for ovirt-websocket-proxy.service failed")
    result = h.join(h.token())
    assert result.returncode == 1
    assert (
        "did not restart" in result.stderr
        and "Job for ovirt-websocket-proxy.service failed" in result.stderr
    )
    assert h.engine_config.calls == []
    [row] = h.registry()
    assert row["active"] == 0 and row["state"] == "approved"


def test_failing_engine_config_is_reported_not_recorded_and_retried_on_request(
    running: Hosts,
) -> None:
    h = running
    h.engine_config.fail("Error setting WebSocketProxy")
    result = h.join(h.token())
    assert result.returncode == 1
    assert "Error setting WebSocketProxy" in result.stdout
    [row] = h.registry()
    assert row["state"] == "activation_failed" and row["active"] == 0
    status = h.cli(h.engine, "status")
    assert status.returncode == 1 and "engine activate" in status.stdout

    h.engine_config.heal()
    h.cli(h.engine, "engine", "activate", PROXY_FQDN, check=True)
    wait_for(lambda: h.registry()[0]["state"] == "active", "the retried activation")
    assert h.registry()[0]["active"] == 1
    assert h.engine_config.calls[-1][1] == ["-s", f"WebSocketProxy={PROXY_FQDN}:6100"]


def test_hung_engine_config_is_bounded(running: Hosts) -> None:
    h = running
    h.engine_config.hang()
    start = time.monotonic()
    result = h.join(h.token())
    assert result.returncode == 1
    assert "did not finish within 5 s" in result.stdout
    assert time.monotonic() - start < 30
    assert h.registry()[0]["state"] == "activation_failed"


def test_no_activate_token_leaves_engine_alone(running: Hosts) -> None:
    h = running
    result = h.join(h.token("--no-activate"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not switched over" in result.stdout
    assert h.engine_config.calls == []
    assert h.registry()[0]["state"] == "enrolled"


def test_ovirt_signer_keeps_ovirts_ca_database(hosts: Hosts) -> None:
    """With oVirt's pki-enroll-request.sh present, init picks it and enrollment goes through it."""
    import shutil

    h = hosts
    script = h.engine / "usr/share/ovirt-engine/bin/pki-enroll-request.sh"
    script.parent.mkdir(parents=True)
    shutil.copy(STANDINS / "pki-enroll-request.sh", script)
    h.engine_init()
    assert 'signer = "ovirt"' in (h.engine / "etc/wsproxy-agent/engine.toml").read_text()
    h.start_engine()
    result = h.join(h.token())
    assert result.returncode == 0, result.stdout + result.stderr
    calls = (script.parent / "pki-enroll-request.sh.calls").read_text().splitlines()
    assert len(calls) == 1
    assert (
        f"--name=websocket-proxy-{PROXY_FQDN}" in calls[0] and f"--san=DNS:{PROXY_FQDN}" in calls[0]
    )
    issued = h.engine / f"etc/pki/ovirt-engine/certs/websocket-proxy-{PROXY_FQDN}.cer"
    delivered = x509.load_pem_x509_certificate(h.proxy_file(CERT).read_bytes())
    assert (
        x509.load_pem_x509_certificate(issued.read_bytes()).serial_number == delivered.serial_number
    )

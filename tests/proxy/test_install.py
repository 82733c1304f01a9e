from __future__ import annotations

import hashlib
import os
import pwd
import ssl
import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from proxy_agent.install import install_delivery, installed_files_report
from proxy_agent.setup_conf import effective_config, matches, render
from proxy_agent.tlskeys import TLSKey, build_csr, generate_tls_key, key_to_pem
from proxy_agent.verify import check_delivery
from wsproxy_agent.paths import HostPaths

# DESIGN §6, spelled out here so a change to paths.py cannot move them unnoticed.
KEY = "etc/pki/ovirt-engine/keys/websocket-proxy.key.nopass"
CERT = "etc/pki/ovirt-engine/certs/websocket-proxy.cer"
ENGINE_CERT = "etc/pki/ovirt-engine/certs/engine.cer"
SETUP_CONF = "etc/ovirt-engine/ovirt-websocket-proxy.conf.d/10-setup.conf"
CA_COPY = "var/lib/wsproxy-agent/ca.pem"


def install(root: Path, key: TLSKey, bundle: Any, port: int = 6100, **kw: Any) -> list[Path]:
    paths = HostPaths.under(root)
    return install_delivery(
        paths,
        tls_key_pem=key_to_pem(key),
        delivery_cert_pem=bundle.cert_pem,
        engine_cert_pem=bundle.engine_cert_pem,
        ca_cert_pem=bundle.ca_pem,
        setup_conf_text=render(port, paths),
        **kw,
    )


def openssl(*args: str) -> str:
    return subprocess.run(
        ["openssl", *args], capture_output=True, text=True, check=True, timeout=30
    ).stdout


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_files_land_at_designs_places_with_mode_0600(
    tmp_path: Path, proxy_key: TLSKey, bundle: Any
) -> None:
    written = install(tmp_path, proxy_key, bundle)
    # key and certificates before 10-setup.conf, which points at them
    assert written == [tmp_path / p for p in (KEY, CERT, ENGINE_CERT, CA_COPY, SETUP_CONF)]
    for rel in (KEY, CERT, ENGINE_CERT, SETUP_CONF):
        assert mode_of(tmp_path / rel) == 0o600, rel
    assert mode_of(tmp_path / CA_COPY) == 0o644
    assert mode_of((tmp_path / CA_COPY).parent) == 0o700  # the agent's private state dir
    assert (tmp_path / CERT).read_bytes() == bundle.cert_pem
    assert (tmp_path / ENGINE_CERT).read_bytes() == bundle.engine_cert_pem
    assert (tmp_path / CA_COPY).read_bytes() == bundle.ca_pem
    assert matches(HostPaths.under(tmp_path), 6100)
    assert not list(tmp_path.rglob("*.bak"))


def test_openssl_reads_the_key_and_cert_and_they_match(
    tmp_path: Path, proxy_key: TLSKey, bundle: Any
) -> None:
    install(tmp_path, proxy_key, bundle)
    openssl("x509", "-noout", "-in", str(tmp_path / CERT))
    openssl("pkey", "-noout", "-passin", "pass:", "-in", str(tmp_path / KEY))
    from_cert = openssl("x509", "-noout", "-pubkey", "-in", str(tmp_path / CERT))
    from_key = openssl("pkey", "-pubout", "-passin", "pass:", "-in", str(tmp_path / KEY))
    assert from_cert == from_key
    assert from_cert.startswith("-----BEGIN PUBLIC KEY-----")
    openssl("verify", "-CAfile", str(tmp_path / CA_COPY), str(tmp_path / CERT))


def test_second_install_keeps_the_old_files_as_bak(
    tmp_path: Path, proxy_key: TLSKey, bundle: Any, ca: Any, fqdn: str
) -> None:
    install(tmp_path, proxy_key, bundle)
    first = {rel: (tmp_path / rel).read_bytes() for rel in (KEY, CERT, SETUP_CONF)}
    new_key = generate_tls_key("ec")
    new_cert = ca.sign_csr(build_csr(new_key, fqdn)).public_bytes(serialization.Encoding.PEM)
    install(tmp_path, new_key, type(bundle)(new_cert, bundle.ca_pem, bundle.engine_cert_pem), 6200)
    for rel, old in first.items():
        backup = tmp_path / (rel + ".bak")
        assert backup.read_bytes() == old, rel
        assert mode_of(backup) == 0o600
        assert (tmp_path / rel).read_bytes() != old
    assert (tmp_path / CERT).read_bytes() == new_cert
    # the service ignores 10-setup.conf.bak: it reads only *.conf
    assert effective_config(HostPaths.under(tmp_path))["PROXY_PORT"] == "6200"


def test_installing_the_same_twice_changes_nothing(
    tmp_path: Path, proxy_key: TLSKey, bundle: Any
) -> None:
    paths = HostPaths.under(tmp_path)
    install(tmp_path, proxy_key, bundle)
    before = installed_files_report(paths)
    install(tmp_path, proxy_key, bundle)
    assert installed_files_report(paths) == before
    assert not (tmp_path / (KEY + ".bak")).exists()  # same bytes: no backup of them


def test_an_install_repeated_after_a_crash_keeps_the_backup_of_the_old_files(
    tmp_path: Path, proxy_key: TLSKey, bundle: Any, ca: Any, fqdn: str
) -> None:
    install(tmp_path, proxy_key, bundle)
    old_cert = (tmp_path / CERT).read_bytes()
    new_key = generate_tls_key("ec")
    new_cert = ca.sign_csr(build_csr(new_key, fqdn)).public_bytes(serialization.Encoding.PEM)
    renewed = type(bundle)(new_cert, bundle.ca_pem, bundle.engine_cert_pem)
    install(tmp_path, new_key, renewed)
    install(tmp_path, new_key, renewed)  # the resumed renewal writes the same files again
    assert (tmp_path / (CERT + ".bak")).read_bytes() == old_cert


def test_report_for_status(tmp_path: Path, proxy_key: TLSKey, bundle: Any) -> None:
    paths = HostPaths.under(tmp_path)
    assert [e["present"] for e in installed_files_report(paths)] == [False] * 5
    install(tmp_path, proxy_key, bundle)
    report = {e["name"]: e for e in installed_files_report(paths)}
    assert set(report) == {"tls_key", "cert", "engine_cert", "ca_cert", "setup_conf"}
    cert = report["cert"]
    assert cert["present"] and cert["mode"] == "0600" and cert["mode_ok"]
    assert cert["path"] == str(tmp_path / CERT)
    assert cert["owner"] == pwd.getpwuid(os.geteuid()).pw_name
    assert cert["sha256"] == hashlib.sha256(bundle.cert_pem).hexdigest()
    assert report["ca_cert"]["mode"] == "0644" and report["ca_cert"]["mode_ok"]
    (tmp_path / KEY).chmod(0o644)
    report = {e["name"]: e for e in installed_files_report(paths)}
    assert report["tls_key"]["mode"] == "0644"
    assert not report["tls_key"]["mode_ok"]


def test_owner_gets_the_service_files(tmp_path: Path, proxy_key: TLSKey, bundle: Any) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can give files to another user")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("this host has no user 'nobody' to stand in for 'ovirt'")
    install(tmp_path, proxy_key, bundle, owner="nobody")
    for rel in (KEY, CERT, ENGINE_CERT, SETUP_CONF):
        assert os.stat(tmp_path / rel).st_uid == nobody.pw_uid, rel
    assert os.stat(tmp_path / CA_COPY).st_uid == 0


def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, hostname: str) -> bytes:
    """A full TLS handshake and one message over memory BIOs; bounded, no sockets."""
    to_server, from_server, to_client, from_client = (ssl.MemoryBIO() for _ in range(4))
    server = server_ctx.wrap_bio(to_server, from_server, server_side=True)
    client = client_ctx.wrap_bio(to_client, from_client, server_hostname=hostname)
    done: dict[str, bool] = {"client": False, "server": False}
    for _ in range(10):
        for name, end in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        to_server.write(from_client.read())
        to_client.write(from_server.read())
        if all(done.values()):
            break
    assert all(done.values()), done
    client.write(b"ping")
    to_server.write(from_client.read())
    return server.read(4)


def test_python_tls_server_serves_the_installed_pair(
    tmp_path: Path, proxy_key: TLSKey, bundle: Any, fqdn: str
) -> None:
    install(tmp_path, proxy_key, bundle)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp_path / CERT, tmp_path / KEY)
    client_ctx = ssl.create_default_context(cafile=str(tmp_path / CA_COPY))
    assert client_ctx.check_hostname and client_ctx.verify_mode == ssl.CERT_REQUIRED
    assert handshake(server_ctx, client_ctx, fqdn) == b"ping"
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        handshake(server_ctx, client_ctx, "other.example.com")
    stranger = ssl.create_default_context(cafile=str(tmp_path / ENGINE_CERT))
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(server_ctx, stranger, fqdn)


def test_verified_delivery_then_install(
    tmp_path: Path, proxy_key: TLSKey, bundle: Any, fqdn: str
) -> None:
    delivery = check_delivery(
        bundle.cert_pem, bundle.ca_pem, bundle.engine_cert_pem, proxy_key, fqdn, datetime.now(UTC)
    )
    install(tmp_path, proxy_key, bundle)
    serial = openssl("x509", "-noout", "-serial", "-in", str(tmp_path / CERT))
    assert int(serial.strip().removeprefix("serial="), 16) == int(delivery.serial, 16)

"""A registry made before not_before and last_error existed opens, keeps its proxies and
gains the columns, with not_before read from each issued certificate."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from engine_agent.registry import Registry

BEFORE_THE_UPGRADE = """
CREATE TABLE proxies (
    fqdn TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, identity_key BLOB NOT NULL,
    state TEXT NOT NULL, port INTEGER NOT NULL, activate INTEGER NOT NULL DEFAULT 1,
    csr_sha256 TEXT, csr_pem TEXT, cert_pem TEXT, serial TEXT, not_after INTEGER,
    active INTEGER NOT NULL DEFAULT 0, replaced_value TEXT, activation_error TEXT,
    token_id TEXT, requested_at INTEGER NOT NULL, last_seen INTEGER, health TEXT
);
"""
START = datetime(2024, 3, 1, tzinfo=UTC)


def certificate_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "p.example")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(START)
        .not_valid_after(START + timedelta(days=398))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_an_old_registry_gains_the_new_columns_and_keeps_its_proxies(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite"
    db = sqlite3.connect(path)
    db.executescript(BEFORE_THE_UPGRADE)
    rows = [("p.example", "active", certificate_pem()), ("q.example", "pending", None)]
    for fqdn, state, cert in rows:
        db.execute(
            "INSERT INTO proxies (fqdn, fingerprint, identity_key, state, port, cert_pem,"
            " requested_at) VALUES (?, 'SHA256:x', x'00', ?, 6100, ?, 1)",
            (fqdn, state, cert),
        )
    db.commit()
    db.close()

    for _ in range(2):  # the second open finds nothing left to do
        registry = Registry(path)
        upgraded, pending = registry.proxies()
        registry.close()
        assert upgraded.not_before == int(START.timestamp())
        assert upgraded.last_error is None and upgraded.state.value == "active"
        assert pending.not_before is None and pending.fqdn == "q.example"


def test_an_error_is_noted_with_its_time_and_cleared(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite"
    registry = Registry(path)
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO proxies (fqdn, fingerprint, identity_key, state, port, requested_at)"
            " VALUES ('p.example', 'SHA256:x', x'00', 'active', 6100, 1)"
        )
    registry.note_error("p.example", "install failed: no service")
    noted = registry.proxy("p.example")
    assert noted is not None and noted.last_error == "install failed: no service"
    assert noted.last_error_at is not None and noted.last_error_at > 1_600_000_000
    registry.note_error("p.example", None)
    cleared = registry.proxy("p.example")
    assert cleared is not None and (cleared.last_error, cleared.last_error_at) == (None, None)
    registry.close()

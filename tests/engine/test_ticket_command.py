"""``wsproxy-agent engine ticket``: a real root from ``engine init --create-ca``, the real CLI.

The printed ticket must verify against the engine certificate a proxy trusts
(certs/engine.cer, its CERT_FOR_DATA_VERIFICATION), and every mistake must end in a sentence.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from engine_agent.pki import ENGINE_P12_ALIAS
from protocol.ticket import ConsoleTarget, verify_ticket
from wsproxy_agent.paths import HostPaths


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wsproxy_agent", "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=90,
    )


def ticket_cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cli(root, "engine", "ticket", "--host", "10.0.0.7", "--port", "5900", *args)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("engine")
    done = cli(
        root,
        *("engine", "init", "--create-ca", "--fqdn", "engine.example.com"),
        *("--listen", "tcp://127.0.0.1:6101", "--advertise", "127.0.0.1:6101"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return root


@pytest.fixture
def root(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "root"
    shutil.copytree(pristine, copy)
    return copy


def engine_public_key(root: Path) -> rsa.RSAPublicKey:
    cert = x509.load_pem_x509_certificate(HostPaths.under(root).engine_cert.read_bytes())
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def printed_ticket(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout  # the ticket alone, so $(...) captures it
    return lines[0]


def fields_of(ticket: str) -> dict[str, str]:
    fields = json.loads(base64.b64decode(ticket))
    assert isinstance(fields, dict)
    return fields


def clean_failure(done: subprocess.CompletedProcess[str], code: int) -> str:
    assert done.returncode == code, done.stdout + done.stderr
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    return done.stderr


def test_the_printed_ticket_verifies_against_engine_cer(pristine: Path) -> None:
    ticket = printed_ticket(ticket_cli(pristine))
    target = verify_ticket(ticket, engine_public_key(pristine), now=datetime.now(UTC))
    assert target == ConsoleTarget("10.0.0.7", 5900, False, None, None)
    fields = fields_of(ticket)
    assert fields["certificate"] == HostPaths.under(pristine).engine_cert.read_text()


def test_ssl_target_path_and_token_reach_the_ticket(pristine: Path) -> None:
    done = ticket_cli(pristine, "--ssl-target", "--path", "/vnc", "--token", "t0k")
    target = verify_ticket(printed_ticket(done), engine_public_key(pristine), now=datetime.now(UTC))
    assert (target.ssl_target, target.path, target.token) == (True, "/vnc", "t0k")


@pytest.mark.parametrize(("args", "seconds"), [((), 120), (("--ttl", "30"), 30)])
def test_the_ticket_lives_ttl_seconds(pristine: Path, args: tuple[str, ...], seconds: int) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    fields = fields_of(printed_ticket(ticket_cli(pristine, *args)))
    valid_from = datetime.strptime(fields["validFrom"], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    valid_to = datetime.strptime(fields["validTo"], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    assert valid_to - valid_from == timedelta(seconds=seconds)
    assert before <= valid_from <= datetime.now(UTC)
    assert json.loads(unquote(fields["data"]))["port"] == "5900"


def test_the_p12_alone_is_enough_as_on_an_ovirt_engine(root: Path) -> None:
    # oVirt keeps the engine key only in keys/engine.p12.
    HostPaths.under(root).engine_key.unlink()
    ticket = printed_ticket(ticket_cli(root))
    assert verify_ticket(ticket, engine_public_key(root), now=datetime.now(UTC)).port == 5900


def test_the_pem_key_serves_when_there_is_no_p12(root: Path) -> None:
    HostPaths.under(root).engine_p12.unlink()
    ticket = printed_ticket(ticket_cli(root))
    assert verify_ticket(ticket, engine_public_key(root), now=datetime.now(UTC)).port == 5900


def test_a_p12_that_will_not_open_is_a_clean_error(root: Path) -> None:
    paths = HostPaths.under(root)
    key = serialization.load_pem_private_key(paths.engine_key.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)  # the engine's key, as oVirt makes it
    cert = x509.load_pem_x509_certificate(paths.engine_cert.read_bytes())
    other_password = serialization.BestAvailableEncryption(b"not-mypass")
    paths.engine_p12.write_bytes(
        pkcs12.serialize_key_and_certificates(ENGINE_P12_ALIAS, key, cert, None, other_password)
    )
    stderr = clean_failure(ticket_cli(root), 1)
    assert "engine.p12 cannot be opened with oVirt's store password" in stderr


def test_a_key_that_is_not_the_certificates_is_refused(root: Path) -> None:
    paths = HostPaths.under(root)
    paths.engine_p12.unlink()
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    paths.engine_key.write_bytes(
        stranger.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    stderr = clean_failure(ticket_cli(root), 1)
    assert "does not belong to" in stderr and "engine.cer" in stderr


def test_missing_pki_names_engine_init(tmp_path: Path) -> None:
    stderr = clean_failure(ticket_cli(tmp_path), 1)
    assert "wsproxy-agent engine init" in stderr


def test_a_missing_key_names_engine_init(root: Path) -> None:
    paths = HostPaths.under(root)
    paths.engine_p12.unlink()
    paths.engine_key.unlink()
    stderr = clean_failure(ticket_cli(root), 1)
    assert "engine key is missing" in stderr and "wsproxy-agent engine init" in stderr


@pytest.mark.parametrize("port", ["0", "65536", "vnc", "-1"])
def test_a_bad_port_is_a_usage_error(pristine: Path, port: str) -> None:
    done = cli(pristine, "engine", "ticket", "--host", "h", "--port", port)
    assert "Invalid value for '--port'" in clean_failure(done, 2)


@pytest.mark.parametrize("ttl", ["0", "-5", "2m", "86401"])
def test_a_bad_ttl_is_a_usage_error(pristine: Path, ttl: str) -> None:
    assert "Invalid value for '--ttl'" in clean_failure(ticket_cli(pristine, "--ttl", ttl), 2)


def test_a_host_with_a_control_character_is_refused(pristine: Path) -> None:
    done = cli(pristine, "engine", "ticket", "--host", "vm\nhost", "--port", "5900")
    assert "without spaces or control characters" in clean_failure(done, 1)


def test_help_says_what_it_is_for_and_where_the_ticket_goes(pristine: Path) -> None:
    done = cli(pristine, "engine", "ticket", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "without a running engine" in text
    assert "wss://<proxy>:<port>/<ticket>" in text

"""Bad input at enrollment: each refused with a clear error and no change of state."""

from __future__ import annotations

import base64
import re
import subprocess

import pytest
from cryptography import x509

from protocol import catalogue as cat
from protocol import identity
from tests.e2e.conftest import PROXY_FQDN, Hosts, wait_for
from tests.e2e.rawclient import RawProxy, csr, enroll_body, tls_key

CERT = "etc/pki/ovirt-engine/certs/websocket-proxy.cer"


def assert_nothing_enrolled(h: Hosts) -> None:
    assert h.registry() == []
    assert not h.proxy_file(CERT).exists()
    assert h.engine_config.calls == []


def assert_clean_error(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


def test_expired_token(running: Hosts) -> None:
    h = running
    join = h.token("--ttl", "1s")
    import time

    time.sleep(2.2)
    assert_clean_error(h.join(join), "has expired", "create a new one")
    assert_nothing_enrolled(h)


def test_reused_token(running: Hosts) -> None:
    h = running
    join = h.token()
    assert h.join(join).returncode == 0
    [first] = h.registry()
    second_host = h.top / "p2"
    (second_host / "etc/wsproxy-agent").mkdir(parents=True)
    (second_host / "etc/wsproxy-agent/proxy.toml").write_text(
        (h.proxy / "etc/wsproxy-agent/proxy.toml").read_text()
    )
    assert_clean_error(h.join(join, root=second_host), "already used")
    [after] = h.registry()
    assert after["fingerprint"] == first["fingerprint"] and after["serial"] == first["serial"]
    assert not (second_host / CERT).exists()


def test_token_for_another_fqdn(running: Hosts) -> None:
    h = running
    assert_clean_error(h.join(h.token(proxy="other.e2e.test")), "was made for other.e2e.test")
    assert_nothing_enrolled(h)


def test_wrong_identity_pin_is_refused_by_the_proxy(running: Hosts) -> None:
    h = running
    join = h.token()
    impostor = (
        base64.urlsafe_b64encode(identity.public_raw(identity.generate())).decode().rstrip("=")
    )
    forged = re.sub(r"pin=[^&]+", f"pin={impostor}", join)
    result = h.join(forged, "--timeout", "8")
    assert result.returncode == 1
    assert "answered with key" in result.stderr and "pins" in result.stderr
    assert_nothing_enrolled(h)
    # The token was not spent by the refused attempt: the right join string still works.
    assert h.join(join).returncode == 0


def test_wrong_curve_key_never_gets_past_the_handshake(running: Hosts) -> None:
    h = running
    join = h.token()
    other_curve = base64.urlsafe_b64encode(b"\x01" * 32).decode().rstrip("=")
    result = h.join(re.sub(r"curve=[^&]+", f"curve={other_curve}", join), "--timeout", "3")
    assert result.returncode == 1
    assert "No CurveZMQ handshake" in result.stderr
    assert_nothing_enrolled(h)


@pytest.mark.parametrize("bad", ["../../etc", "", "a" * 300, "bad_name.example", "-x.example"])
def test_invalid_fqdn_on_the_command_line(running: Hosts, bad: str) -> None:
    h = running
    result = h.cli(h.proxy, "proxy", "join", h.token(), "--fqdn", bad, "--timeout", "5")
    assert_clean_error(result, "host name")
    assert_nothing_enrolled(h)
    assert not (h.proxy / "var/lib/wsproxy-agent").exists()


@pytest.fixture
def raw(running: Hosts):  # type: ignore[no-untyped-def]
    client = RawProxy(running.engine, running.port)
    yield client
    client.close()


@pytest.mark.parametrize(
    "fqdn", ["../../etc", "a\x00b.example", "x" * 300, "UPPER.example", "trailing.dot."]
)
def test_invalid_fqdn_on_the_wire(running: Hosts, raw: RawProxy, fqdn: str) -> None:
    body = enroll_body(raw, csr(tls_key("ec"), "ok.example"), fqdn)
    body_ok = dict(body, fqdn="ok.example")
    # Build a valid message, then the body with the bad name: seal() itself refuses it, so
    # forge the frames the way an attacker would, below the helper.
    from protocol import codec
    from protocol.envelope import signed_bytes

    raw.send(cat.ENROLL_REQUEST, body_ok)  # proves the channel works
    ok_reply = raw.reply()
    assert ok_reply is not None and ok_reply.type == cat.ENROLL_PENDING
    envelope = {
        "v": 1,
        "type": cat.ENROLL_REQUEST,
        "id": b"\x07" * 16,
        "re": None,
        "ts": __import__("time").time_ns() // 1_000_000,
        "from": raw.fp,
        "to": raw.engine_fp,
        "body": body,
    }
    payload = codec.encode(envelope)
    raw.send_frames([payload, identity.sign(raw.key, signed_bytes(payload))])
    reply = raw.reply()
    assert reply is not None and reply.type == cat.ERROR
    assert reply.body["code"] == "bad_request" and "fqdn" in str(reply.body["message"])
    assert [r["fqdn"] for r in running.registry()] == ["ok.example"]


def test_csr_with_broken_signature(running: Hosts, raw: RawProxy) -> None:
    good = csr(tls_key(), PROXY_FQDN)
    der = bytearray(
        x509.load_pem_x509_csr(good.encode()).public_bytes(
            __import__("cryptography").hazmat.primitives.serialization.Encoding.DER
        )
    )
    der[-5] ^= 0xFF  # inside the signature
    pem = (
        "-----BEGIN CERTIFICATE REQUEST-----\n"
        + base64.encodebytes(bytes(der)).decode()
        + "-----END CERTIFICATE REQUEST-----\n"
    )
    token = running.token()
    _send_with_token(raw, token, pem)
    reply = raw.reply()
    assert reply is not None and reply.type == cat.ERROR and reply.body["code"] == "bad_request"
    assert "signature" in str(reply.body["message"])
    assert running.registry() == []
    tokens = running.cli(running.engine, "token", "list", "--json", check=True).stdout
    assert '"state": "valid"' in tokens  # the token is not spent


def test_csr_asking_for_ca_and_extra_sans_gets_only_the_profile(
    running: Hosts, raw: RawProxy
) -> None:
    pem = csr(
        tls_key(),
        PROXY_FQDN,
        sans=[PROXY_FQDN, "*.e2e.test", "engine.e2e.test"],
        ca=True,
        key_cert_sign=True,
    )
    _send_with_token(raw, running.token(), pem)
    reply = raw.reply()
    assert reply is not None and reply.type == cat.ENROLL_APPROVED, reply
    cert = x509.load_pem_x509_certificate(str(reply.body["cert"]).encode())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [PROXY_FQDN]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign is False and usage.crl_sign is False
    wait_for(
        lambda: "csr_requests_ignored" in running.engine_log(), "the engine to log what it ignored"
    )


def test_weak_key_is_refused(running: Hosts, raw: RawProxy) -> None:
    _send_with_token(raw, running.token(), csr(tls_key("rsa", 1024), PROXY_FQDN))
    reply = raw.reply()
    assert reply is not None and reply.type == cat.ERROR and reply.body["code"] == "bad_request"
    assert running.registry() == []


def test_engine_fqdn_cannot_be_taken(running: Hosts, raw: RawProxy) -> None:
    raw.send(
        cat.ENROLL_REQUEST,
        enroll_body(raw, csr(tls_key("ec"), "engine.e2e.test"), "engine.e2e.test"),
    )
    reply = raw.reply()
    assert reply is not None and reply.type == cat.ERROR and reply.body["code"] == "unauthorized"
    assert running.registry() == []


def _send_with_token(raw: RawProxy, join: str, csr_pem: str) -> None:
    from protocol import joinstring, tokens

    token = joinstring.parse(join).token
    assert token is not None
    public = identity.public_raw(raw.key)

    def body(msg_id: bytes) -> dict[str, object]:
        return {
            **enroll_body(raw, csr_pem, PROXY_FQDN),
            "token_id": token.id,
            "token_proof": tokens.proof(token.proof_key, public, csr_pem.encode(), msg_id),
        }

    msg_id = __import__("secrets").token_bytes(16)
    raw.send(cat.ENROLL_REQUEST, body(msg_id), msg_id=msg_id)

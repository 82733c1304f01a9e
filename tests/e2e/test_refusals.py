"""Bad input at enrollment: each refused with a clear error and no change of state."""

from __future__ import annotations

import base64
import re
import subprocess

import pytest

from protocol import identity
from tests.e2e.conftest import Hosts

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

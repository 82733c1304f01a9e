"""The engine daemon SIGKILLed mid-enrollment, mid-renewal and mid-activation, on two hosts.

Each kill lands at a point a stand-in holds open, never after a sleep: oVirt's signing script
holding once it has signed (the certificate exists; the engine has neither recorded nor
answered it), or engine-config hanging. After the restart the proxy's own retries finish the
work, and every request is signed once: oVirt's CA database (the stand-in's ``openssl ca``
index), the registry and the installed certificate agree.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from tests.e2e.conftest import PROXY_FQDN, STANDINS, Hosts, wait_for
from tests.twohosts.netns import Link

CERT = "etc/pki/ovirt-engine/certs/websocket-proxy.cer"
# The registry's audit actions that record a signing.
SIGNED = ("request_with_token", "sign", "renew")


@dataclass
class OvirtSigning:
    """oVirt's pki-enroll-request.sh stand-in in the engine's root, and its CA database."""

    script: Path
    pki: Path

    def hold(self) -> None:
        self.script.with_name(self.script.name + ".hold").write_text("")

    def held(self) -> bool:
        return self.script.with_name(self.script.name + ".held").exists()

    def release(self) -> None:
        self.script.with_name(self.script.name + ".held").unlink(missing_ok=True)
        self.script.with_name(self.script.name + ".hold").unlink(missing_ok=True)

    def calls(self) -> int:
        log = self.script.with_name(self.script.name + ".calls")
        return len(log.read_text().splitlines()) if log.exists() else 0

    def issued_serials(self) -> list[int]:
        """Every serial the CA has issued, from ``openssl ca``'s index (database.txt)."""
        index = self.pki / "database.txt"
        lines = index.read_text().splitlines() if index.exists() else []
        return [int(line.split("\t")[3], 16) for line in lines]


@pytest.fixture
def signing(two_hosts: tuple[Hosts, Link]) -> Iterator[OvirtSigning]:
    """The engine signs through oVirt's script ('engine init' picks it when it exists)."""
    h, _ = two_hosts
    script = h.engine / "usr/share/ovirt-engine/bin/pki-enroll-request.sh"
    script.parent.mkdir(parents=True)
    shutil.copy(STANDINS / "pki-enroll-request.sh", script)
    h.engine_init()
    assert 'signer = "ovirt"' in (h.engine / "etc/wsproxy-agent/engine.toml").read_text()
    held = OvirtSigning(script, h.engine / "etc/pki/ovirt-engine")
    yield held
    held.release()  # a held script then exits by itself


@contextlib.contextmanager
def background(h: Hosts, *args: str) -> Iterator[subprocess.Popen[str]]:
    """A command on the proxy host that the test waits for; stopped if the test fails first."""
    proc = h.cli_background(h.proxy, *args)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, out + err
    return out


def service_restarts(h: Hosts) -> int:
    return len([args for _, args in h.systemctl_proxy.calls if args[0] == "restart"])


def installed_serial(h: Hosts) -> str:
    cert = x509.load_pem_x509_certificate(h.proxy_file(CERT).read_bytes())
    return format(cert.serial_number, "x")


def assert_one_certificate_per_request(h: Hosts, signing: OvirtSigning, requests: int) -> None:
    """One active row whose certificate is the installed one and the CA's latest, no extras."""
    [row] = h.registry()
    assert row["state"] == "active" and row["active"] == 1
    assert row["serial"] == installed_serial(h)
    assert row["cert_pem"] == h.proxy_file(CERT).read_text()
    serials = signing.issued_serials()
    assert len(serials) == requests, serials
    assert serials[-1] == int(str(row["serial"]), 16)
    assert len([a for a in h.audit() if a["action"] in SIGNED]) == requests
    assert not list((h.proxy / "var/lib/wsproxy-agent").glob("pending-*"))


def test_token_join_when_the_engine_dies_after_signing(
    two_hosts: tuple[Hosts, Link], signing: OvirtSigning
) -> None:
    h, _ = two_hosts
    engine = h.start_engine()
    signing.hold()
    with background(
        h, "proxy", "join", h.token(), "--fqdn", PROXY_FQDN, "--timeout", "150"
    ) as join:
        wait_for(signing.held, "oVirt's script to sign the request", 60)
        assert len(signing.issued_serials()) == 1 and h.registry() == []
        h.kill_engine(engine)
        signing.release()
        h.start_engine()
        out = finish(join)
    assert "engine switched over" in out
    assert_one_certificate_per_request(h, signing, requests=1)
    assert signing.calls() == 1  # the retry was answered with what the script had signed
    [token] = json.loads(h.cli(h.engine, "token", "list", "--json", check=True).stdout)
    assert token["state"] == "used"


def test_pending_request_when_the_engine_dies_waiting_and_signing(
    two_hosts: tuple[Hosts, Link], signing: OvirtSigning
) -> None:
    h, _ = two_hosts
    engine = h.start_engine()
    with background(h, *h.pending_join_args(timeout="150")) as join:
        wait_for(lambda: [r["state"] for r in h.registry()] == ["pending"], "a pending request")
        h.kill_engine(engine)  # while the request waits for an operator
        engine = h.start_engine()
        signing.hold()
        h.cli(h.engine, "keys", "accept", PROXY_FQDN, check=True)
        # The proxy polls; the engine signs the accepted request and is killed there.
        wait_for(signing.held, "oVirt's script to sign the accepted request", 60)
        [accepted] = h.registry()
        assert accepted["cert_pem"] is None
        h.kill_engine(engine)
        signing.release()
        h.start_engine()
        finish(join)
    assert_one_certificate_per_request(h, signing, requests=1)
    assert signing.calls() == 1


def test_renewal_when_the_engine_dies_after_signing(
    two_hosts: tuple[Hosts, Link], signing: OvirtSigning
) -> None:
    h, _ = two_hosts
    engine = h.start_engine()
    joined = h.join(h.token())
    assert joined.returncode == 0, joined.stdout + joined.stderr
    first = installed_serial(h)
    restarts = service_restarts(h)
    h.configure(h.proxy, heartbeat_interval=2)
    h.start_proxy()
    wait_for(lambda: h.registry()[0]["health"] is not None, "a heartbeat (the engine's route)")

    signing.hold()
    h.cli(h.engine, "engine", "renew", PROXY_FQDN, check=True)
    wait_for(signing.held, "oVirt's script to sign the renewal", 60)
    assert len(signing.issued_serials()) == 2 and h.registry()[0]["serial"] == first
    h.kill_engine(engine)
    signing.release()
    h.start_engine()

    wait_for(lambda: '"renewal_done"' in h.proxy_log(), "the renewal to finish", 120)
    assert installed_serial(h) != first
    assert_one_certificate_per_request(h, signing, requests=2)
    assert signing.calls() == 2
    # The daemon's own request retried through the restart; it did not fail and back off.
    assert '"renewal_failed"' not in h.proxy_log()
    assert service_restarts(h) == restarts + 1
    state = json.loads((h.proxy / "var/lib/wsproxy-agent/proxy-state.json").read_text())
    assert state["serial"] == h.registry()[0]["serial"]


def test_activation_when_the_engine_dies_in_engine_config(
    two_hosts: tuple[Hosts, Link],
) -> None:
    h, _ = two_hosts
    h.engine_init()
    engine = h.start_engine()
    h.engine_config.hang()  # the engine will be stuck in engine-config when it is killed
    with background(
        h, "proxy", "join", h.token(), "--fqdn", PROXY_FQDN, "--timeout", "150"
    ) as join:
        wait_for(lambda: len(h.engine_config.calls) >= 1, "the engine to start switching over")
        [before] = h.registry()
        assert before["state"] == "installed"
        h.kill_engine(engine)
        h.engine_config.heal()
        h.start_engine()
        out = finish(join)
    assert "engine switched over" in out
    [after] = h.registry()
    assert after["state"] == "active" and after["active"] == 1
    assert after["serial"] == before["serial"] == installed_serial(h)
    assert len([a for a in h.audit() if a["action"] in SIGNED]) == 1
    sets = [args for _, args in h.engine_config.calls if args[0] == "-s"]
    assert sets == [["-s", f"WebSocketProxy={PROXY_FQDN}:6100"]]
    assert after["replaced_value"] == "Engine:6100"
    assert [args for _, args in h.systemctl_engine.calls] == [["restart", "ovirt-engine.service"]]

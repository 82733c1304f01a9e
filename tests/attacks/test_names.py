"""FQDNs built to become paths, to inject into oVirt's script, or to collide with an enrolled
name: each refused on the wire, before any handler, file or row (CVE-2017-14695,
CVE-2020-11652 in Salt).

``seal()`` refuses to build these messages, so they are forged below it (tests/attacks/
forge.py) and genuinely signed by the attacker's key: only the name is wrong. The refusal
must come from the receive pipeline's schema check (it names the field 'fqdn'); the
registry-side ``check_fqdn`` behind it is a second line, not the one tested here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from protocol import catalogue as cat
from protocol import identity, tokens
from protocol.tokens import Token
from tests.attacks.conftest import Target
from tests.attacks.enrol import (
    answer,
    assert_refused,
    planted_token,
    send_enroll,
    shared_target,
    source,
    token_states,
)
from tests.attacks.forge import envelope, signed
from tests.e2e.conftest import PROXY_FQDN
from tests.e2e.rawclient import RawProxy, csr, enroll_body, tls_key

REQUESTS_DIR = "etc/pki/ovirt-engine/requests"
# DNS allows 253 characters; every label here is fine, the whole is one too long.
TOO_LONG = ".".join(["a" * 63] * 3 + ["a" * 62])

BAD_NAMES = {
    "dot-dot": "../x",
    "traversal": "../../../../../../tmp/wsproxy-escape",
    "slash": "a/b",
    "absolute": "/etc/passwd",
    "nul": "proxy\x00.e2e.test",
    "newline": "proxy.e2e.test\nDNS:*.e2e.test",
    "space": " proxy.e2e.test",
    "too-long": TOO_LONG,
    "long-label": "a" * 64 + ".e2e.test",
    "upper": PROXY_FQDN.upper(),
    "mixed-case": "Proxy.E2E.test",
    "trailing-dot": PROXY_FQDN + ".",
    "cyrillic-o": "pr\u043exy.e2e.test",
    "fullwidth": "\uff50\uff52\uff4f\uff58\uff59.e2e.test",
    "punycode-of-ascii": "xn--proxy-.e2e.test",
    "leading-hyphen": "-proxy.e2e.test",
    "empty": "",
    # Names that would inject into oVirt's script arguments: --san=DNS:<fqdn> and
    # --subject=<CA subject>/CN=<fqdn>.
    "san-injection": "rogue.e2e.test,DNS:*.e2e.test",
    "subject-injection": "rogue.e2e.test/CN=engine.e2e.test",
}


@pytest.fixture(scope="module")
def world() -> Iterator[Target]:
    with shared_target() as t:
        yield t


def send_forged_enroll(
    client: RawProxy, fqdn: str, request: str | None = None, token: Token | None = None
) -> bytes:
    """An enroll_request whose only fault is its fqdn, signed by the client's own key (and
    with a valid proof of ``token``)."""
    request = request or csr(tls_key("ec"), PROXY_FQDN)
    body: dict[str, Any] = {**enroll_body(client, request, PROXY_FQDN), "fqdn": fqdn}
    env = envelope(client, cat.ENROLL_REQUEST, body)
    if token is not None:
        public = identity.public_raw(client.key)
        body["token_id"] = token.id
        body["token_proof"] = tokens.proof(token.proof_key, public, request.encode(), env["id"])
    client.send_frames(signed(client.key, env))
    return bytes(env["id"])


def assert_refused_by_the_schema(client: RawProxy, sent: bytes) -> None:
    assert_refused(answer(client, sent), "bad_request", "Field 'fqdn'")


@pytest.mark.parametrize("name", list(BAD_NAMES))
def test_bad_name_is_refused_on_the_wire(world: Target, name: str) -> None:
    before = world.snapshot()
    client = world.attacker(source=source(10 + list(BAD_NAMES).index(name)))
    sent = send_forged_enroll(client, BAD_NAMES[name])
    assert_refused_by_the_schema(client, sent)
    assert list((world.engine_root / REQUESTS_DIR).iterdir()) == []
    world.assert_serves_legit()
    world.assert_unchanged(before)


def test_a_valid_punycode_homograph_is_a_name_of_its_own(world: Target) -> None:
    """``xn--prxy-65d`` is 'pr<U+043E>xy', with a Cyrillic o: a valid DNS name, so it is
    not refused, but it cannot reach the enrolled proxy.e2e.test's entry, and the operator
    sees it in its A-label form, which does not read as 'proxy'."""
    homograph = "pr\u043exy".encode("idna").decode() + ".e2e.test"
    before = world.snapshot()
    client = world.attacker(source=source(40))
    reply = answer(client, send_enroll(client, csr(tls_key("ec"), homograph), homograph))
    assert reply.type == cat.ENROLL_PENDING, reply.body
    after = world.snapshot()
    assert [r for r in after.rows["proxies"] if r["fqdn"] != homograph] == before.rows["proxies"]
    assert after.files == before.files and after.calls == before.calls
    pending = [k for k in world.hosts.key_list() if k["fqdn"] == homograph]
    assert [k["state"] for k in pending] == ["pending"], pending
    world.assert_serves_legit()


# Through oVirt's script: a token for the bad name got into the registry anyway, so only
# the wire check stands between the name and the script's arguments and file names.


@pytest.fixture(scope="module")
def ovirt_world() -> Iterator[Target]:
    with shared_target("ovirt") as t:
        yield t


@pytest.mark.parametrize("name", ["traversal", "san-injection"])
def test_bad_name_never_reaches_ovirts_script(ovirt_world: Target, name: str) -> None:
    world = ovirt_world
    fqdn = BAD_NAMES[name]
    token = planted_token(world, fqdn)
    script_calls = world.engine_root / "usr/share/ovirt-engine/bin/pki-enroll-request.sh.calls"
    calls_before = script_calls.read_text()
    requests_before = sorted(p.name for p in (world.engine_root / REQUESTS_DIR).iterdir())
    outside_before = sorted(p.name for p in world.hosts.top.iterdir())
    before = world.snapshot()

    client = world.attacker(source=source(50 + ["traversal", "san-injection"].index(name)))
    # The CSR names the bad name too, so no later check stops it for another reason.
    sent = send_forged_enroll(client, fqdn, csr(tls_key("ec"), fqdn), token)

    assert_refused_by_the_schema(client, sent)
    assert script_calls.read_text() == calls_before, "the script ran"
    assert sorted(p.name for p in (world.engine_root / REQUESTS_DIR).iterdir()) == requests_before
    assert sorted(p.name for p in world.hosts.top.iterdir()) == outside_before
    assert token_states(world)[token.id] == ("valid", 0)
    world.assert_serves_legit()
    world.assert_unchanged(before)

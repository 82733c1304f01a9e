"""Enrollment by hand for the claim, CSR and name attacks: token proofs, token states, and
a target whose engine signs through oVirt's script.

A target made here is shared by the tests of a module (engine init makes a 3072-bit CA key,
which this machine is slow at): each test takes its own snapshot, sends from its own source
address (so no test spends another's per-address budget) and uses its own tokens.
"""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from engine_agent.registry import Registry, TokenRow, now_s
from protocol import catalogue as cat
from protocol import identity, joinstring, tokens
from protocol.envelope import Message
from tests.attacks.conftest import STATE, Target, running_target
from tests.e2e.conftest import STANDINS, Hosts
from tests.e2e.rawclient import RawProxy, enroll_body

OVIRT_SCRIPT = "usr/share/ovirt-engine/bin/pki-enroll-request.sh"


def install_ovirt_script(h: Hosts) -> None:
    """oVirt's pki-enroll-request.sh (the recording stand-in): engine init then picks the
    ovirt signer, whose CA database (database.txt, serial.txt) records every signing."""
    script = h.engine / OVIRT_SCRIPT
    script.parent.mkdir(parents=True)
    shutil.copy(STANDINS / "pki-enroll-request.sh", script)


@contextmanager
def shared_target(signer: str = "native") -> Iterator[Target]:
    with running_target(install_ovirt_script if signer == "ovirt" else None) as t:
        config = (t.engine_root / "etc/wsproxy-agent/engine.toml").read_text()
        assert f'signer = "{signer}"' in config, config
        yield t


def source(n: int) -> str:
    """A source address of its own for one test (127.0.0.1 and .2 are the fixture's)."""
    assert 10 <= n < 255
    return f"127.0.0.{n}"


def fresh_token(target: Target, fqdn: str) -> tokens.Token:
    """A token made with the real CLI for ``fqdn`` (port 6100)."""
    token = joinstring.parse(target.hosts.token(proxy=fqdn)).token
    assert token is not None
    return token


def planted_token(target: Target, fqdn: str) -> tokens.Token:
    """A valid token for a name the CLI refuses to make one for, written straight into the
    registry: what a token made before the CLI checked, or by a buggy tool, looks like."""
    token = tokens.generate()
    registry = Registry(target.engine_root / STATE / "registry.sqlite")
    try:
        registry.add_token(
            TokenRow(
                id=token.id,
                proof_key=token.proof_key,
                proxy_fqdn=fqdn,
                port=6100,
                activate=True,
                created_at=now_s(),
                expires_at=now_s() + 3600,
                used_at=None,
                used_by=None,
                used_csr_sha256=None,
                failures=0,
                revoked=False,
            )
        )
    finally:
        registry.close()
    return token


def send_enroll(
    client: RawProxy, csr_pem: str, fqdn: str, token: tokens.Token | None = None
) -> bytes:
    """An enroll_request for ``fqdn`` with ``csr_pem``, with a valid proof when ``token``."""
    body: dict[str, Any] = enroll_body(client, csr_pem, fqdn)
    msg_id = secrets.token_bytes(16)
    if token is not None:
        public = identity.public_raw(client.key)
        body["token_id"] = token.id
        body["token_proof"] = tokens.proof(token.proof_key, public, csr_pem.encode(), msg_id)
    return client.send(cat.ENROLL_REQUEST, body, msg_id=msg_id)


def answer(client: RawProxy, sent: bytes) -> Message:
    reply = client.reply(15.0)
    assert reply is not None, "the engine did not answer"
    assert reply.re == sent, reply
    return reply


def assert_refused(reply: Message, code: str, *phrases: str) -> None:
    assert reply.type == cat.ERROR, f"not refused: {reply.type} (fields {sorted(reply.body)})"
    message = str(reply.body["message"])
    assert reply.body["code"] == code, f"refused as {reply.body['code']!r}: {message}"
    for phrase in phrases:
        assert phrase in message, message


def token_states(target: Target) -> dict[str, tuple[str, int]]:
    """Per token id, its state and failure count as the operator's 'token list' shows them."""
    out = target.hosts.cli(target.engine_root, "token", "list", "--json", check=True).stdout
    return {t["id"]: (t["state"], t["failures"]) for t in json.loads(out)}

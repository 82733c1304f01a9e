"""Guessing join tokens: wrong proofs for one token id, and from one address.

Both are rate-limited, the token locks after ``token_max_failures`` wrong proofs, and every
refusal past a limit is cheap: no audit row, no log line, no answer for a spent address.
"""

from __future__ import annotations

import secrets
from typing import Any

from protocol import catalogue as cat
from protocol import identity, joinstring, tokens
from protocol.envelope import Message
from tests.attacks.conftest import ATTACKER_ADDRESS, Snapshot, Target
from tests.attacks.forge import engine_events
from tests.e2e.conftest import PROXY_FQDN
from tests.e2e.rawclient import RawProxy, csr, enroll_body, tls_key

CSR = csr(tls_key("ec"), PROXY_FQDN)


def guess(raw: RawProxy, token_id: str, proof_key: bytes | None = None) -> Message | None:
    """One enrollment request with a token proof: right under ``proof_key``, else random."""
    msg_id = secrets.token_bytes(16)
    proof = (
        tokens.proof(proof_key, identity.public_raw(raw.key), CSR.encode(), msg_id)
        if proof_key
        else secrets.token_bytes(32)
    )
    body = {**enroll_body(raw, CSR, PROXY_FQDN), "token_id": token_id, "token_proof": proof}
    raw.send(cat.ENROLL_REQUEST, body, msg_id=msg_id)
    return raw.reply(3.0)


def error_code(reply: Message | None) -> str | None:
    if reply is None:
        return None
    assert reply.type == cat.ERROR, reply
    return str(reply.body["code"])


def token_row(t: Target, token_id: str) -> dict[str, Any]:
    [row] = [r for r in t.snapshot().rows["tokens"] if r["id"] == token_id]
    return row


def decisions(t: Target, verdict: str) -> list[dict[str, Any]]:
    return [e for e in engine_events(t, "security_decision") if e["decision"] == verdict]


def with_failures(before: Snapshot, token_id: str, failures: int) -> Snapshot:
    """``before`` with the one change a refused proof is meant to make: its token's count."""
    before.rows["tokens"] = [
        dict(r, failures=failures) if r["id"] == token_id else r for r in before.rows["tokens"]
    ]
    return before


def new_token(t: Target) -> tokens.Token:
    token = joinstring.parse(t.hosts.token()).token
    assert token is not None
    return token


def test_wrong_proofs_for_one_token_are_throttled_then_cheap(target: Target) -> None:
    token = new_token(target)
    before = target.snapshot()
    audit_before = len(target.hosts.audit())
    # Each guess from its own address: the limit is the token's, not the address's.
    codes = [
        error_code(guess(target.attacker(source=f"127.0.1.{i}"), token.id)) for i in range(1, 7)
    ]
    assert codes[:2] == ["unauthorized", "unauthorized"]
    assert codes[2:] == ["rate_limited"] * 4
    # Only the two proofs that were checked cost anything: a failure each, an audit row each.
    assert token_row(target, token.id)["failures"] == 2
    assert len(target.hosts.audit()) == audit_before + 2
    [throttle] = decisions(target, "throttle")
    assert throttle["who"] == f"token {token.id}"
    target.assert_serves_legit()
    target.assert_unchanged(with_failures(before, token.id, 2))


def test_a_token_locks_after_its_bound_even_for_the_right_proof(target: Target) -> None:
    target.restart_engine(token_max_failures=2)
    token = new_token(target)
    before = target.snapshot()
    attacker = target.attacker()
    assert [error_code(guess(attacker, token.id)) for _ in range(2)] == ["unauthorized"] * 2
    [lock] = decisions(target, "lock")
    assert lock["who"] == f"token {token.id}" and lock["last_sender"] == attacker.fp
    audit_rows = len(target.hosts.audit())
    # The right proof, from the right address: the lock is checked before anything else.
    honest = target.attacker(source="127.0.0.1")
    reply = guess(honest, token.id, token.proof_key)
    assert error_code(reply) == "rate_limited"
    assert reply is not None and "locked" in str(reply.body["message"])
    assert len(target.hosts.audit()) == audit_rows  # refusals of a locked token are quiet
    assert not [r for r in target.hosts.registry() if r["fingerprint"] == honest.fp]
    target.assert_serves_legit()
    target.assert_unchanged(with_failures(before, token.id, 2))


def test_guesses_from_one_address_are_throttled_and_then_unanswered(target: Target) -> None:
    target.restart_engine(failures_per_address=4)
    before = target.snapshot()
    audit_before = len(target.hosts.audit())
    attacker = target.attacker()
    # Guessing token ids: a new random id each time, as someone without a join string would.
    replies = [guess(attacker, tokens.generate().id) for _ in range(8)]
    assert [error_code(r) for r in replies[:4]] == ["unauthorized"] * 4
    assert replies[4:] == [None] * 4  # refused before the signature is checked; no answer
    [throttle] = decisions(target, "throttle")
    assert throttle["who"] == ATTACKER_ADDRESS
    # Four refusals and one throttle decision reached the audit trail; the rest cost nothing.
    assert len(target.hosts.audit()) == audit_before + 5
    # Each checked guess was logged once; the unanswered ones were not logged at all.
    assert len(decisions(target, "refuse")) == 4
    assert "message_refused" not in target.engine_log()
    # The limit is the address's: the enrolled proxy and another address are still answered.
    target.assert_serves_legit()
    assert error_code(guess(target.attacker(source="127.0.0.3"), tokens.generate().id)) == (
        "unauthorized"
    )
    rows = target.snapshot().rows
    assert rows == before.rows

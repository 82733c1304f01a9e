"""The engine's enrollment policy: who gets a certificate, and when.

Handlers take a message that already passed the receive pipeline (signature checked)
and return the reply to send. Every refusal is a typed ProtocolError; every decision is
written to the registry's audit trail and logged once with who and why.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from engine_agent import pki
from engine_agent.registry import Proxy, Registry, now_s
from engine_agent.signer import Issued, Signer, SignerError
from engine_agent.throttle import Budget, Throttle
from protocol import catalogue as cat
from protocol import tokens
from protocol.codec import Value
from protocol.envelope import Message
from protocol.errors import (
    BadRequest,
    Expired,
    ProtocolError,
    RateLimited,
    Unauthorized,
)
from protocol.states import EngineEvent, EngineState
from wsproxy_agent import logs

# Rows whose key the receive pipeline trusts for non-enrollment messages.
TRUSTED_STATES = frozenset(
    {
        EngineState.APPROVED,
        EngineState.INSTALLED,
        EngineState.ACTIVE,
        EngineState.ACTIVATION_FAILED,
        EngineState.ENROLLED,
    }
)
PENDING_RETRY_S = 3
# Wrong proofs for one token: two at once, then one per 10 s, until the lock after
# ``token_max_failures``. A person retyping a join string is slower than that.
TOKEN_ATTEMPTS = Budget(burst=2, refill_per_s=0.1)


@dataclass(frozen=True)
class Reply:
    type: str
    body: dict[str, Value]


@dataclass(frozen=True)
class Bundle:
    """What every approval carries besides the proxy's own certificate."""

    ca_cert: str
    engine_cert: str
    lifetime_days: int


class Enrollment:
    def __init__(
        self,
        registry: Registry,
        signer: Signer,
        bundle: Bundle,
        *,
        engine_fqdn: str,
        max_pending: int,
        max_pending_per_address: int,
        token_max_failures: int,
        log: Any,
    ) -> None:
        self.registry = registry
        self.signer = signer
        self.bundle = bundle
        self.engine_fqdn = engine_fqdn
        self.max_pending = max_pending
        self.max_pending_per_address = max_pending_per_address
        self.token_max_failures = token_max_failures
        self.token_attempts = Throttle(TOKEN_ATTEMPTS)
        self.log = log

    # enroll_request; ``peer`` is the address it came from
    def on_enroll_request(self, msg: Message, peer: str) -> Reply:
        fqdn = msg.text("fqdn")
        if fqdn == self.engine_fqdn:
            raise self._refuse(
                msg, fqdn, Unauthorized("That name is the engine's own; a proxy cannot take it.")
            )
        if msg.body.get("token_id"):
            return self._with_token(msg, fqdn)
        return self._without_token(msg, fqdn, peer)

    def _with_token(self, msg: Message, fqdn: str) -> Reply:
        token_id = msg.text("token_id")
        csr = msg.text("csr")
        csr_hash = _sha256(csr)
        token = self.registry.token(token_id)
        if token is None:
            raise self._refuse(
                msg,
                fqdn,
                Unauthorized("No such join token; create one with 'wsproxy-agent token create'."),
            )
        # Refusals of a locked or throttled token are cheap and quiet: no audit row, no log
        # line each (the lock and the throttle were each logged once, when they began).
        if token.failures >= self.token_max_failures:
            raise RateLimited(
                "This token is locked after too many wrong proofs; create a new token."
            )
        now = time.monotonic()
        if self.token_attempts.blocked(token_id, now):
            wait = self.token_attempts.retry_after(token_id, now)
            raise RateLimited(
                f"Too many wrong proofs for token {token_id} just now; try again in {wait:.0f} s."
            )
        proof = msg.body.get("token_proof")
        identity_key = msg.blob("identity_key")
        if not isinstance(proof, bytes) or not tokens.proof_matches(
            token.proof_key, identity_key, csr.encode(), msg.id, proof
        ):
            raise self._wrong_proof(msg, fqdn, token_id, now)
        if token.revoked:
            raise self._refuse(
                msg, fqdn, Unauthorized(f"Token {token_id} was revoked; create a new one.")
            )
        if token.used_at is not None:
            existing = self.registry.proxy(fqdn)
            if (
                token.used_by == msg.sender
                and token.used_csr_sha256 == csr_hash
                and existing is not None
                and existing.fingerprint == msg.sender
                and existing.cert_pem
            ):
                return self._approved(existing)  # a retry of the request that used it
            raise self._refuse(
                msg, fqdn, Unauthorized(f"Token {token_id} was already used; create a new one.")
            )
        if token.expires_at < now_s():
            raise self._refuse(
                msg, fqdn, Expired(f"Token {token_id} has expired; create a new one.")
            )
        if token.proxy_fqdn != fqdn:
            raise self._refuse(
                msg,
                fqdn,
                Unauthorized(f"Token {token_id} was made for {token.proxy_fqdn}, not {fqdn}."),
            )
        if msg.number("port") != token.port:
            raise self._refuse(
                msg,
                fqdn,
                BadRequest(
                    f"Token {token_id} is for port {token.port}; join with --port {token.port}."
                ),
            )
        self._check_csr(msg, fqdn, csr)
        previous = self.registry.proxy(fqdn)
        issued, signing_ms = self._sign(csr, fqdn)
        why = f"join token {token_id}"
        if previous is not None and previous.fingerprint != msg.sender:
            why += f"; replaces key {previous.fingerprint} ({previous.state})"
        with self.registry.transaction() as db:
            self.registry.mark_token_used(db, token_id, msg.sender, csr_hash)
            self.registry.transition_within(
                db,
                fqdn,
                EngineEvent.REQUEST_WITH_TOKEN,
                actor=msg.sender,
                why=why,
                fingerprint=msg.sender,
                identity_key=identity_key,
                port=token.port,
                activate=int(token.activate),
                csr_sha256=csr_hash,
                csr_pem=csr,
                cert_pem=issued.cert_pem,
                serial=issued.serial,
                not_before=int(issued.not_before.timestamp()),
                not_after=int(issued.not_after.timestamp()),
                active=0 if previous is None else int(previous.active),
                activation_error=None,
                token_id=token_id,
            )
        logs.decision(
            self.log,
            "accept",
            who=msg.sender,
            why=why,
            fqdn=fqdn,
            serial=issued.serial,
            signing_ms=signing_ms,
        )
        approved = self.registry.proxy(fqdn)
        assert approved is not None
        return self._approved(approved)

    def _wrong_proof(self, msg: Message, fqdn: str, token_id: str, now: float) -> ProtocolError:
        failures = self.registry.count_token_failure(token_id)
        if self.token_attempts.charge(token_id, now):
            logs.decision(
                self.log,
                "throttle",
                who=f"token {token_id}",
                why="wrong proofs in quick succession",
            )
        if failures == self.token_max_failures:
            self.registry.audit(msg.sender, "token_lock", fqdn, msg.sender, f"token {token_id}")
            logs.decision(
                self.log,
                "lock",
                who=f"token {token_id}",
                why=f"{failures} wrong proofs",
                last_sender=msg.sender,
            )
        return self._refuse(
            msg,
            fqdn,
            Unauthorized(
                f"The token proof does not match token {token_id} "
                f"({failures} of {self.token_max_failures} tries used); copy the join string again."
            ),
        )

    def _without_token(self, msg: Message, fqdn: str, peer: str) -> Reply:
        csr = msg.text("csr")
        existing = self.registry.proxy(fqdn)
        if existing is not None and existing.fingerprint != msg.sender:
            raise self._refuse(
                msg,
                fqdn,
                Unauthorized(
                    f"{fqdn} is registered to another key ({existing.fingerprint}); "
                    "join with a token, or ask the operator to delete the old entry."
                ),
            )
        if existing is None or existing.state is EngineState.PENDING:
            return self._pending(msg, fqdn, csr, existing, peer)
        if existing.state is EngineState.REJECTED:
            return Reply(cat.ENROLL_REJECTED, {"reason": "The operator rejected this proxy's key."})
        if existing.state is EngineState.REVOKED:
            raise self._refuse(
                msg, fqdn, Unauthorized(f"{fqdn} was revoked; join again with a fresh token.")
            )
        if existing.csr_sha256 != _sha256(csr):
            raise self._refuse(
                msg,
                fqdn,
                BadRequest(f"{fqdn} is enrolled with another certificate request; renew instead."),
            )
        if existing.cert_pem is None:
            existing = self._sign_accepted(existing)
        return self._approved(existing)

    def _pending(
        self, msg: Message, fqdn: str, csr: str, existing: Proxy | None, peer: str
    ) -> Reply:
        if existing is None:
            if self.registry.count_in_state(EngineState.PENDING) >= self.max_pending:
                raise self._refuse(
                    msg,
                    fqdn,
                    RateLimited("Too many requests are waiting for an operator; try again later."),
                )
            if self.registry.count_pending_from(peer) >= self.max_pending_per_address:
                raise self._refuse(
                    msg,
                    fqdn,
                    RateLimited(
                        f"{self.max_pending_per_address} requests from {peer} already wait for "
                        "an operator; join with a token, or wait for a decision."
                    ),
                )
            self._check_csr(msg, fqdn, csr)
            identity_key = msg.body["identity_key"]
            self.registry.transition(
                fqdn,
                EngineEvent.REQUEST_WITHOUT_TOKEN,
                actor=msg.sender,
                why="request without token, waiting for an operator",
                fingerprint=msg.sender,
                identity_key=identity_key,
                port=msg.number("port"),
                csr_sha256=_sha256(csr),
                csr_pem=csr,
                address=peer,
            )
            logs.decision(
                self.log, "pending", who=msg.sender, why="no token", fqdn=fqdn, address=peer
            )
        elif existing.csr_sha256 != _sha256(csr):
            self._check_csr(msg, fqdn, csr)
            self.registry.update(fqdn, csr_sha256=_sha256(csr), csr_pem=csr)
        return Reply(
            cat.ENROLL_PENDING,
            {
                "fqdn": fqdn,
                "fingerprint": msg.sender,
                "retry_after": PENDING_RETRY_S,
                "message": "Waiting for an operator: wsproxy-agent keys accept " + fqdn,
            },
        )

    def _sign_accepted(self, proxy: Proxy) -> Proxy:
        assert proxy.csr_pem is not None
        issued = self.signer.sign(proxy.csr_pem.encode(), proxy.fqdn)
        self.registry.update(
            proxy.fqdn,
            cert_pem=issued.cert_pem,
            serial=issued.serial,
            not_before=int(issued.not_before.timestamp()),
            not_after=int(issued.not_after.timestamp()),
        )
        self.registry.audit(
            "engine", "sign", proxy.fqdn, proxy.fingerprint, f"serial {issued.serial}"
        )
        signed = self.registry.proxy(proxy.fqdn)
        assert signed is not None
        return signed

    def _sign(self, csr: str, fqdn: str) -> tuple[Issued, float]:
        """The certificate, and how long the signer took in ms: the log says it with each
        accept, so the signer's share of an enrollment can be read from the log alone."""
        started = time.perf_counter()
        issued = self.signer.sign(csr.encode(), fqdn)
        return issued, round((time.perf_counter() - started) * 1000, 3)

    def _approved(self, proxy: Proxy) -> Reply:
        assert proxy.cert_pem is not None and proxy.serial is not None
        return Reply(
            cat.ENROLL_APPROVED,
            {
                "cert": proxy.cert_pem,
                "ca_cert": self.bundle.ca_cert,
                "engine_cert": self.bundle.engine_cert,
                "serial": proxy.serial,
                "lifetime_days": self.bundle.lifetime_days,
                "activate": proxy.activate,
            },
        )

    def _check_csr(self, msg: Message, fqdn: str, csr: str) -> None:
        try:
            parsed = pki.check_csr(csr.encode(), fqdn)
        except BadRequest as exc:
            raise self._refuse(msg, fqdn, exc) from None
        ignored = pki.ignored_requests(parsed, fqdn)
        if ignored:
            self.log.warning("csr_requests_ignored", who=msg.sender, fqdn=fqdn, ignored=ignored)

    def _refuse(self, msg: Message, fqdn: str, error: ProtocolError) -> ProtocolError:
        logs.decision(
            self.log, "refuse", who=msg.sender, why=error.sentence, fqdn=fqdn, code=error.code.value
        )
        self.registry.audit(msg.sender, "refuse", fqdn, msg.sender, error.sentence)
        return error

    # renew_request: signed by the identity key, no token; works even when the old
    # certificate has expired, as long as the key is still accepted (kubernetes#65991).
    def on_renew_request(self, msg: Message) -> Reply:
        proxy = self.registry.proxy_by_fingerprint(msg.sender)
        if proxy is None or proxy.state not in TRUSTED_STATES:
            raise Unauthorized("No enrolled proxy holds this key; join again with a token.")
        csr = msg.text("csr")
        if proxy.csr_sha256 == _sha256(csr) and proxy.cert_pem:
            return self._approved(proxy)  # a retry: the certificate already issued for it
        try:
            self._check_csr(msg, proxy.fqdn, csr)
            issued, signing_ms = self._sign(csr, proxy.fqdn)
        except (ProtocolError, SignerError) as exc:
            self.registry.note_error(proxy.fqdn, f"renewal refused: {exc.sentence}")
            raise
        with self.registry.transaction() as db:
            db.execute(
                "UPDATE proxies SET csr_sha256 = ?, csr_pem = ?, cert_pem = ?, serial = ?,"
                " not_before = ?, not_after = ? WHERE fqdn = ?",
                (
                    _sha256(csr),
                    csr,
                    issued.cert_pem,
                    issued.serial,
                    int(issued.not_before.timestamp()),
                    int(issued.not_after.timestamp()),
                    proxy.fqdn,
                ),
            )
            self.registry.audit_within(
                db, msg.sender, "renew", proxy.fqdn, msg.sender, f"serial {issued.serial}"
            )
        logs.decision(
            self.log,
            "accept",
            who=msg.sender,
            why="renewal",
            fqdn=proxy.fqdn,
            serial=issued.serial,
            signing_ms=signing_ms,
        )
        renewed = self.registry.proxy(proxy.fqdn)
        assert renewed is not None
        return self._approved(renewed)

    # install_report
    def report_target(self, msg: Message) -> Proxy:
        proxy = self.registry.proxy_by_fingerprint(msg.sender)
        if proxy is None or proxy.state not in TRUSTED_STATES:
            raise Unauthorized("No enrolled proxy holds this key.")
        if msg.body["serial"] != proxy.serial:
            raise BadRequest("The report names a certificate this engine did not issue to you.")
        return proxy

    def trusted_key(self, fingerprint: str) -> bytes | None:
        holder = self.registry.key_holder(fingerprint)
        if holder is None or holder.state not in TRUSTED_STATES:
            return None
        return holder.identity_key


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()

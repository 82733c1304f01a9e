"""Fixtures for the protocol tests: three identity keys, receivers and a valid body per type.

Everything is session-scoped so hypothesis tests can use it; anything with state (a
Receiver and its seen-id cache) is built fresh by a factory on each call.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol import catalogue, codec, identity, tokens
from protocol.catalogue import Role
from protocol.envelope import Sealed, seal, signed_bytes
from protocol.receive import Receiver

NOW_MS = 1_700_000_000_000

CSR_PEM = (
    "-----BEGIN CERTIFICATE REQUEST-----\n"
    "MIIBVzCB3gIBADBeMQswCQYDVQQGEwJVUzEbMBkGA1UEAwwScHJveHkuZXhhbXBsZS5j\n"
    "-----END CERTIFICATE REQUEST-----\n"
)
CERT_PEM = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIDdzCCAl+gAwIBAgIUJ6r1Hc0BeS2ZlY0ZvPm8m1a4Y6swDQYJKoZIhvcNAQEL\n"
    "-----END CERTIFICATE-----\n"
)


class RecordingKeys:
    """A key lookup that remembers every fingerprint it was asked about."""

    def __init__(self, known: Iterable[Ed25519PrivateKey]) -> None:
        self.known: dict[str, Ed25519PublicKey] = {
            identity.fingerprint(k): k.public_key() for k in known
        }
        self.calls: list[str] = []

    def __call__(self, fingerprint: str) -> Ed25519PublicKey | None:
        self.calls.append(fingerprint)
        return self.known.get(fingerprint)


@dataclass(frozen=True)
class World:
    engine: Ed25519PrivateKey
    proxy: Ed25519PrivateKey
    stranger: Ed25519PrivateKey
    token: tokens.Token
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)

    now_ms: int = NOW_MS

    @staticmethod
    def fp(key: Ed25519PrivateKey) -> str:
        return identity.fingerprint(key)

    def own(self, role: Role) -> Ed25519PrivateKey:
        """The key of the agent that receives in ``role``."""
        return self.engine if role is Role.ENGINE else self.proxy

    def peer(self, role: Role) -> Ed25519PrivateKey:
        """The key of the agent that sends to ``role``."""
        return self.proxy if role is Role.ENGINE else self.engine

    def receiver(
        self,
        role: Role,
        *,
        knows: Iterable[Ed25519PrivateKey] | None = None,
        **kwargs: Any,
    ) -> tuple[Receiver, RecordingKeys]:
        """A fresh receiver in ``role``; by default it holds the key of its one peer."""
        keys = RecordingKeys([self.peer(role)] if knows is None else knows)
        return Receiver(role, self.fp(self.own(role)), keys, **kwargs), keys

    def seal(
        self,
        role: Role,
        msg_type: str,
        body: dict[str, Any] | None = None,
        *,
        key: Ed25519PrivateKey | None = None,
        now_ms: int | None = None,
        **kwargs: Any,
    ) -> Sealed:
        """Seal ``msg_type`` from the peer to the receiver in ``role``; replies get an ``re``."""
        mt = catalogue.CATALOGUE[(role, msg_type)]
        if mt.reply:
            kwargs.setdefault("re", secrets.token_bytes(16))
        return seal(
            self.peer(role) if key is None else key,
            msg_type,
            self.bodies[msg_type] if body is None else body,
            recipient=self.fp(self.own(role)),
            now_ms=self.now_ms if now_ms is None else now_ms,
            **kwargs,
        )

    def envelope(self, role: Role, msg_type: str, **fields: Any) -> dict[str, Any]:
        """A well-formed envelope map, any field overridable (to forge what seal() refuses)."""
        mt = catalogue.CATALOGUE.get((role, msg_type))
        envelope: dict[str, Any] = {
            "v": catalogue.PROTOCOL_VERSION,
            "type": msg_type,
            "id": secrets.token_bytes(16),
            "re": secrets.token_bytes(16) if mt is not None and mt.reply else None,
            "ts": self.now_ms,
            "from": self.fp(self.peer(role)),
            "to": self.fp(self.own(role)),
            "body": self.bodies.get(msg_type, {}),
        }
        envelope.update(fields)
        return envelope

    @staticmethod
    def sign(key: Ed25519PrivateKey, envelope: Any) -> tuple[bytes, bytes]:
        payload = codec.encode(envelope)
        return payload, key.sign(signed_bytes(payload))


def example_bodies(proxy: Ed25519PrivateKey, token: tokens.Token) -> dict[str, dict[str, Any]]:
    identity_key = identity.public_raw(proxy)
    health = {
        "service_active": True,
        "cert_days_left": 364,
        "setup_conf_sha256": "ab" * 32,
        "agent_version": "0.1.0",
    }
    return {
        catalogue.ENROLL_REQUEST: {
            "identity_key": identity_key,
            "csr": CSR_PEM,
            "fqdn": "proxy.example.com",
            "port": 6100,
            "token_id": token.id,
            "token_proof": tokens.proof(
                token.proof_key, identity_key, CSR_PEM.encode(), b"\x00" * 16
            ),
        },
        catalogue.ENROLL_PENDING: {
            "fqdn": "proxy.example.com",
            "fingerprint": identity.fingerprint(proxy),
            "retry_after": 30,
            "message": "An operator must accept this proxy.",
        },
        catalogue.ENROLL_APPROVED: {
            "cert": CERT_PEM,
            "ca_cert": CERT_PEM,
            "engine_cert": CERT_PEM,
            "serial": "1f2e3d",
            "lifetime_days": 398,
            "activate": True,
        },
        catalogue.ENROLL_REJECTED: {"reason": "Not a host of ours."},
        catalogue.INSTALL_REPORT: {"ok": True, "serial": "1f2e3d", "service_active": True},
        catalogue.ACTIVATION_DONE: {
            "activated": True,
            "websocket_proxy": "proxy.example.com:6100",
        },
        catalogue.HEARTBEAT: {**health, "serial": "1f2e3d"},
        catalogue.STATUS_QUERY: {},
        catalogue.STATUS_REPLY: {
            "enrolled": True,
            "fqdn": "proxy.example.com",
            **health,
            "serial": "1f2e3d",
            "not_after": "2026-01-01T00:00:00Z",
        },
        catalogue.RENEW_REQUEST: {"csr": CSR_PEM, "reason": "30 days left"},
        catalogue.REVOKE_NOTICE: {"reason": "Host retired."},
        catalogue.RENEW_NOW: {"reason": "Renew now, please."},
        catalogue.ENGINE_KEY_ROTATION: {"identity_key": b"\x11" * 32, "curve_key": b"\x22" * 32},
        catalogue.ROTATION_ACK: {"pinned": "SHA256:" + "A" * 43},
        catalogue.ERROR: {"code": "bad_request", "message": "That was not understood."},
    }


@pytest.fixture(scope="session")
def world() -> World:
    engine, proxy, stranger = (identity.generate() for _ in range(3))
    token = tokens.generate()
    return World(engine, proxy, stranger, token, example_bodies(proxy, token))

"""Join tokens and the proof of holding one.

A token reads ``<id>.<secret>``: a 6-character id to find it and a 26-character secret
(about 134 bits) from ``[a-z0-9]``, in the spirit of kubeadm's bootstrap tokens. The
secret never crosses the wire: the first request carries the id and an HMAC-SHA256, under
a key derived from the secret, over the request's identity key, CSR and message id, so a
captured proof is useless for any other key, CSR or message.

The engine stores only the derived key. That keeps the secret itself out of the registry;
it cannot stop someone who reads the registry from forging proofs, which is why the
registry is as private as the CA key beside it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

from protocol.errors import BadRequest

ID_LENGTH = 6
SECRET_LENGTH = 26
ALPHABET = string.ascii_lowercase + string.digits
TOKEN_PATTERN = re.compile(rf"([a-z0-9]{{{ID_LENGTH}}})\.([a-z0-9]{{{SECRET_LENGTH}}})")
_KEY_CONTEXT = b"wsproxy-agent/v1 token key\x00"


@dataclass(frozen=True)
class Token:
    id: str
    secret: str

    def __str__(self) -> str:
        return f"{self.id}.{self.secret}"

    @property
    def proof_key(self) -> bytes:
        return derive_proof_key(self.secret)


def generate() -> Token:
    pick = secrets.choice
    return Token(
        "".join(pick(ALPHABET) for _ in range(ID_LENGTH)),
        "".join(pick(ALPHABET) for _ in range(SECRET_LENGTH)),
    )


def parse(text: str) -> Token:
    match = TOKEN_PATTERN.fullmatch(text)
    if match is None:
        raise BadRequest(
            f"A token reads <id>.<secret>: {ID_LENGTH} and {SECRET_LENGTH} characters "
            "from a-z and 0-9. Copy the whole join string again."
        )
    return Token(match.group(1), match.group(2))


def derive_proof_key(secret: str) -> bytes:
    """What the engine stores for a token: a one-way function of the secret."""
    return hashlib.sha256(_KEY_CONTEXT + secret.encode("ascii")).digest()


def _proof_input(identity_key: bytes, csr: bytes, msg_id: bytes) -> bytes:
    # Length prefixes keep the three fields from sliding into one another.
    parts = (identity_key, csr, msg_id)
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def proof(proof_key: bytes, identity_key: bytes, csr: bytes, msg_id: bytes) -> bytes:
    return hmac.new(proof_key, _proof_input(identity_key, csr, msg_id), hashlib.sha256).digest()


def proof_matches(
    proof_key: bytes, identity_key: bytes, csr: bytes, msg_id: bytes, offered: bytes
) -> bool:
    return hmac.compare_digest(proof(proof_key, identity_key, csr, msg_id), offered)

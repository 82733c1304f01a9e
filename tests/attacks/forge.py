"""What an attacker builds below ``seal()``, and how a test tells a silent refusal.

``seal()`` refuses to build most of what these tests send, so frames are made here the way
an attacker would: the envelope map encoded with the codec and signed (or not) over
``envelope.signed_bytes``.

The engine answers a refusal only when the answer helps an honest sender (see
``EngineDaemon._on_frames``); every other refusal is silence, and silence cannot be polled
for. :func:`assert_silent` makes it observable: one connection's messages are handled and
answered in order, so when the answer to a probe sent *after* the attack is the first thing
that comes back, the attack was answered with nothing.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import catalogue as cat
from protocol import codec, identity, joinstring, tokens
from protocol.codec import Value
from protocol.envelope import Sealed, seal, signed_bytes
from tests.attacks.conftest import Target
from tests.e2e.conftest import log_events, wait_for
from tests.e2e.rawclient import RawProxy, csr, enroll_body, tls_key

HOUR_MS = 3_600_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def envelope(
    client: RawProxy, msg_type: str, body: Mapping[str, Value], **fields: Value
) -> dict[str, Any]:
    """A fresh v1 envelope from ``client`` to the engine it pins; ``fields`` override any."""
    return {
        "v": 1,
        "type": msg_type,
        "id": secrets.token_bytes(16),
        "re": None,
        "ts": now_ms(),
        "from": client.fp,
        "to": client.engine_fp,
        "body": body,
        **fields,
    }


def opened(frames: list[bytes] | tuple[bytes, ...]) -> dict[str, Any]:
    """The envelope map inside captured frames, to alter and re-encode."""
    decoded = codec.decode(frames[0])
    assert isinstance(decoded, dict)
    return decoded


def signed(key: Ed25519PrivateKey, env: dict[str, Any]) -> list[bytes]:
    payload = codec.encode(env)
    return [payload, identity.sign(key, signed_bytes(payload))]


def flip_bit(data: bytes, index: int) -> bytes:
    flipped = bytearray(data)
    flipped[index] ^= 0x01
    return bytes(flipped)


def engine_events(target: Target, name: str) -> list[dict[str, Any]]:
    return log_events(target.hosts.engine_log(), name)


def sealed_renewal(target: Target, client: RawProxy, *, stamp_ms: int | None = None) -> Sealed:
    """A renew_request with the request the enrolled proxy holds, sealed by ``client``'s key:
    what the enrolled proxy sends (and an attacker may capture) when ``client`` is legit()."""
    return seal(
        client.key,
        cat.RENEW_REQUEST,
        {"csr": target.enrolled()["csr_pem"]},
        recipient=client.engine_fp,
        now_ms=now_ms() if stamp_ms is None else stamp_ms,
    )


class Refusals:
    """The refusals the engine logs, from now on, of messages in ``who``'s name."""

    def __init__(self, target: Target, who: str) -> None:
        self.target = target
        self.who = who
        self.start = len(self._logged())

    def _logged(self) -> list[dict[str, Any]]:
        return [
            e for e in engine_events(self.target, "message_refused") if e.get("who") == self.who
        ]

    def wait(self, count: int) -> list[tuple[str, str]]:
        """The next ``count`` refusals, as (code, why), once all are logged; no more."""
        # On a timeout the comparison below says what was logged instead.
        with contextlib.suppress(AssertionError):
            wait_for(lambda: len(self._logged()) >= self.start + count, "the refusals")
        found = [(e["code"], e["why"]) for e in self._logged()[self.start :]]
        assert len(found) == count, f"expected {count} refusals for {self.who}, got {found}"
        return found


def assert_silent(client: RawProxy) -> None:
    """Nothing came back to what ``client`` sent so far: a later probe is answered first.

    The probe is stamped an hour old, which the engine answers (clock skew) without looking
    further. It goes in the name of a throwaway key, so that its refusal is not counted with
    the attack's; the answer, addressed to that key, is read without verifying it.
    """
    probe_key = identity.generate()
    probe = envelope(
        client,
        cat.HEARTBEAT,
        {},
        ts=now_ms() - HOUR_MS,
        **{"from": identity.fingerprint(probe_key)},
    )
    client.send_frames(signed(probe_key, probe))
    assert client.sock.poll(15_000), "the engine answered neither the attack nor the probe after it"
    first = opened(client.sock.recv_multipart())
    answered = f"{first['type']} {first['body'].get('code') or ''}".strip()
    assert first["re"] == probe["id"], f"the engine answered the attack: {answered}"
    assert first["type"] == cat.ERROR and first["body"]["code"] == "expired", first


def enroll_another(target: Target, fqdn: str, *, source: str) -> RawProxy:
    """A second proxy, enrolled with its own token from ``source``: a trusted key that is
    not the victim's."""
    token = joinstring.parse(target.hosts.token(proxy=fqdn)).token
    assert token is not None
    client = target.attacker(source=source)
    csr_pem = csr(tls_key("ec"), fqdn)
    msg_id = secrets.token_bytes(16)
    proof = tokens.proof(token.proof_key, identity.public_raw(client.key), csr_pem.encode(), msg_id)
    body = {**enroll_body(client, csr_pem, fqdn), "token_id": token.id, "token_proof": proof}
    client.send(cat.ENROLL_REQUEST, body, msg_id=msg_id)
    reply = client.reply(15.0)
    assert reply is not None and reply.type == cat.ENROLL_APPROVED, reply
    return client

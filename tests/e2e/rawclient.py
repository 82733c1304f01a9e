"""A hand-driven proxy for tests: real ZeroMQ, real Curve, any message we care to forge."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import zmq
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from protocol import identity
from protocol.catalogue import Role
from protocol.envelope import Message, seal
from protocol.receive import Receiver
from wsproxy_agent import transport

SEND_TIMEOUT_MS = 60_000  # above the reconnect backoff cap (transport.RECONNECT_MAX_MS)


class RawProxy:
    def __init__(
        self,
        engine_root: Path,
        port: int,
        key: Ed25519PrivateKey | None = None,
        *,
        source: str | None = None,
        curve: bytes | None = None,
    ) -> None:
        """``source`` is the local address to connect from (any 127.x works on loopback);
        ``curve`` replaces the engine's Curve key the client pins."""
        state = engine_root / "var/lib/wsproxy-agent"
        self.engine_key = identity.private_from_pem((state / "identity.key").read_bytes())
        self.engine_fp = identity.fingerprint(self.engine_key)
        self.key = key or identity.generate()
        self.fp = identity.fingerprint(self.key)
        self.ctx: zmq.Context[Any] = zmq.Context()
        server_key = curve or transport.read_curve_key(state / "curve.key")
        origin = f"{source}:0;" if source else ""
        self.sock, _ = transport.client(self.ctx, f"tcp://{origin}127.0.0.1:{port}", server_key)
        # With IMMEDIATE on, a send waits for a connected engine: a dead engine must fail a
        # test (zmq.Again), not hang it.
        self.sock.setsockopt(zmq.SNDTIMEO, SEND_TIMEOUT_MS)
        public = self.engine_key.public_key()
        self.receiver = Receiver(
            Role.PROXY, self.fp, lambda fp: public if fp == self.engine_fp else None
        )

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()

    def send(self, msg_type: str, body: dict[str, Any], **kw: Any) -> bytes:
        sealed = seal(
            self.key,
            msg_type,
            body,
            recipient=kw.pop("to", self.engine_fp),
            now_ms=time.time_ns() // 1_000_000,
            **kw,
        )
        self.sock.send_multipart(sealed.frames)
        return sealed.id

    def send_frames(self, frames: Sequence[bytes]) -> None:
        self.sock.send_multipart(frames)

    def reply(self, timeout_s: float = 5.0) -> Message | None:
        if not self.sock.poll(int(timeout_s * 1000)):
            return None
        return self.receiver.receive(self.sock.recv_multipart(), time.time_ns() // 1_000_000)


def tls_key(kind: str = "rsa", bits: int = 2048) -> Any:
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def csr(
    key: Any,
    fqdn: str,
    *,
    sans: list[str] | None = None,
    ca: bool = False,
    key_cert_sign: bool = False,
) -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, fqdn)])
    )
    builder = builder.add_extension(
        x509.SubjectAlternativeName([x509.DNSName(n) for n in (sans or [fqdn])]), critical=False
    )
    if ca:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
    if key_cert_sign:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
    request = builder.sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.PEM).decode()


def enroll_body(raw: RawProxy, csr_pem: str, fqdn: str, port: int = 6100) -> dict[str, Any]:
    return {
        "identity_key": identity.public_raw(raw.key),
        "csr": csr_pem,
        "fqdn": fqdn,
        "port": port,
    }

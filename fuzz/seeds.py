"""Seed corpora: a few real inputs per harness, written under ``.fuzz/corpus/<harness>/``.

Each seed is laid out the way its harness reads input (a mode byte first; see the harness),
so the fuzzer starts from messages, requests and certificates that pass, and mutates those.

    python -m fuzz.seeds [DIR]        # default .fuzz/corpus
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fuzz import certs, csr, delivery, receive, ticket
from fuzz.reader import value_bytes
from fuzz.world import MSG_ID, REQUEST_ID, WORLD
from protocol import codec, joinstring
from protocol.catalogue import Role
from protocol.ticket import issue_ticket
from proxy_agent.tlskeys import build_csr

SERVER_CLIENT = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]


def sealed_messages() -> Iterator[tuple[Role, tuple[bytes, bytes]]]:
    for role, name in receive.TYPES:
        yield role, WORLD.seal(role, name, msg_id=MSG_ID, re=REQUEST_ID).frames


def receive_seeds() -> Iterator[bytes]:
    for role, (payload, signature) in sealed_messages():
        yield bytes([receive.RAW, receive.ROLES.index(role), 0]) + signature + payload
    for role_index, role in enumerate(receive.ROLES):
        for type_index in range(len(receive.PLAUSIBLE[role]["type"])):
            # Every field at its first plausible value (a good message), signed.
            yield bytes([receive.ENVELOPE, role_index, 0, type_index, *[0] * 6, 0, 0, 0])
    for type_index in range(len(receive.TYPES)):
        yield bytes([receive.BODY, type_index, 1, 0]) + value_bytes("x" * 40)
        yield bytes([receive.BODY, type_index, 2, 0])
        yield bytes([receive.BODY, type_index, 3]) + value_bytes("extra") + value_bytes(1)


def codec_seeds() -> Iterator[bytes]:
    for _, (payload, _signature) in sealed_messages():
        yield b"\x00" + payload
    for value in (None, True, -1, 2**64 - 1, "text", b"\x00\xff", [1, [2, [3]]], {"a": {"b": 1}}):
        yield b"\x01" + codec.encode(value)


def joinstring_seeds() -> Iterator[bytes]:
    curve, pin = bytes(range(32)), bytes(range(32, 64))
    for join in (
        joinstring.JoinString("engine.example.com", 6101, curve, pin, WORLD.token, 6100),
        joinstring.JoinString("engine.example.com", 16101, curve, pin),
        joinstring.JoinString("192.0.2.7", 6101, curve, pin, WORLD.token),
        joinstring.JoinString("2001:db8::7", 6101, curve, pin, WORLD.token, 443),
    ):
        yield b"\x00" + str(join).encode()
    yield b"\x01" + joinstring.format_engine_key(curve, pin).encode()


def tokens_seeds() -> Iterator[bytes]:
    yield str(WORLD.token).encode()


def names_seeds() -> Iterator[bytes]:
    for name in ("proxy.example.com", "a" * 63 + ".example.com", "x", "1-2.b-c"):
        yield b"\x00" + name.encode()
    for name in (" Proxy.Example.COM. ", "proxy.example.com..", "PROXY"):
        yield b"\x01" + name.encode()


def request(key: object, extensions: Sequence[x509.ExtensionType] = (), cn: str = certs.FQDN):
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)  # type: ignore[arg-type]


def csr_seeds() -> Iterator[bytes]:
    good = x509.load_pem_x509_csr(build_csr(certs.PROXY_KEY, certs.FQDN))
    asking = [
        x509.BasicConstraints(ca=True, path_length=None),
        x509.SubjectAlternativeName(
            [
                x509.DNSName(certs.FQDN),
                x509.DNSName("other.example.com"),
                x509.IPAddress(IPv4Address("192.0.2.1")),
            ]
        ),
        x509.KeyUsage(True, False, False, False, False, True, True, False, False),
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
        x509.OCSPNoCheck(),
    ]
    proxy_made = [good, request(certs.PROXY_KEY, asking, cn="www.example.com")]
    proxy_made += [request(certs.PROXY_KEY, [extension]) for extension in asking]
    for made in proxy_made:
        yield bytes([csr.PEM_TEXT]) + made.public_bytes(Encoding.PEM)
        yield bytes([csr.DER]) + made.public_bytes(Encoding.DER)
        yield bytes([csr.SIGNED_INFO]) + made.tbs_certrequest_bytes
    for key in (
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa.generate_private_key(public_exponent=65537, key_size=1024),
        ec.generate_private_key(ec.SECP384R1()),
        ec.generate_private_key(ec.SECP521R1()),
        ed25519.Ed25519PrivateKey.generate(),
    ):
        yield bytes([csr.PEM_TEXT]) + request(key).public_bytes(Encoding.PEM)


def leaf(
    key: ec.EllipticCurvePrivateKey = certs.PROXY_KEY,
    names: Sequence[x509.GeneralName] = (x509.DNSName(certs.FQDN),),
    *,
    ca: bool = False,
    usages: Sequence[x509.ObjectIdentifier] = SERVER_CLIENT,
    start: datetime = certs.ISSUED_AT,
    days: int = 398,
) -> x509.Certificate:
    """A proxy certificate from the fixed CA, bent one way for a seed that is refused."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, certs.FQDN)]))
        .issuer_name(certs.CA.cert.subject)
        .public_key(key.public_key())
        .serial_number(0x1F2E3D)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(certs.CA_KEY, hashes.SHA256())


def padded(pem: bytes) -> bytes:
    """A length byte counting 8-byte units, then the PEM padded to it, as BUNDLE reads."""
    units = -(-len(pem) // 8)
    return bytes([units]) + pem.ljust(units * 8, b"\n")


def delivery_seeds() -> Iterator[bytes]:
    cert, ca, engine = delivery.GOOD
    yield bytes([delivery.BUNDLE]) + padded(cert) + padded(ca) + engine
    proxy_certs = [
        certs.PROXY_CERT,
        leaf(),
        leaf(names=()),
        leaf(names=(x509.DNSName("other.example.com"),)),
        leaf(names=(x509.DNSName(certs.FQDN), x509.IPAddress(IPv4Address("192.0.2.1")))),
        leaf(ca=True),
        leaf(usages=[ExtendedKeyUsageOID.CLIENT_AUTH]),
        leaf(start=certs.NOW + timedelta(days=1)),
        leaf(start=certs.NOW - timedelta(days=500)),
        leaf(certs.ENGINE_KEY),
    ]
    for made in proxy_certs:
        yield bytes([delivery.PROXY_TBS]) + made.tbs_certificate_bytes
    yield bytes([delivery.ENGINE_TBS]) + certs.ENGINE_CERT.tbs_certificate_bytes
    yield bytes([delivery.CA_TBS]) + certs.CA.cert.tbs_certificate_bytes
    yield bytes([delivery.DER]) + certs.PROXY_CERT.public_bytes(Encoding.DER)


def ticket_seeds() -> Iterator[bytes]:
    real = issue_ticket(
        ticket.KEY,
        certs.ENGINE_CERT.public_bytes(Encoding.PEM).decode(),
        "vm-host.example.com",
        5900,
        now=ticket.NOW,
        salt=bytes(range(8)),
        path="/vnc",
        token="t0k",
    )
    yield bytes([ticket.RAW]) + real.encode()
    yield bytes([ticket.RAW]) + quote(real, safe="").encode()
    fields = json.loads(base64.b64decode(real))
    yield bytes([ticket.DATA]) + fields["data"].encode()
    yield bytes([ticket.DATA]) + b'{"host":"10.0.0.1","port":"5901","ssl_target":true}'
    del fields["v2_signature"], fields["certificate"]
    yield bytes([ticket.FIELDS]) + json.dumps(fields).encode()
    engine_order = {
        **fields,
        "digest": "sha1",
        "signedFields": "salt,data,digest,validFrom,validTo",
    }
    yield bytes([ticket.FIELDS]) + json.dumps(engine_order).encode()


SEEDS: dict[str, Callable[[], Iterator[bytes]]] = {
    "receive": receive_seeds,
    "codec": codec_seeds,
    "joinstring": joinstring_seeds,
    "tokens": tokens_seeds,
    "names": names_seeds,
    "csr": csr_seeds,
    "delivery": delivery_seeds,
    "ticket": ticket_seeds,
}


def write(root: Path, harness: str) -> int:
    """Write the harness's seeds, named by content so that writing them again changes nothing."""
    directory = root / harness
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    for seed in SEEDS[harness]():
        (directory / f"seed-{hashlib.sha1(seed).hexdigest()[:16]}").write_bytes(seed)
        count += 1
    return count


def main(argv: list[str]) -> None:
    root = Path(argv[0] if argv else ".fuzz/corpus")
    for harness in SEEDS:
        print(f"{harness}: {write(root, harness)} seeds in {root / harness}")


if __name__ == "__main__":
    main(sys.argv[1:])

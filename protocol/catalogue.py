"""Every message type of protocol v1, with who may send it and the schema of its body.

This module is the one owner of the catalogue: the receive pipeline, the daemons and
docs/protocol.md all follow it. A type not listed here is refused before any work.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from protocol.errors import ErrorCode
from protocol.names import FQDN_PATTERN, MAX_NAME
from protocol.schema import Bin, Bool, FieldType, Int, Schema, Str

PROTOCOL_VERSION = 1
MIN_PROTOCOL_VERSION = 1


class Role(Enum):
    ENGINE = "engine"
    PROXY = "proxy"


@dataclass(frozen=True)
class MessageType:
    name: str
    receiver: Role
    schema: Schema
    # A reply must carry ``re``, the id of the request it answers (CVE-2022-22935).
    reply: bool = False
    # Accepted from a sender the receiver holds no key for: the body's identity key signs it.
    self_certified: bool = False


PEM_MAX = 16 * 1024
FQDN = Str(MAX_NAME, pattern=FQDN_PATTERN)
PORT = Int(1, 65535)
FINGERPRINT_PATTERN = r"SHA256:[A-Za-z0-9+/]{43}"
FINGERPRINT = Str(64, pattern=FINGERPRINT_PATTERN)
HEX_SERIAL = Str(64, pattern=r"[0-9a-f]{1,64}")
SHA256_HEX = Str(64, pattern=r"[0-9a-f]{64}")
REASON = Str(1000)
PEM = Str(PEM_MAX, pattern=r"(?s)-----BEGIN [A-Z0-9 ]+-----\r?\n.*-----END [A-Z0-9 ]+-----\s*")
TOKEN_ID = Str(6, pattern=r"[a-z0-9]{6}")
HEALTH: dict[str, FieldType] = {
    "service_active": Bool(),
    "cert_days_left": Int(-(10**6), 10**6),
    "setup_conf_sha256": SHA256_HEX,
    "agent_version": Str(40),
}

ENROLL_REQUEST = "enroll_request"
ENROLL_PENDING = "enroll_pending"
ENROLL_APPROVED = "enroll_approved"
ENROLL_REJECTED = "enroll_rejected"
INSTALL_REPORT = "install_report"
ACTIVATION_DONE = "activation_done"
HEARTBEAT = "heartbeat"
STATUS_QUERY = "status_query"
STATUS_REPLY = "status_reply"
RENEW_REQUEST = "renew_request"
REVOKE_NOTICE = "revoke_notice"
RENEW_NOW = "renew_now"
ENGINE_KEY_ROTATION = "engine_key_rotation"
ROTATION_ACK = "rotation_ack"
ERROR = "error"

_TYPES = (
    MessageType(
        ENROLL_REQUEST,
        Role.ENGINE,
        Schema(
            required={"identity_key": Bin(32, exact=True), "csr": PEM, "fqdn": FQDN, "port": PORT},
            optional={"token_id": TOKEN_ID, "token_proof": Bin(32, exact=True)},
        ),
        self_certified=True,
    ),
    MessageType(
        ENROLL_PENDING,
        Role.PROXY,
        Schema(
            required={"fqdn": FQDN, "fingerprint": FINGERPRINT, "retry_after": Int(1, 3600)},
            optional={"message": REASON},
        ),
        reply=True,
    ),
    MessageType(
        ENROLL_APPROVED,
        Role.PROXY,
        Schema(
            required={
                "cert": PEM,
                "ca_cert": PEM,
                "engine_cert": PEM,
                "serial": HEX_SERIAL,
                "lifetime_days": Int(1, 36500),
                "activate": Bool(),
            }
        ),
        reply=True,
    ),
    MessageType(ENROLL_REJECTED, Role.PROXY, Schema(required={"reason": REASON}), reply=True),
    MessageType(
        INSTALL_REPORT,
        Role.ENGINE,
        Schema(
            required={"ok": Bool(), "serial": HEX_SERIAL},
            optional={"reason": REASON, "service_active": Bool()},
        ),
    ),
    MessageType(
        ACTIVATION_DONE,
        Role.PROXY,
        Schema(
            required={"activated": Bool(), "websocket_proxy": Str(MAX_NAME + 16)},
            optional={"reason": REASON},
        ),
        reply=True,
    ),
    MessageType(HEARTBEAT, Role.ENGINE, Schema(required=HEALTH, optional={"serial": HEX_SERIAL})),
    MessageType(STATUS_QUERY, Role.PROXY, Schema()),
    MessageType(
        STATUS_REPLY,
        Role.ENGINE,
        Schema(
            required={"enrolled": Bool(), "fqdn": FQDN, **HEALTH},
            optional={"serial": HEX_SERIAL, "not_after": Str(32)},
        ),
        reply=True,
    ),
    MessageType(
        RENEW_REQUEST, Role.ENGINE, Schema(required={"csr": PEM}, optional={"reason": REASON})
    ),
    MessageType(REVOKE_NOTICE, Role.PROXY, Schema(required={"reason": REASON})),
    MessageType(RENEW_NOW, Role.PROXY, Schema(required={"reason": REASON})),
    # Signed by the engine's current key, it names the keys that replace it; a proxy that
    # trusts the signer may trust the successor, so no new token is needed.
    MessageType(
        ENGINE_KEY_ROTATION,
        Role.PROXY,
        Schema(required={"identity_key": Bin(32, exact=True), "curve_key": Bin(32, exact=True)}),
    ),
    MessageType(ROTATION_ACK, Role.ENGINE, Schema(required={"pinned": FINGERPRINT}), reply=True),
)

_ERROR_SCHEMA = Schema(
    required={"code": Str(20, choices=frozenset(c.value for c in ErrorCode)), "message": REASON}
)

# ``error`` goes both ways, so it appears once per receiving role.
CATALOGUE: dict[tuple[Role, str], MessageType] = {(t.receiver, t.name): t for t in _TYPES}
for _role in Role:
    CATALOGUE[(_role, ERROR)] = MessageType(ERROR, _role, _ERROR_SCHEMA)

TYPE_NAMES: frozenset[str] = frozenset(name for _, name in CATALOGUE)


def accepted_by(role: Role) -> dict[str, MessageType]:
    """The types a receiver in ``role`` acts on; anything else is refused unread."""
    return {name: t for (r, name), t in CATALOGUE.items() if r is role}


def lookup(role: Role, name: str) -> MessageType | None:
    return CATALOGUE.get((role, name))

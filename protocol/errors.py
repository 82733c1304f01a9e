"""Typed refusals of the wire protocol.

Every refusal carries one of the codes of DESIGN §4 and a sentence a person can act on.
The code travels on the wire in an ``error`` message; the sentence is for logs and terminals.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    PENDING = "pending"
    REJECTED = "rejected"
    EXPIRED = "expired"
    REPLAYED = "replayed"
    VERSION = "version"
    RATE_LIMITED = "rate_limited"
    INTERNAL = "internal"


class ProtocolError(Exception):
    """A message or event was refused; ``code`` says which kind, ``args[0]`` says why."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, sentence: str) -> None:
        super().__init__(sentence)
        self.sentence = sentence
        # Set by the receive pipeline once the envelope decoded, so a refusal can be
        # answered (and logged) with who sent it and which message it was.
        self.sender: str | None = None
        self.msg_id: bytes | None = None
        # True when the refusal came after the signature verified: only then is the
        # sender known for sure, and worth an answer.
        self.authenticated = False

    def __str__(self) -> str:
        return f"{self.code.value}: {self.sentence}"


class BadRequest(ProtocolError):
    code = ErrorCode.BAD_REQUEST


class Unauthorized(ProtocolError):
    code = ErrorCode.UNAUTHORIZED


class Pending(ProtocolError):
    code = ErrorCode.PENDING


class Rejected(ProtocolError):
    code = ErrorCode.REJECTED


class Expired(ProtocolError):
    code = ErrorCode.EXPIRED


class ClockSkew(Expired):
    """Stamped outside the freshness window: the two hosts' clocks disagree.

    ``skew_ms`` is the stamp minus the receiver's clock: positive when the sender is ahead.
    """

    def __init__(self, sentence: str, skew_ms: int) -> None:
        super().__init__(sentence)
        self.skew_ms = skew_ms


class Replayed(ProtocolError):
    code = ErrorCode.REPLAYED


class VersionRefused(ProtocolError):
    code = ErrorCode.VERSION


class RateLimited(ProtocolError):
    code = ErrorCode.RATE_LIMITED


class InternalError(ProtocolError):
    code = ErrorCode.INTERNAL


class WrongRecipient(Unauthorized):
    """Addressed to another key: the sender's pin of us is stale or wrong, so it is told."""


class TransitionError(BadRequest):
    """An enrollment event arrived in a state that does not allow it."""


_BY_CODE: dict[ErrorCode, type[ProtocolError]] = {
    cls.code: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Pending,
        Rejected,
        Expired,
        Replayed,
        VersionRefused,
        RateLimited,
        InternalError,
    )
}


def error_for_code(code: str, sentence: str) -> ProtocolError:
    """Rebuild the typed error a peer sent us; an unknown code becomes ``internal``."""
    try:
        cls = _BY_CODE[ErrorCode(code)]
    except ValueError:
        cls = InternalError
    return cls(sentence)

"""The engine's error answers stay sealable whatever the refusal quotes back."""

from __future__ import annotations

import time

from engine_agent.daemon import _error_reply
from protocol import catalogue as cat
from protocol import identity
from protocol.envelope import seal
from protocol.errors import BadRequest


def test_a_sentence_longer_than_the_schema_allows_is_cut_not_fatal() -> None:
    reply = _error_reply(BadRequest("Field " + "x" * 5000 + " is not allowed."))
    message = str(reply.body["message"])
    assert len(message) == cat.REASON.max_len and message.endswith("…")
    key = identity.generate()
    sealed = seal(
        key,
        reply.type,
        reply.body,
        recipient=identity.fingerprint(key),
        now_ms=time.time_ns() // 1_000_000,
    )
    assert sealed.frames


def test_a_short_sentence_is_sent_whole() -> None:
    assert _error_reply(BadRequest("No.")).body == {"code": "bad_request", "message": "No."}

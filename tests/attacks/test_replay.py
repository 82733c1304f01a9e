"""Replays of a message the enrolled proxy really signed: captured on the wire and sent again
from the attacker's address, stamped outside the window, or sent to another engine.

The captured message is a renewal request: answered with the proxy's certificate, it is the
most useful thing an attacker on the path could get the engine to repeat.
"""

from __future__ import annotations

import re

from protocol import catalogue as cat
from tests.attacks.conftest import Target
from tests.attacks.forge import (
    HOUR_MS,
    Refusals,
    assert_silent,
    now_ms,
    opened,
    sealed_renewal,
)
from tests.e2e.conftest import host_pair, short_tempdir
from tests.e2e.rawclient import RawProxy


def captured_renewal(target: Target, *, stamp_ms: int | None = None) -> list[bytes]:
    """The exact frames the enrolled proxy sends to renew with the request it holds."""
    return list(sealed_renewal(target, target.legit(), stamp_ms=stamp_ms).frames)


def test_replay_inside_the_window_is_refused_in_silence(target: Target) -> None:
    legit = target.legit()
    frames = captured_renewal(target)
    legit.send_frames(frames)
    answer = legit.reply(10.0)
    assert answer is not None and answer.type == cat.ENROLL_APPROVED, answer
    before = target.snapshot()
    refusals = Refusals(target, legit.fp)

    attacker = target.attacker()
    attacker.send_frames(frames)

    # Silence, because the id check comes before the signature: the engine cannot tell a
    # replay from a forged copy, so it owes the sender nothing, and an answer signed to the
    # proxy's key would only serve whoever replayed it.
    assert_silent(attacker)
    [(code, why)] = refusals.wait(1)
    assert code == "replayed" and "already received" in why, why
    target.assert_serves_legit()
    target.assert_unchanged(before)


def test_replay_stamped_outside_the_window_is_answered_as_clock_skew(target: Target) -> None:
    before = target.snapshot()
    stale = captured_renewal(target, stamp_ms=now_ms() - HOUR_MS)
    early = captured_renewal(target, stamp_ms=now_ms() + HOUR_MS)
    # The answer is addressed to the key the messages name; reading it needs that key.
    reader = target.attacker(target.legit().key)

    reader.send_frames(stale)
    behind = reader.reply(10.0)
    reader.send_frames(early)
    ahead = reader.reply(10.0)

    # Answered, as an honest proxy with a wrong clock needs to learn why it is ignored.
    for reply, frames, direction in ((behind, stale, "behind"), (ahead, early, "ahead of")):
        assert reply is not None, f"a message stamped {direction} the engine's clock got no answer"
        assert reply.type == cat.ERROR, reply.type
        assert reply.re == seal_id(frames)
        assert reply.body["code"] == "expired", reply.body
        message = str(reply.body["message"])
        assert re.search(rf"stamped 3[56]\d\d s {direction} our clock", message), message
        assert "clock skew" in message
    target.assert_serves_legit()
    target.assert_unchanged(before)


def test_replay_to_another_engine_is_refused_as_addressed_elsewhere(target: Target) -> None:
    legit = target.legit()
    frames = captured_renewal(target)
    legit.send_frames(frames)
    assert legit.reply(10.0) is not None
    before = target.snapshot()

    with host_pair(short_tempdir()) as other:
        other.engine_init()
        other.start_engine()
        # The reply names the captured message's sender; reading it needs that key.
        reader = RawProxy(other.engine, other.port, legit.key, source="127.0.0.2")
        try:
            reader.send_frames(frames)
            reply = reader.reply(10.0)
        finally:
            reader.close()
        assert reply is not None, "the other engine did not say why it refused"
        assert reply.type == cat.ERROR, reply
        assert reply.sender == reader.engine_fp != legit.engine_fp
        assert reply.re == seal_id(frames)
        assert reply.body["code"] == "unauthorized", reply.body
        message = str(reply.body["message"])
        assert f"addressed to {legit.engine_fp}" in message, message
        assert other.registry() == []

    target.assert_serves_legit()
    target.assert_unchanged(before)


def seal_id(frames: list[bytes]) -> bytes:
    msg_id = opened(frames)["id"]
    assert isinstance(msg_id, bytes)
    return msg_id

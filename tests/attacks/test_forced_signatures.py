"""Making the engine sign: refusals it answers before it knows who is asking.

A message stamped outside the window is answered with a signed "clock skew" error (an
honest proxy with a wrong clock needs to hear why), before its own signature is looked at.
Without a bound, anyone could make the engine spend a signature per message. Unknown
senders get a few such answers a minute per address, then silence.
"""

from __future__ import annotations

import time

from engine_agent.admission import ANSWERS
from protocol import catalogue as cat
from tests.attacks.conftest import Target
from tests.attacks.forge import HOUR_MS, envelope, now_ms, signed
from tests.support.fleet import HEALTHY


def test_unknown_senders_get_a_bounded_number_of_signed_answers(target: Target) -> None:
    before = target.snapshot()
    attacker = target.attacker()
    answered, started = 0, time.monotonic()
    for _ in range(20):
        stale = envelope(attacker, cat.HEARTBEAT, HEALTHY, ts=now_ms() - HOUR_MS)
        attacker.send_frames(signed(attacker.key, stale))
        reply = attacker.reply(1.0)
        if reply is not None:
            assert reply.type == cat.ERROR and reply.body["code"] == "expired"
            answered += 1
    # The burst, and what refilled while the silent ones were waited for: not one per message.
    refilled = (time.monotonic() - started) * ANSWERS.refill_per_s
    assert ANSWERS.burst <= answered <= ANSWERS.burst + refilled + 1
    assert answered < 20
    # Another address is answered still: the bound is per address.
    other = target.attacker(source="127.0.0.3")
    other.send_frames(signed(other.key, envelope(other, cat.HEARTBEAT, HEALTHY, ts=0)))
    reply = other.reply(5.0)
    assert reply is not None and reply.body["code"] == "expired"
    target.assert_serves_legit()
    target.assert_unchanged(before)

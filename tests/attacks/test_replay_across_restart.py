"""A captured message replayed after the engine restarted, still inside the freshness window.

The seen-id cache alone lives in memory: a crash and a restart would forget it and accept
the same signed message a second time. The engine keeps the window's ids on disk.
"""

from __future__ import annotations

import pytest

from protocol import catalogue as cat
from tests.attacks.conftest import Target
from tests.attacks.forge import engine_events, sealed_renewal


@pytest.mark.parametrize("kill", [True, False], ids=["crash", "stop"])
def test_replay_after_a_restart_is_refused(target: Target, kill: bool) -> None:
    legit = target.legit()
    sealed = sealed_renewal(target, legit)
    legit.send_frames(sealed.frames)
    first = legit.reply(10.0)
    assert first is not None and first.type == cat.ENROLL_APPROVED and first.re == sealed.id

    target.restart_engine(kill=kill)
    before = target.snapshot()
    attacker = target.attacker()
    attacker.send_frames(sealed.frames)
    assert attacker.reply(3.0) is None
    refused = engine_events(target, "message_refused")
    assert [x["code"] for x in refused] == ["replayed"]
    assert refused[0]["who"] == legit.fp
    target.assert_serves_legit()
    target.assert_unchanged(before)

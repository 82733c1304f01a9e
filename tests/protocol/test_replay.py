"""The seen-id cache: bounded memory, expiry with the window, and the horizon rule."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import catalogue
from protocol.catalogue import Role
from protocol.errors import BadRequest, Replayed
from protocol.replay import SeenIds

if TYPE_CHECKING:
    from tests.protocol.conftest import World


def ident(n: int) -> bytes:
    return n.to_bytes(16, "big")


def test_flood_stays_within_capacity_and_never_lets_a_replay_through() -> None:
    seen = SeenIds(window_ms=10**9, capacity=1000)
    for n in range(50_000):
        seen.check(ident(n), n, n)
        seen.record(ident(n), n, n)
        assert len(seen) <= 1000
    assert len(seen) == 1000
    now = 50_000
    # Every id ever seen, evicted or not, is still refused while inside the window.
    for n in range(50_000):
        with pytest.raises(Replayed):
            seen.check(ident(n), n, now)
    assert seen.horizon_ms == 50_000 - 1000 - 1


def test_eviction_moves_the_horizon_which_refuses_old_stamps() -> None:
    seen = SeenIds(window_ms=60_000, capacity=3)
    for n in range(4):
        seen.record(ident(n), 100_500 + n * 1000, 104_000)
    assert len(seen) == 3
    assert seen.horizon_ms == 100_999  # the end of the evicted entry's second
    with pytest.raises(Replayed, match="already received"):
        seen.check(ident(3), 103_500, 104_000)
    with pytest.raises(Replayed, match="flood"):
        seen.check(ident(0), 100_500, 104_000)  # evicted, refused by the horizon
    with pytest.raises(Replayed, match="flood"):
        seen.check(ident(99), 100_999, 104_000)  # a new id stamped before the horizon
    seen.check(ident(99), 101_000, 104_000)  # a new id stamped after it is fine


def test_a_flood_within_one_second_refuses_the_rest_of_that_second() -> None:
    seen = SeenIds(window_ms=60_000, capacity=3)
    for n in range(4):
        seen.record(ident(n), 7_000 + n, 7_010)
    assert len(seen) == 0 and seen.horizon_ms == 7_999
    for n in range(4):  # nothing of that second gets through, replay or not
        with pytest.raises(Replayed, match="flood"):
            seen.check(ident(n), 7_000 + n, 7_010)
    seen.check(ident(9), 8_000, 8_000)


def test_entries_expire_with_the_window_a_second_at_a_time() -> None:
    seen = SeenIds(window_ms=1000, capacity=10)
    seen.record(ident(1), 0, 0)
    seen.record(ident(2), 999, 999)
    with pytest.raises(Replayed):
        seen.check(ident(1), 0, 1000)  # ts == now - window is still inside
    seen.check(ident(3), 1999, 1999)
    assert len(seen) == 2  # ident(1) is out of the window, ident(2) not yet: both held
    with pytest.raises(Replayed):
        seen.check(ident(2), 999, 1999)
    seen.check(ident(3), 2000, 2000)
    assert len(seen) == 0  # every stamp of their second is out of the window: gone
    seen.check(ident(1), 0, 2000)


def test_future_stamped_entries_live_until_their_own_window_ends() -> None:
    seen = SeenIds(window_ms=1000, capacity=10)
    seen.record(ident(1), 1000, 0)  # the sender's clock is 1 s ahead
    with pytest.raises(Replayed):
        seen.check(ident(1), 1000, 2000)
    seen.check(ident(2), 2999, 2999)
    assert len(seen) == 1
    seen.check(ident(2), 3000, 3000)
    assert len(seen) == 0


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.integers(1, 12),
    steps=st.lists(
        st.tuples(st.integers(0, 30), st.integers(-1500, 1500), st.integers(0, 400)),
        max_size=50,
    ),
)
def test_no_replay_inside_the_window_ever_passes(
    capacity: int, steps: list[tuple[int, int, int]]
) -> None:
    """Drive the cache as Receiver does; a replay (same id, same stamp) never passes.

    A sender reusing an id with another stamp is not a replay (the stamp is signed), so
    only exact repeats of an accepted (id, ts) are required to be refused.
    """
    window = 1000
    seen = SeenIds(window, capacity)
    accepted: set[tuple[bytes, int]] = set()
    now = 10_000
    for number, offset, advance in steps:
        now += advance
        msg_id, ts = ident(number), now + offset
        if abs(now - ts) > window:
            continue  # Receiver refuses it as expired before asking the cache
        try:
            seen.check(msg_id, ts, now)
        except Replayed:
            continue
        assert (msg_id, ts) not in accepted
        seen.record(msg_id, ts, now)
        accepted.add((msg_id, ts))
        assert len(seen) <= capacity
        for old_id, old_ts in accepted:
            if abs(now - old_ts) <= window:
                with pytest.raises(Replayed):
                    seen.check(old_id, old_ts, now)


def test_receiver_under_flood(world: World) -> None:
    receiver, _ = world.receiver(Role.ENGINE)
    receiver.seen = SeenIds(receiver.window_ms, capacity=50)
    now = world.now_ms
    first = world.seal(Role.ENGINE, catalogue.HEARTBEAT, now_ms=now)
    receiver.receive(first.frames, now)
    for n in range(1, 200):  # a message a second: the oldest second goes when full
        flood = world.seal(Role.ENGINE, catalogue.HEARTBEAT, now_ms=now + n * 1000)
        receiver.receive(flood.frames, now + n * 1000)
        assert len(receiver.seen) <= 50
    now += 200 * 1000
    # The first message was evicted long ago; it is still refused as a replay.
    with pytest.raises(Replayed):
        receiver.receive(first.frames, now)
    # A message stamped at or before the horizon cannot be proven fresh: refused too.
    assert receiver.seen.horizon_ms is not None
    stale = world.seal(Role.ENGINE, catalogue.HEARTBEAT, now_ms=receiver.seen.horizon_ms)
    with pytest.raises(Replayed):
        receiver.receive(stale.frames, now)
    # A fresh message is accepted, and so is one after the window has moved on.
    fresh = world.seal(Role.ENGINE, catalogue.HEARTBEAT, now_ms=now)
    assert receiver.receive(fresh.frames, now).id == fresh.id
    later = now + receiver.window_ms + 1000  # its second wholly out of the window
    moved_on = world.seal(Role.ENGINE, catalogue.HEARTBEAT, now_ms=later)
    assert receiver.receive(moved_on.frames, later).id == moved_on.id
    assert len(receiver.seen) == 1


def test_recording_an_id_twice_keeps_one_entry_and_expires_cleanly() -> None:
    seen = SeenIds(window_ms=1_000, capacity=10)
    seen.record(b"a" * 16, ts=0, now_ms=0)
    seen.record(b"a" * 16, ts=0, now_ms=0)
    assert len(seen) == 1
    seen.check(b"b" * 16, ts=5_000, now_ms=5_000)  # expiry runs; a second entry would raise
    assert len(seen) == 0


def test_entries_expire_and_evict_by_their_stamp_whatever_their_id() -> None:
    """An id held as an int beside its stamp: the id's bits never move the stamp's order."""
    highest, lowest = b"\xff" * 16, b"\x00" * 16
    seen = SeenIds(window_ms=1_000, capacity=10)
    seen.record(highest, ts=1_000, now_ms=1_000)
    seen.record(lowest, ts=2_000, now_ms=2_000)
    seen.check(ident(3), ts=3_000, now_ms=3_000)  # the cutoff is 2_000: only `highest` goes
    assert len(seen) == 1
    seen.check(highest, ts=1_000, now_ms=3_000)
    with pytest.raises(Replayed, match="already received"):
        seen.check(lowest, ts=2_000, now_ms=3_000)

    full = SeenIds(window_ms=10_000, capacity=1)
    full.record(highest, ts=5_000, now_ms=6_000)
    full.record(lowest, ts=6_000, now_ms=6_000)  # evicts `highest`, stamped in second 5
    assert full.horizon_ms == 5_999
    with pytest.raises(Replayed, match="already received"):
        full.check(lowest, ts=6_000, now_ms=6_000)


def test_an_id_of_another_size_is_refused() -> None:
    seen = SeenIds(window_ms=1_000)
    # Held as ints, b"\x01" and b"\x00\x01" would be one id.
    for wrong in (b"\x01", b"\x00" * 15 + b"\x01" + b"\x00"):
        with pytest.raises(BadRequest, match="16 bytes"):
            seen.check(wrong, ts=0, now_ms=0)
        with pytest.raises(BadRequest, match="16 bytes"):
            seen.record(wrong, ts=0, now_ms=0)
    assert len(seen) == 0

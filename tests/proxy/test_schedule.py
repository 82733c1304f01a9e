from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from proxy_agent.schedule import (
    JITTER,
    RECONNECT_SPREAD_S,
    RETRY_MAX_S,
    beat_after_reconnect,
    draw_jitter,
    renew_due,
    retry_delay,
)

DAY = 86400


def test_renews_at_two_thirds_without_jitter() -> None:
    assert renew_due(0, 300 * DAY, 0.0) == 200 * DAY


@given(st.integers(0, 2**31), st.integers(1, 3650), st.floats(-JITTER, JITTER))
def test_due_stays_inside_the_lifetime_and_near_two_thirds(
    start: int, days: int, jitter: float
) -> None:
    end = start + days * DAY
    due = renew_due(start, end, jitter)
    assert start < due < end
    assert abs(due - (start + (end - start) * 2 / 3)) <= (end - start) * JITTER + 1


def test_jitter_spreads_a_fleet() -> None:
    rng = random.Random(7)
    dues = {renew_due(0, 398 * DAY, draw_jitter(rng)) // 3600 for _ in range(200)}
    assert len(dues) > 100  # 200 proxies enrolled together do not renew in the same hour


def test_retry_delay_grows_and_is_capped() -> None:
    delays = [retry_delay(n) for n in range(1, 12)]
    assert delays == sorted(delays) and delays[0] == 60 and delays[-1] == RETRY_MAX_S


def test_first_beat_after_a_reconnect_is_soon_and_spread() -> None:
    rng = random.Random(3)
    delays = [beat_after_reconnect(30, rng) for _ in range(200)]
    assert all(0 <= d <= RECONNECT_SPREAD_S for d in delays)
    # 200 proxies coming back together spread over the window, not into one instant.
    assert max(delays) - min(delays) > RECONNECT_SPREAD_S * 0.9
    assert len({round(d, 1) for d in delays}) > 40
    assert all(d <= 2 for d in (beat_after_reconnect(2, rng) for _ in range(50)))

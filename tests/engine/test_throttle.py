"""The leaky-bucket budgets behind the engine's rate limits, with time fed in."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine_agent.throttle import Budget, Throttle


def test_a_key_is_blocked_after_its_burst_and_only_then() -> None:
    throttle = Throttle(Budget(burst=3, refill_per_s=1.0))
    assert [throttle.charge("a", 0.0) for _ in range(3)] == [False, False, True]
    assert throttle.blocked("a", 0.0)
    assert not throttle.blocked("b", 0.0)


def test_a_blocked_key_drains_at_the_refill_rate() -> None:
    throttle = Throttle(Budget(burst=2, refill_per_s=0.5))
    throttle.charge("a", 0.0)
    throttle.charge("a", 0.0)
    assert throttle.retry_after("a", 0.0) == 2.0
    assert throttle.blocked("a", 1.9)
    assert not throttle.blocked("a", 2.0)
    assert throttle.retry_after("a", 2.0) == 0.0


def test_memory_is_bounded_by_forgetting_the_longest_quiet_key() -> None:
    throttle = Throttle(Budget(burst=1, refill_per_s=0.001), max_keys=3)
    for i, key in enumerate("abcd"):
        throttle.charge(key, float(i))
    assert len(throttle) == 3
    assert not throttle.blocked("a", 4.0)  # forgotten
    assert throttle.blocked("d", 4.0)


def test_per_minute() -> None:
    assert Budget.per_minute(30) == Budget(30, 0.5)


@given(
    st.integers(1, 20),
    st.floats(0.01, 10.0),
    st.lists(st.floats(0.0, 0.5), min_size=1, max_size=300),
)
def test_a_key_refused_while_blocked_never_gets_more_than_burst_plus_refill(
    burst: int, rate: float, gaps: list[float]
) -> None:
    """What a caller admits (charging only what it admits) over any span of time."""
    throttle = Throttle(Budget(burst, rate))
    now, admitted = 0.0, 0
    for gap in gaps:
        now += gap
        if not throttle.blocked("k", now):
            throttle.charge("k", now)
            admitted += 1
    assert admitted <= burst + rate * now + 1e-9

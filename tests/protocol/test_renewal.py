from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocol.renewal import JITTER, overdue_after, renew_due

DAY = 86400


def test_due_at_two_thirds_when_no_jitter_is_given() -> None:
    assert renew_due(1000, 1000 + 300 * DAY) == 1000 + 200 * DAY


@given(st.integers(0, 2**31), st.integers(1, 3650), st.floats(-JITTER, JITTER, allow_nan=False))
def test_no_proxy_renews_by_itself_after_the_overdue_mark(
    start: int, days: int, jitter: float
) -> None:
    end = start + days * DAY
    assert renew_due(start, end, jitter) <= overdue_after(start, end) < end

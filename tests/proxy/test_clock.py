"""proxy_agent.clock: a clock skew the engine complains about, kept for status until it ends.

The two-host test (tests/twohosts/test_clock_skew.py) shows it with real daemons; these show
the bookkeeping between heartbeats, including a skew left behind by an earlier daemon run.
"""

from __future__ import annotations

from pathlib import Path

from proxy_agent import state
from proxy_agent.clock import ClockWatch
from wsproxy_agent import logs
from wsproxy_agent.paths import HostPaths

SKEWED = "Clock skew: the engine stamps its messages 600 s ahead of this host's clock."


def watch(tmp_path: Path) -> tuple[ClockWatch, Path]:
    paths = HostPaths.under(tmp_path)
    paths.proxy_state.parent.mkdir(parents=True, exist_ok=True)
    return ClockWatch(paths, "engine.example.com:6101", logs.get("test")), paths.proxy_state


def clock_error(state_file: Path) -> str | None:
    error = (state.load(state_file).get("errors") or {}).get("clock")
    return None if error is None else str(error["message"])


def test_a_skew_stays_while_every_beat_is_refused(tmp_path: Path) -> None:
    clock, state_file = watch(tmp_path)
    for _ in range(3):
        clock.beat_sent()
        clock.refused(SKEWED, 600_000)
    clock.beat_sent()
    assert clock_error(state_file) == SKEWED


def test_a_beat_without_a_refusal_clears_it(tmp_path: Path) -> None:
    clock, state_file = watch(tmp_path)
    clock.beat_sent()
    clock.refused(SKEWED, 600_000)
    clock.beat_sent()  # this one draws no refusal: the clocks agree again
    assert clock_error(state_file) == SKEWED
    clock.beat_sent()
    assert clock_error(state_file) is None


def test_a_skew_recorded_by_an_earlier_run_is_cleared_too(tmp_path: Path) -> None:
    _, state_file = watch(tmp_path)
    state.record_error(state_file, "clock", SKEWED)
    clock, _ = watch(tmp_path)  # the daemon started again, with the clocks now agreeing
    clock.beat_sent()
    assert clock_error(state_file) == SKEWED
    clock.beat_sent()
    assert clock_error(state_file) is None

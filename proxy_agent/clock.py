"""Whether the engine refuses this proxy's messages for clock skew, kept for ``status``.

The engine answers a message stamped outside its freshness window, and its answer, stamped
by its own clock, is refused here the same way: for the daemon, whose heartbeats get no
other answer, that refusal is the only sign of a skew. The skew is recorded as the "clock"
error in proxy-state.json on the first refusal, logged once, and cleared once a heartbeat
has gone a whole interval without drawing another.
"""

from __future__ import annotations

import time
from typing import Any

from proxy_agent import state
from wsproxy_agent.paths import HostPaths


class ClockWatch:
    def __init__(self, paths: HostPaths, engine: str, log: Any) -> None:
        self.state_file = paths.proxy_state
        self.engine = engine
        self.log = log
        # A skew recorded by an earlier run stays until a heartbeat shows the clocks agree.
        self.recorded = "clock" in (state.load(self.state_file).get("errors") or {})
        self.logged = False
        self.refused_at = 0.0  # monotonic
        self.last_beat: float | None = None

    def refused(self, sentence: str, skew_ms: int) -> None:
        if not self.logged:
            self.log.error(
                "engine_clock_skew", engine=self.engine, skew_s=skew_ms // 1000, why=sentence
            )
            state.record_error(self.state_file, "clock", sentence)
            self.logged = self.recorded = True
        self.refused_at = time.monotonic()

    def beat_sent(self) -> None:
        now = time.monotonic()
        previous_beat_unrefused = self.last_beat is not None and self.refused_at < self.last_beat
        if self.recorded and previous_beat_unrefused:
            self.log.info("engine_clock_agrees", engine=self.engine)
            state.clear_error(self.state_file, "clock")
            self.logged = self.recorded = False
        self.last_beat = now

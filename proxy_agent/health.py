"""The proxy's health, as heartbeats and status replies carry it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from protocol.codec import Value
from proxy_agent import state
from proxy_agent.settings import ProxySettings
from wsproxy_agent import __version__, commands
from wsproxy_agent.files import sha256_file

NO_FILE_SHA256 = "0" * 64
# A look at the health this recent is answered again rather than taken anew: each look forks
# the service check and hashes setup.conf, and status queries may come many at a time (an
# operator's script, 'status --live' run in a loop) while a beat is due.
MAX_AGE_S = 1.0


def service_active(settings: ProxySettings) -> bool:
    try:
        commands.run(settings.service_check_command, timeout=min(settings.command_timeout, 15))
    except commands.CommandFailed:
        return False
    return True


def snapshot(settings: ProxySettings) -> dict[str, Value]:
    saved: dict[str, Any] = state.load(settings.paths.proxy_state)
    not_after = saved.get("not_after")
    days_left = (int(not_after) - int(time.time())) // 86400 if isinstance(not_after, int) else 0
    health: dict[str, Value] = {
        "service_active": service_active(settings),
        "cert_days_left": days_left,
        "setup_conf_sha256": sha256_file(settings.paths.setup_conf) or NO_FILE_SHA256,
        "agent_version": __version__,
    }
    if isinstance(saved.get("serial"), str):
        health["serial"] = saved["serial"]
    return health


class Health:
    """The proxy's health as last looked at, looked at again once it is ``max_age_s`` old."""

    def __init__(
        self, max_age_s: float = MAX_AGE_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_age_s = max_age_s
        self.clock = clock
        self._taken: dict[str, Value] = {}
        self._taken_at: float | None = None
        self._taken_for: ProxySettings | None = None

    def snapshot(self, settings: ProxySettings) -> dict[str, Value]:
        now = self.clock()
        stale = self._taken_at is None or now - self._taken_at >= self.max_age_s
        if stale or settings is not self._taken_for:
            self._taken = snapshot(settings)
            self._taken_at, self._taken_for = now, settings
        return dict(self._taken)

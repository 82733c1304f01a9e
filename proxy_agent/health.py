"""The proxy's health, as heartbeats and status replies carry it."""

from __future__ import annotations

import time
from typing import Any

from protocol.codec import Value
from proxy_agent import state
from proxy_agent.settings import ProxySettings
from wsproxy_agent import __version__, commands
from wsproxy_agent.files import sha256_file

NO_FILE_SHA256 = "0" * 64


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

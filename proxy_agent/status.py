"""``status`` on the proxy host: enrollment, the certificate, the installed files.

Reads proxy.toml, the saved state and the files themselves, so it reports even when the
daemon is down; it asks the daemon only whether it is alive.
"""

from __future__ import annotations

import time
from typing import Any

from proxy_agent import install, setup_conf, state
from wsproxy_agent import config, control
from wsproxy_agent.paths import HostPaths
from wsproxy_agent.status_report import when

EXPIRY_WARNING_DAYS = 30


def report(paths: HostPaths) -> dict[str, Any]:
    problems: list[str] = []
    settings = config.load(paths.proxy_toml, config.PROXY_DEFAULTS)
    saved = state.load(paths.proxy_state)
    ping = control.ask(paths.proxy_control, {"op": "ping"})
    enrolled = bool(saved.get("serial")) and saved.get("enrollment") in ("active", "enrolled")
    now = int(time.time())
    not_after = saved.get("not_after")
    days_left = (int(not_after) - now) // 86400 if isinstance(not_after, int) else None
    facts = {
        "enrolled": saved.get("enrollment", "no") if saved else "no",
        "engine": f"{settings['engine']} (pin {settings['engine_fingerprint']})",
        "proxy": f"{settings['fqdn']}:{settings['port']}",
        "daemon": f"running (pid {ping['pid']})" if ping else "not running",
        "subject": saved.get("subject", "-"),
        "san": ", ".join(saved.get("san", [])) or "-",
        "serial": saved.get("serial", "-"),
        "expires": f"{when(not_after)} ({days_left} days left)" if days_left is not None else "-",
        "last contact": when(saved.get("last_contact")),
    }
    if saved.get("corrupt"):
        problems.append(f"{paths.proxy_state} is unreadable; run 'wsproxy-agent proxy join' again.")
    if saved.get("enrollment") == "revoked":
        problems.append(
            f"The engine revoked this proxy ({saved.get('revoked_reason')}); "
            "join again with a fresh token."
        )
    elif not enrolled:
        problems.append("This proxy is not enrolled: run 'wsproxy-agent proxy join'.")
    elif saved.get("enrollment") == "enrolled" and not saved.get("activated"):
        reason = saved.get("activation_reason") or ""
        if "no-activate" not in reason:
            problems.append(f"The engine was not switched to this proxy: {reason}")
    if ping is None and enrolled:
        problems.append("The proxy daemon is not running: systemctl start wsproxy-agent-proxy")
    if days_left is not None and days_left < EXPIRY_WARNING_DAYS:
        problems.append(f"The certificate expires in {days_left} days.")
    files = []
    for entry in install.installed_files_report(paths):
        mark = "ok" if entry["present"] and entry["mode_ok"] else "PROBLEM"
        files.append(
            f"{entry['path']}  {entry['mode'] or 'missing'}  {entry['owner'] or ''}  {mark}"
        )
        if enrolled and not entry["present"]:
            problems.append(f"{entry['path']} is missing.")
        elif enrolled and not entry["mode_ok"]:
            problems.append(
                f"{entry['path']} has mode {entry['mode']}; expected {entry['expected_mode']}."
            )
    if enrolled and not setup_conf.matches(paths, int(settings["port"])):
        problems.append(f"{paths.setup_conf} differs from what the agent wrote.")
    return {
        "role": "proxy",
        "facts": facts,
        "sections": {"files": files},
        "problems": problems,
    }

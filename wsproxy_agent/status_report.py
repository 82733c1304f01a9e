"""The shape both agents' status reports share, and how a terminal shows one.

A report is a dict: ``role``, ``facts`` (ordered label -> value), ``sections`` (title ->
list of lines) and ``problems`` (sentences; any problem makes ``status`` exit 1).
"""

from __future__ import annotations

import time
from typing import Any

from wsproxy_agent.paths import HostPaths


def not_set_up(paths: HostPaths) -> dict[str, Any]:
    return {
        "role": "none",
        "facts": {"root": str(paths.root)},
        "sections": {},
        "problems": [
            "No agent is set up here: run 'wsproxy-agent engine init' on the engine host "
            "or 'wsproxy-agent proxy join' on the proxy host."
        ],
    }


def when(ts: int | None) -> str:
    if not ts:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def render(report: dict[str, Any]) -> str:
    lines = [f"{report['role']} agent"]
    width = max((len(k) for k in report["facts"]), default=0)
    lines += [f"  {label:<{width}}  {value}" for label, value in report["facts"].items()]
    for title, entries in report["sections"].items():
        lines.append(f"{title}:")
        lines += [f"  {entry}" for entry in entries] or ["  (none)"]
    if report["problems"]:
        lines.append("needs attention:")
        lines += [f"  - {p}" for p in report["problems"]]
    else:
        lines.append("healthy")
    return "\n".join(lines)

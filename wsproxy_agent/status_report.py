"""The shape both agents' status reports share, and how a terminal shows one.

A report is a dict: ``role``, ``facts`` (ordered label -> value), ``sections`` (title ->
list of lines) and ``problems`` (each ``{"problem": sentence, "fix": what to run}``; any
problem makes ``status`` exit 1).
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
            problem(
                "No agent is set up here.",
                "wsproxy-agent engine init (engine host), or wsproxy-agent proxy join (proxy host)",
            )
        ],
    }


def problem(what: str, fix: str) -> dict[str, str]:
    return {"problem": what, "fix": fix}


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
        for p in report["problems"]:
            lines += [f"  - {p['problem']}", f"    fix: {p['fix']}"]
    else:
        lines.append("healthy")
    return "\n".join(lines)

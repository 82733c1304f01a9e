"""The shape both agents' status reports share, and how a terminal shows one.

A report is a dict: ``role``, ``facts`` (ordered label -> value), ``sections`` (title ->
list of lines) and ``problems`` (each ``{"problem": sentence, "fix": what to run}``; any
problem makes ``status`` exit 1).

A running daemon builds its host's report and hands it over the control socket; only when
none answers does the command line build it from the files itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wsproxy_agent import control
from wsproxy_agent.paths import HostPaths

Report = dict[str, Any]
# The role of a host where neither agent is set up.
NO_ROLE = "none"


def gather(control_path: Path, build: Callable[[dict[str, Any] | None], Report]) -> Report:
    """The running daemon's report, else ``build(ping)``: from the files, with the daemon's
    answer to a ping (None when no daemon answers)."""
    answer = control.ask(control_path, {"op": "status"})
    if answer is not None and answer.get("ok") and isinstance(answer.get("report"), dict):
        report: Report = answer["report"]
        return report
    # A daemon that could not build it, or one older than the operation, still says it runs.
    return build(None if answer is None else control.ask(control_path, {"op": "ping"}))


def answer_for_control(build: Callable[[], Report], log: Any) -> dict[str, Any]:
    """A daemon's answer to ``status``: the report, or why it could not be built.

    The report reads files an administrator may have left broken (a config mid-edit, a
    state file from a full disk); that must cost one status call, never the daemon, and the
    command line then builds the report itself and says what is wrong.
    """
    try:
        return {"ok": True, "report": build()}
    except Exception as exc:  # whatever a file held, the daemon carries on
        log.error("status_report_failed", why=f"{type(exc).__name__}: {exc}")
        return {"ok": False, "error": "the daemon could not build the report"}


def not_set_up(paths: HostPaths) -> dict[str, Any]:
    return {
        "role": NO_ROLE,
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
    role = report["role"]
    lines = ["no agent set up" if role == NO_ROLE else f"{role} agent"]
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

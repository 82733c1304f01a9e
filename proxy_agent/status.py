"""``status`` on the proxy host: enrollment, the certificate, the installed files.

Built from proxy.toml, the saved state and the files themselves. A running daemon builds it
(the ``status`` control operation) so that the command line need not load this module; when
none answers, the command line builds it itself, so it reports even when the daemon is down.
Every problem comes with the command that fixes it.
"""

from __future__ import annotations

import time
from typing import Any, get_args

from protocol import renewal
from proxy_agent import install, setup_conf, state
from wsproxy_agent import config
from wsproxy_agent.paths import HostPaths
from wsproxy_agent.status_report import problem, when

EXPIRY_WARNING_DAYS = 30
RENEW = "wsproxy-agent proxy renew"
JOIN = "wsproxy-agent proxy join <join string from 'wsproxy-agent token create' on the engine>"
START = "systemctl start wsproxy-agent-proxy"
STEP_NAMES = {
    "link": "Reaching the engine",
    "clock": "Agreeing on the time with the engine",
    "join": "Joining",
    "renew": "Renewing",
    "install": "Checking and installing the certificate",
    "restart": "Restarting the websocket proxy",
    "report": "Reporting to the engine",
    "activation": "Switching the engine over",
}


def report(paths: HostPaths, ping: dict[str, Any] | None) -> dict[str, Any]:
    """The report, given the daemon's answer to a ping (None: no daemon answers)."""
    problems: list[dict[str, str]] = []
    settings = config.load(paths.proxy_toml, config.PROXY_DEFAULTS)
    saved = state.load(paths.proxy_state)
    enrolled = bool(saved.get("serial")) and saved.get("enrollment") in ("active", "enrolled")
    now = int(time.time())
    not_after = saved.get("not_after")
    days_left = (int(not_after) - now) // 86400 if isinstance(not_after, int) else None
    plan = renewal_plan(saved, daemon_running=ping is not None) if enrolled else None
    errors = saved.get("errors") or {}
    facts = {
        "enrolled": saved.get("enrollment", "no") if saved else "no",
        "engine": f"{settings['engine']} (pin {settings['engine_fingerprint']})",
        "proxy": f"{settings['fqdn']}:{settings['port']}",
        "daemon": f"running (pid {ping['pid']})" if ping else "not running",
        "subject": saved.get("subject", "-"),
        "san": ", ".join(saved.get("san", [])) or "-",
        "serial": saved.get("serial", "-"),
        "expires": f"{when(not_after)} ({days_left} days left)" if days_left is not None else "-",
        "renewal": describe_renewal(plan),
        "last contact": when(saved.get("last_contact")),
        "engine link": _link_fact(saved, running=ping is not None),
    }
    if ping is not None and isinstance(saved.get("link_down_since"), int):
        problems.append(
            problem(
                f"The engine at {settings['engine']} has been unreachable since "
                f"{when(saved['link_down_since'])}.",
                "check the network between the hosts and run "
                "'wsproxy-agent status' on the engine host",
            )
        )
    if saved.get("corrupt"):
        problems.append(problem(f"{paths.proxy_state} is unreadable.", JOIN))
    if saved.get("enrollment") == "revoked":
        problems.append(
            problem(f"The engine revoked this proxy ({saved.get('revoked_reason')}).", JOIN)
        )
    elif not enrolled:
        problems.append(problem("This proxy is not enrolled.", JOIN))
    if ping is None and enrolled:
        problems.append(problem("The proxy daemon is not running.", START))
        if plan is not None and plan["due"] < now:
            problems.append(
                problem(f"The certificate was due for renewal about {when(plan['due'])}.", RENEW)
            )
    if days_left is not None and days_left < EXPIRY_WARNING_DAYS:
        problems.append(problem(f"The certificate expires in {days_left} days.", RENEW))
    for step in ordered_steps(errors):
        error = errors[step]
        problems.append(
            problem(
                f"{STEP_NAMES.get(step, step)} failed {when(error.get('at'))}: "
                f"{error.get('message')}",
                fix_for(step, enrolled, str(settings["fqdn"])),
            )
        )
    files = []
    for entry in install.installed_files_report(paths):
        mark = "ok" if entry["present"] and entry["mode_ok"] else "PROBLEM"
        files.append(
            f"{entry['path']}  {entry['mode'] or 'missing'}  {entry['owner'] or ''}  {mark}"
        )
        if enrolled and not entry["present"]:
            problems.append(problem(f"{entry['path']} is missing.", RENEW))
        elif enrolled and not entry["mode_ok"]:
            problems.append(
                problem(
                    f"{entry['path']} has mode {entry['mode']}; expected {entry['expected_mode']}.",
                    f"chmod {entry['expected_mode']} {entry['path']}",
                )
            )
    if enrolled and not setup_conf.matches(paths, int(settings["port"])):
        problems.append(problem(f"{paths.setup_conf} differs from what the agent wrote.", RENEW))
    return {
        "role": "proxy",
        "facts": facts,
        "sections": {
            "files": files,
            "last errors": [
                f"{step}  {when(errors[step].get('at'))}  {errors[step].get('message')}"
                for step in ordered_steps(errors)
            ],
        },
        "renewal": plan,
        "errors": errors,
        "problems": problems,
    }


def renewal_plan(saved: dict[str, Any], daemon_running: bool) -> dict[str, Any] | None:
    """When the certificate renews: the running daemon's own plan, else the two-thirds rule."""
    not_before, not_after = saved.get("not_before"), saved.get("not_after")
    if not isinstance(not_before, int) or not isinstance(not_after, int):
        return None
    plan = saved.get("renewal") or {}
    # A plan left by a daemon that has stopped, or made for a replaced certificate, is stale.
    if daemon_running and plan.get("not_after") == not_after:
        return {
            "due": plan["due"],
            "exact": True,
            "failures": plan["failures"],
            "next_try": plan["next_try"],
        }
    return {
        "due": renewal.renew_due(not_before, not_after),
        "exact": False,
        "failures": 0,
        "next_try": None,
    }


def describe_renewal(plan: dict[str, Any] | None) -> str:
    if plan is None:
        return "-"
    failures = plan["failures"]
    if failures:
        times = "time" if failures == 1 else "times"
        return f"failed {failures} {times}, next try {when(plan['next_try'])}"
    return f"due {'' if plan['exact'] else 'about '}{when(plan['due'])}"


def ordered_steps(errors: dict[str, Any]) -> list[str]:
    known = [step for step in get_args(state.Step) if step in errors]
    return known + sorted(set(errors) - set(known))


def fix_for(step: str, enrolled: bool, fqdn: str) -> str:
    again = RENEW if enrolled else JOIN
    if step == "link":
        return (
            "start the engine agent (on the engine: systemctl start wsproxy-agent-engine) "
            f"and check the network path to it, then {again}"
        )
    if step == "clock":
        return "set the clock right on whichever host is wrong (NTP); the daemon notices by itself"
    if step == "restart":
        return f"fix the websocket proxy (journalctl -u ovirt-websocket-proxy), then {again}"
    if step == "activation":
        return f"on the engine: wsproxy-agent engine activate {fqdn}"
    if step == "join":
        return JOIN
    return again


def _link_fact(saved: dict[str, Any], running: bool) -> str:
    if not running:
        return "unknown (the daemon is not running)"
    down_since = saved.get("link_down_since")
    fact = f"DOWN since {when(down_since)}" if isinstance(down_since, int) else "up"
    outage = saved.get("last_outage")
    if isinstance(outage, dict):
        fact += f"; last outage {outage.get('seconds')} s, ended {when(outage.get('to'))}"
    return fact

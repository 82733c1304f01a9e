"""``status`` on the engine host: the daemon, the CA, and every proxy the registry knows.

Built from the registry and the config on disk. A running daemon builds it (the ``status``
control operation) so that the command line need not load this module; when none answers,
the command line builds it itself, so it reports even when the daemon is down. Every
problem comes with the command that fixes it.
"""

from __future__ import annotations

import time
from typing import Any

from engine_agent.registry import Proxy, Registry
from protocol import renewal
from protocol.states import EngineState
from wsproxy_agent import config, control
from wsproxy_agent.paths import HostPaths
from wsproxy_agent.status_report import problem, when

EXPIRY_WARNING_DAYS = 30
START = "systemctl start wsproxy-agent-engine"


def report(paths: HostPaths, ping: dict[str, Any] | None) -> dict[str, Any]:
    """The report, given the daemon's answer to a ping (None: no daemon answers)."""
    problems: list[dict[str, str]] = []
    settings = config.load(paths.engine_toml, config.ENGINE_DEFAULTS)
    if ping is None:
        problems.append(problem("The engine daemon is not running.", START))
    registry = Registry(paths.registry)
    try:
        proxies = registry.proxies()
        ca_subject = registry.meta("ca_subject") or "unknown (run engine init)"
        ca_not_after = int(registry.meta("ca_not_after") or 0)
        fingerprint = registry.meta("fingerprint") or "unknown (run engine init)"
    finally:
        registry.close()
    now = int(time.time())
    if ca_not_after and ca_not_after - now < EXPIRY_WARNING_DAYS * 86400:
        problems.append(
            problem(
                f"The CA certificate expires {when(ca_not_after)}.",
                "engine-setup (it offers to renew the CA), then systemctl restart "
                "wsproxy-agent-engine and renew each proxy: wsproxy-agent engine renew FQDN",
            )
        )
    facts = {
        "daemon": f"running (pid {ping['pid']})" if ping else "not running",
        "listen": settings["listen"],
        "advertised": settings["advertise"],
        "fingerprint": fingerprint,
        "ca": f"{ca_subject}, expires {when(ca_not_after)}",
        "signer": settings["signer"],
    }
    stale_after = settings["heartbeat_interval"] * settings["stale_after_missed"]
    enrolled, pending, other, rows = [], [], [], []
    for p in proxies:
        due = renewal_due(p, now)
        stale = bool(p.last_seen) and now - (p.last_seen or 0) > stale_after
        rows.append(
            {
                "fqdn": p.fqdn,
                "port": p.port,
                "state": p.state.value,
                "active": p.active,
                "fingerprint": p.fingerprint,
                "not_before": p.not_before,
                "not_after": p.not_after,
                "renew_due": due["at"] if due else None,
                "renewal_overdue": bool(due and due["overdue"]),
                "last_seen": p.last_seen,
                "stale": stale,
                "activation_error": p.activation_error,
                "last_error": (
                    {"message": p.last_error, "at": p.last_error_at} if p.last_error else None
                ),
            }
        )
        line = f"{p.fqdn}:{p.port}  {p.state.value}"
        if p.active and p.state is not EngineState.ACTIVE:
            line += " (engine points here)"
        if p.state is EngineState.PENDING:
            pending.append(f"{p.fqdn}:{p.port}  {p.fingerprint}  requested {when(p.requested_at)}")
        elif p.state in (EngineState.REJECTED, EngineState.REVOKED):
            other.append(line)
        else:
            line += f"  cert until {when(p.not_after)}"
            if due:
                overdue = "OVERDUE, was due" if due["overdue"] else "due"
                line += f"  renewal {overdue} about {when(due['at'])}"
            enrolled.append(
                line + f"  last seen {when(p.last_seen)}" + ("  STALE" if stale else "")
            )
        problems += proxy_problems(p, due, stale, settings["stale_after_missed"], now)
    sections: dict[str, list[str]] = {
        "proxies": enrolled,
        "pending": pending,
        "rejected or revoked": other,
    }
    return {
        "role": "engine",
        "live": None,
        "facts": facts,
        "sections": sections,
        "proxies": rows,
        "problems": problems,
    }


def add_live(report: dict[str, Any], paths: HostPaths, timeout: float, fqdn: str | None) -> None:
    """Ask every connected proxy (or only ``fqdn``) through the daemon, and add who answered."""
    problems = report["problems"]
    request: dict[str, Any] = {"op": "live", "timeout": timeout}
    if fqdn is not None:
        request["fqdn"] = fqdn
    answer = control.ask(paths.engine_control, request, timeout_ms=int(timeout * 1000) + 2000)
    if answer is None:
        problems.append(problem("--live needs the engine daemon, which does not answer.", START))
    elif not answer.get("ok"):
        problems.append(problem(f"--live: {answer.get('error')}.", "wsproxy-agent keys list"))
    else:
        live_answers = answer.get("answers", {})
        report["live"] = live_answers
        report["sections"]["live"] = [
            _live_line(name, a) for name, a in sorted(live_answers.items())
        ]
        silent = sorted(name for name, a in live_answers.items() if a is None)
        if silent:
            problems.append(
                problem(
                    f"No answer within {timeout:g} s from: {', '.join(silent)}",
                    "on each: systemctl restart wsproxy-agent-proxy",
                )
            )


def renewal_due(p: Proxy, now: int) -> dict[str, Any] | None:
    """When the proxy should renew (the two-thirds rule, give or take its jitter)."""
    if p.not_before is None or p.not_after is None:
        return None
    return {
        "at": renewal.renew_due(p.not_before, p.not_after),
        "overdue": now > renewal.overdue_after(p.not_before, p.not_after),
    }


def proxy_problems(
    p: Proxy, due: dict[str, Any] | None, stale: bool, missed: int, now: int
) -> list[dict[str, str]]:
    """What needs doing about one proxy, each with the command that does it."""
    renew = f"wsproxy-agent engine renew {p.fqdn} (or on {p.fqdn}: wsproxy-agent proxy renew)"
    if p.state is EngineState.PENDING:
        return [
            problem(
                f"{p.fqdn} ({p.fingerprint}) waits for a decision on its request.",
                f"wsproxy-agent keys accept {p.fqdn}  (or: wsproxy-agent keys reject {p.fqdn})",
            )
        ]
    if p.state in (EngineState.REJECTED, EngineState.REVOKED):
        if not p.active:
            return []
        return [
            problem(
                f"{p.fqdn} is revoked but the engine still points at it "
                f"({p.activation_error or 'not switched back'}).",
                f"wsproxy-agent engine deactivate {p.fqdn}",
            )
        ]
    found = []
    if stale:
        found.append(
            problem(
                f"{p.fqdn} has not been heard from since {when(p.last_seen)} "
                f"({missed} heartbeats missed).",
                f"on {p.fqdn}: systemctl restart wsproxy-agent-proxy, and check that it "
                "reaches this engine's agent port",
            )
        )
    if p.state is EngineState.ACTIVATION_FAILED:
        found.append(
            problem(
                f"{p.fqdn}: switching the engine over failed: {p.activation_error}.",
                f"fix that, then: wsproxy-agent engine activate {p.fqdn}",
            )
        )
    elif p.activation_error and p.active:  # switching back failed; it still points here
        found.append(
            problem(f"{p.fqdn}: {p.activation_error}.", f"wsproxy-agent engine deactivate {p.fqdn}")
        )
    if p.last_error:
        again = (
            f"on {p.fqdn}: fix what its 'wsproxy-agent status' shows, then run its join again"
            if p.state is EngineState.APPROVED
            else f"fix what it says, then: {renew}"
        )
        found.append(problem(f"{p.fqdn}: {p.last_error} ({when(p.last_error_at)}).", again))
    if due and due["overdue"]:
        found.append(
            problem(
                f"{p.fqdn}: its certificate was due for renewal about {when(due['at'])} "
                "and was not renewed.",
                renew,
            )
        )
    if p.not_after and p.not_after - now < EXPIRY_WARNING_DAYS * 86400:
        found.append(problem(f"{p.fqdn}: its certificate expires {when(p.not_after)}.", renew))
    return found


def _live_line(fqdn: str, answer: dict[str, Any] | None) -> str:
    if answer is None:
        return f"{fqdn}  NO ANSWER"
    service = "service active" if answer.get("service_active") else "SERVICE DOWN"
    return (
        f"{fqdn}  answered in {answer.get('rtt_ms', 0):.0f} ms: {service}, certificate "
        f"{answer.get('cert_days_left')} days left, agent {answer.get('agent_version')}"
    )

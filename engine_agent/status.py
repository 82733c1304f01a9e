"""``status`` on the engine host: the daemon, the CA, and every proxy the registry knows.

Reads the registry and the config from disk, so it reports even when the daemon is down,
and asks the daemon over the control socket only whether it is alive.
"""

from __future__ import annotations

import time
from typing import Any

from engine_agent.registry import Registry
from protocol.states import EngineState
from wsproxy_agent import config, control
from wsproxy_agent.paths import HostPaths
from wsproxy_agent.status_report import when

EXPIRY_WARNING_DAYS = 30


def report(paths: HostPaths, live: bool = False, live_timeout: float = 3.0) -> dict[str, Any]:
    problems: list[str] = []
    settings = config.load(paths.engine_toml, config.ENGINE_DEFAULTS)
    ping = control.ask(paths.engine_control, {"op": "ping"})
    if ping is None:
        problems.append("The engine daemon is not running: systemctl start wsproxy-agent-engine")
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
        problems.append(f"The CA certificate expires {when(ca_not_after)}.")
    facts = {
        "daemon": f"running (pid {ping['pid']})" if ping else "not running",
        "listen": settings["listen"],
        "advertised": settings["advertise"],
        "fingerprint": fingerprint,
        "ca": f"{ca_subject}, expires {when(ca_not_after)}",
        "signer": settings["signer"],
    }
    enrolled, pending, other, rows = [], [], [], []
    for p in proxies:
        row = {
            "fqdn": p.fqdn,
            "port": p.port,
            "state": p.state.value,
            "active": p.active,
            "fingerprint": p.fingerprint,
            "not_after": p.not_after,
            "last_seen": p.last_seen,
            "activation_error": p.activation_error,
        }
        rows.append(row)
        line = f"{p.fqdn}:{p.port}  {p.state.value}"
        if p.active and p.state is not EngineState.ACTIVE:
            line += " (engine points here)"
        if p.state is EngineState.PENDING:
            pending.append(f"{p.fqdn}:{p.port}  {p.fingerprint}  requested {when(p.requested_at)}")
            continue
        if p.state in (EngineState.REJECTED, EngineState.REVOKED):
            other.append(line)
            if p.active:
                problems.append(
                    f"{p.fqdn} is revoked but the engine still points at it "
                    f"({p.activation_error or 'not switched back'}); "
                    f"run 'wsproxy-agent engine deactivate {p.fqdn}'."
                )
            continue
        line += f"  cert until {when(p.not_after)}  last seen {when(p.last_seen)}"
        stale_after = settings["heartbeat_interval"] * settings["stale_after_missed"]
        if p.last_seen and now - p.last_seen > stale_after:
            line += "  STALE"
            problems.append(
                f"{p.fqdn} has not been heard from since {when(p.last_seen)} "
                f"({settings['stale_after_missed']} heartbeats missed); is its agent running?"
            )
        enrolled.append(line)
        if p.state is EngineState.ACTIVATION_FAILED:
            problems.append(
                f"{p.fqdn}: switching the engine over failed: {p.activation_error}. "
                f"Fix it, then run 'wsproxy-agent engine activate {p.fqdn}'."
            )
        if p.not_after and p.not_after - now < EXPIRY_WARNING_DAYS * 86400:
            problems.append(f"{p.fqdn}: its certificate expires {when(p.not_after)}.")
    if pending:
        problems.append(
            f"{len(pending)} request(s) wait for a decision: wsproxy-agent keys accept|reject FQDN"
        )
    sections: dict[str, list[str]] = {
        "proxies": enrolled,
        "pending": pending,
        "rejected or revoked": other,
    }
    live_answers = None
    if live:
        answer = control.ask(
            paths.engine_control,
            {"op": "live", "timeout": live_timeout},
            timeout_ms=int(live_timeout * 1000) + 2000,
        )
        if answer is None:
            problems.append("--live needs the engine daemon, which does not answer.")
        else:
            live_answers = answer.get("answers", {})
            sections["live"] = [_live_line(fqdn, a) for fqdn, a in sorted(live_answers.items())]
            silent = sorted(fqdn for fqdn, a in live_answers.items() if a is None)
            if silent:
                problems.append(f"No answer within {live_timeout:g} s from: {', '.join(silent)}")
    return {
        "role": "engine",
        "live": live_answers,
        "facts": facts,
        "sections": sections,
        "proxies": rows,
        "problems": problems,
    }


def _live_line(fqdn: str, answer: dict[str, Any] | None) -> str:
    if answer is None:
        return f"{fqdn}  NO ANSWER"
    service = "service active" if answer.get("service_active") else "SERVICE DOWN"
    return (
        f"{fqdn}  answered: {service}, certificate {answer.get('cert_days_left')} days left, "
        f"agent {answer.get('agent_version')}"
    )

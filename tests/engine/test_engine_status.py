"""The engine's status, per proxy: when it should renew, and the fix for each problem."""

from __future__ import annotations

import dataclasses
from typing import Any

from engine_agent.registry import Proxy
from engine_agent.status import proxy_problems, renewal_due
from protocol.states import EngineState

DAY = 86400
NOW = 1_000 * DAY
FQDN = "p.example"
RENEW = f"wsproxy-agent engine renew {FQDN} (or on {FQDN}: wsproxy-agent proxy renew)"


def proxy(**changes: Any) -> Proxy:
    fields: dict[str, Any] = {f.name: None for f in dataclasses.fields(Proxy)}
    fields.update(
        fqdn=FQDN,
        fingerprint="SHA256:abc",
        state=EngineState.ACTIVE,
        port=6100,
        active=True,
        not_before=NOW - 10 * DAY,
        not_after=NOW + 388 * DAY,
        last_seen=NOW,
    )
    return dataclasses.replace(Proxy(**fields), **changes)


def fixes(p: Proxy, stale: bool = False) -> dict[str, str]:
    return {x["problem"]: x["fix"] for x in proxy_problems(p, renewal_due(p, NOW), stale, 3, NOW)}


def test_renewal_is_due_at_two_thirds_and_overdue_only_past_the_latest_jitter() -> None:
    p = proxy(not_before=0, not_after=300 * DAY)
    assert renewal_due(p, 200 * DAY) == {"at": 200 * DAY, "overdue": False}
    early, late = renewal_due(p, 214 * DAY), renewal_due(p, 216 * DAY)
    assert early is not None and early["overdue"] is False  # a proxy may draw +5 %
    assert late is not None and late["overdue"] is True
    assert renewal_due(proxy(not_before=None), NOW) is None  # pending: no certificate yet


def test_a_healthy_proxy_has_no_problems() -> None:
    assert fixes(proxy()) == {}


def test_an_overdue_renewal_says_how_to_renew() -> None:
    [(problem, fix)] = fixes(proxy(not_before=NOW - 300 * DAY, not_after=NOW + 98 * DAY)).items()
    assert "was not renewed" in problem and fix == RENEW


def test_each_problem_names_its_own_fix() -> None:
    assert list(fixes(proxy(state=EngineState.PENDING, active=False)).values()) == [
        f"wsproxy-agent keys accept {FQDN}  (or: wsproxy-agent keys reject {FQDN})"
    ]
    failed = proxy(state=EngineState.ACTIVATION_FAILED, active=False, activation_error="boom")
    assert list(fixes(failed).values()) == [f"fix that, then: wsproxy-agent engine activate {FQDN}"]
    stuck = proxy(activation_error="switching the engine back failed: boom")
    assert list(fixes(stuck).values()) == [f"wsproxy-agent engine deactivate {FQDN}"]
    revoked = proxy(state=EngineState.REVOKED, activation_error="switching back failed")
    assert list(fixes(revoked).values()) == [f"wsproxy-agent engine deactivate {FQDN}"]
    assert fixes(proxy(state=EngineState.REVOKED, active=False)) == {}
    [stale_fix] = fixes(proxy(), stale=True).values()
    assert stale_fix.startswith(f"on {FQDN}: systemctl restart wsproxy-agent-proxy")
    [expiring] = fixes(proxy(not_before=NOW - 10 * DAY, not_after=NOW + 5 * DAY)).values()
    assert expiring == RENEW


def test_an_activation_being_retried_is_not_a_problem() -> None:
    assert fixes(proxy(state=EngineState.INSTALLED, active=False, activation_error="old")) == {}


def test_the_last_error_is_fixed_by_a_renewal_or_by_joining_again() -> None:
    error = {"last_error": "install failed: no service", "last_error_at": NOW}
    [(problem, fix)] = fixes(proxy(**error)).items()
    assert problem.startswith(f"{FQDN}: install failed: no service (") and fix.endswith(RENEW)
    [first_join] = fixes(proxy(state=EngineState.APPROVED, active=False, **error)).values()
    assert "run its join again" in first_join

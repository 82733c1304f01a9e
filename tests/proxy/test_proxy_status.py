"""The proxy's status: which renewal date it shows, and the fix for each step's failure."""

from __future__ import annotations

from proxy_agent.status import JOIN, RENEW, describe_renewal, fix_for, ordered_steps, renewal_plan

DAY = 86400
CERT = {"not_before": 0, "not_after": 300 * DAY}
PLAN = {"not_after": 300 * DAY, "due": 210 * DAY, "failures": 0, "next_try": None}


def test_a_running_daemon_s_plan_is_shown_as_it_is() -> None:
    plan = renewal_plan({**CERT, "renewal": PLAN}, daemon_running=True)
    assert plan == {"due": 210 * DAY, "exact": True, "failures": 0, "next_try": None}
    assert describe_renewal(plan) == "due 1970-07-30 00:00:00 UTC"


def test_without_a_running_daemon_or_for_another_certificate_the_rule_gives_about() -> None:
    stopped = renewal_plan({**CERT, "renewal": PLAN}, daemon_running=False)
    replaced = renewal_plan({**CERT, "renewal": {**PLAN, "not_after": 1}}, daemon_running=True)
    for plan in (stopped, replaced):
        assert plan == {"due": 200 * DAY, "exact": False, "failures": 0, "next_try": None}
    assert describe_renewal(stopped) == "due about 1970-07-20 00:00:00 UTC"


def test_failures_show_with_the_next_try() -> None:
    failing = {**PLAN, "failures": 2, "next_try": 211 * DAY}
    plan = renewal_plan({**CERT, "renewal": failing}, daemon_running=True)
    assert plan is not None
    assert describe_renewal(plan) == "failed 2 times, next try 1970-07-31 00:00:00 UTC"
    assert describe_renewal({**plan, "failures": 1}).startswith("failed 1 time,")


def test_no_certificate_no_renewal() -> None:
    assert renewal_plan({}, daemon_running=True) is None
    assert describe_renewal(None) == "-"


def test_each_step_s_fix_fits_where_the_proxy_stands() -> None:
    assert fix_for("report", enrolled=True, fqdn="p.example") == RENEW
    assert fix_for("report", enrolled=False, fqdn="p.example") == JOIN
    assert fix_for("join", enrolled=True, fqdn="p.example") == JOIN
    assert fix_for("restart", enrolled=True, fqdn="p.example").endswith(f"then {RENEW}")
    assert "systemctl start wsproxy-agent-engine" in fix_for("link", True, "p.example")
    assert fix_for("activation", True, "p.example") == (
        "on the engine: wsproxy-agent engine activate p.example"
    )


def test_steps_are_listed_in_the_order_they_run() -> None:
    errors: dict[str, dict[str, object]] = {"zzz": {}, "report": {}, "link": {}, "restart": {}}
    assert ordered_steps(errors) == ["link", "restart", "report", "zzz"]

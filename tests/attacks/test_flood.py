"""A flood of enrollment requests without a token, each with a fresh key.

Each one would wait for an operator as a pending row. Pending rows are capped per address
and in all, expire after ``pending_ttl``, and the engine keeps serving throughout: its
enrolled proxy, and token joins, which never need a pending slot.
"""

from __future__ import annotations

from protocol import catalogue as cat
from tests.attacks.conftest import Target
from tests.attacks.forge import engine_events
from tests.e2e.conftest import wait_for
from tests.e2e.rawclient import RawProxy, csr, enroll_body, tls_key


def request_without_token(raw: RawProxy, n: int) -> str | None:
    """An enrollment request for a name of its own; the answer's type, or the error code."""
    fqdn = f"flood{n}.e2e.test"
    raw.send(cat.ENROLL_REQUEST, enroll_body(raw, csr(tls_key("ec"), fqdn), fqdn))
    reply = raw.reply(3.0)
    if reply is None:
        return None
    return str(reply.body["code"]) if reply.type == cat.ERROR else reply.type


def pending(t: Target) -> list[dict[str, object]]:
    return [r for r in t.hosts.registry() if r["state"] == "pending"]


def test_pending_requests_are_capped_per_address_and_in_all_then_expire(target: Target) -> None:
    target.restart_engine(max_pending=5, max_pending_per_address=3, pending_ttl="4s")
    before = target.snapshot()
    answers = [request_without_token(target.attacker(), n) for n in range(5)]
    assert answers == [cat.ENROLL_PENDING] * 3 + ["rate_limited"] * 2
    answers = [request_without_token(target.attacker(source="127.0.0.3"), n) for n in range(5, 9)]
    assert answers == [cat.ENROLL_PENDING] * 2 + ["rate_limited"] * 2
    assert len(pending(target)) == 5
    assert {r["address"] for r in pending(target)} == {"127.0.0.2", "127.0.0.3"}
    # An operator sees where each request came from.
    listing = target.hosts.cli(target.engine_root, "keys", "list", check=True).stdout
    assert "from 127.0.0.2" in listing and "from 127.0.0.3" in listing
    # The engine keeps serving: its enrolled proxy, and a token join (no pending slot needed).
    target.assert_serves_legit()
    second = target.hosts.top / "p2"
    (second / "etc/wsproxy-agent").mkdir(parents=True)
    (second / "etc/wsproxy-agent/proxy.toml").write_text(
        (target.hosts.proxy / "etc/wsproxy-agent/proxy.toml").read_text()
    )
    join = target.hosts.cli(
        second,
        "proxy",
        "join",
        target.hosts.token("--no-activate", proxy="second.e2e.test"),
        "--fqdn",
        "second.e2e.test",
        "--timeout",
        "30",
    )
    assert join.returncode == 0, join.stderr
    # Old requests expire, each logged once, and make room again.
    wait_for(lambda: not pending(target), "the pending requests to expire", timeout=30)
    decisions = engine_events(target, "security_decision")
    assert len([e for e in decisions if e["decision"] == "expire"]) == 5
    assert request_without_token(target.attacker(source="127.0.0.4"), 9) == cat.ENROLL_PENDING
    rows = target.snapshot().rows
    rows["proxies"] = [r for r in rows["proxies"] if r["fqdn"] == "proxy.e2e.test"]
    rows["tokens"] = [r for r in rows["tokens"] if r["proxy_fqdn"] == "proxy.e2e.test"]
    assert rows == before.rows

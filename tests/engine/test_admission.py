"""Which work the engine still does for an address that keeps being refused."""

from __future__ import annotations

import pytest

from engine_agent.admission import GLOBAL_FAILURES, GLOBAL_KEY, Admission, peer_of
from protocol import catalogue
from protocol.errors import RateLimited

ENROLL = catalogue.accepted_by(catalogue.Role.ENGINE)[catalogue.ENROLL_REQUEST]
HEARTBEAT = catalogue.accepted_by(catalogue.Role.ENGINE)[catalogue.HEARTBEAT]


def test_a_spent_address_is_refused_enrollment_but_not_its_enrolled_traffic() -> None:
    admission = Admission(failures_per_minute=3)
    assert [admission.failed("10.0.0.9", 0.0) for _ in range(2)] == [None, None]
    blocked = admission.failed("10.0.0.9", 0.0)
    assert blocked is not None and blocked.peer == "10.0.0.9"
    with pytest.raises(RateLimited, match=r"from 10\.0\.0\.9; try again in 20 s"):
        admission.check("10.0.0.9", ENROLL, 0.0)
    admission.check("10.0.0.9", HEARTBEAT, 0.0)  # a proxy behind the same NAT still talks
    admission.check("10.0.0.10", ENROLL, 0.0)
    admission.check("10.0.0.9", ENROLL, 20.0)  # refilled


def test_refusals_of_a_spent_address_do_not_lengthen_its_wait() -> None:
    admission = Admission(failures_per_minute=1)
    admission.failed("a", 0.0)
    for _ in range(100):
        assert admission.failed("a", 0.0) is None
    admission.check("a", ENROLL, 60.0)


def test_a_flood_from_many_addresses_spends_the_global_budget() -> None:
    admission = Admission(failures_per_minute=1000)
    outcomes = [admission.failed(f"10.1.{i // 256}.{i % 256}", 0.0) for i in range(400)]
    assert [b.peer for b in outcomes if b] == [GLOBAL_KEY]
    assert outcomes.index(next(b for b in outcomes if b)) == GLOBAL_FAILURES.burst - 1
    with pytest.raises(RateLimited, match="flood"):
        admission.check("10.9.9.9", ENROLL, 0.0)


def test_unknown_senders_get_a_few_answers_a_minute() -> None:
    admission = Admission(failures_per_minute=10)
    answered = [admission.may_answer("a", 0.0) for _ in range(15)]
    assert answered == [True] * 10 + [False] * 5
    assert admission.may_answer("b", 0.0)
    assert admission.may_answer("a", 6.0)


@pytest.mark.parametrize(
    ("address", "peer"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        (None, "unknown"),
        ("", "unknown"),
    ],
)
def test_peers_are_counted_by_address_and_ipv6_by_its_64(address: str | None, peer: str) -> None:
    assert peer_of(address) == peer

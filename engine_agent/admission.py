"""How much work the engine does for senders it does not know yet, per address (DESIGN §7).

Before a proxy is enrolled, everything it sends is attacker-controlled input: each refused
request costs the engine a signature check, a CSR parse, registry reads and an audit row,
and each error it answers costs a signature. Three budgets bound that work:

- ``failures``, per peer address: anything refused before the sender is known, and every
  refused enrollment request. Once spent, the address's enrollment requests are refused
  before their signature is checked, unlogged and unanswered, until the budget refills.
- ``answers``, per peer address: signed error replies to senders the engine does not know
  (a clock skew, a wrong recipient). Once spent, such messages get silence.
- ``global``: failures from all addresses together, so that a flood from many addresses
  cannot make the engine write audit rows without end.

Enrolled proxies are never throttled here: their messages are not self-certified, so a
spent address (a NAT shared with an attacker) does not cut them off. An IPv6 peer is
counted by its /64, which is what one host can hand out to itself.

Pure policy: the caller passes the time and does the logging this module asks for.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from engine_agent.throttle import Budget, Throttle
from protocol import catalogue
from protocol.errors import RateLimited

ANSWERS = Budget.per_minute(10)
GLOBAL_FAILURES = Budget(burst=300, refill_per_s=5.0)
GLOBAL_KEY = "*"


@dataclass(frozen=True)
class Blocked:
    """An address (or everyone, ``*``) that just spent its budget: log it once."""

    peer: str
    why: str


class Admission:
    def __init__(self, failures_per_minute: int) -> None:
        self.failures = Throttle(Budget.per_minute(failures_per_minute))
        self.answers = Throttle(ANSWERS)
        self.everyone = Throttle(GLOBAL_FAILURES, max_keys=1)

    def check(self, peer: str, msg_type: catalogue.MessageType, now: float) -> None:
        """Refuse a self-certified request (enrollment) from a peer whose budget is spent."""
        if not msg_type.self_certified:
            return
        if self.failures.blocked(peer, now):
            wait = self.failures.retry_after(peer, now)
            raise RateLimited(f"Too many refused requests from {peer}; try again in {wait:.0f} s.")
        if self.everyone.blocked(GLOBAL_KEY, now):
            raise RateLimited("The engine is refusing a flood of requests; try again later.")

    def failed(self, peer: str, now: float) -> Blocked | None:
        """Count one refusal against ``peer``; what became blocked by it, if anything."""
        if self.failures.blocked(peer, now):
            return None  # refused cheaply already; counting on would only lengthen its wait
        peer_blocked = self.failures.charge(peer, now)
        everyone_blocked = self.everyone.charge(GLOBAL_KEY, now)
        if peer_blocked:
            return Blocked(peer, "too many refused requests from one address")
        if everyone_blocked:
            return Blocked(GLOBAL_KEY, "too many refused requests from all addresses")
        return None

    def may_answer(self, peer: str, now: float) -> bool:
        """Whether an unknown sender at ``peer`` gets one more signed error reply."""
        if self.answers.blocked(peer, now):
            return False
        self.answers.charge(peer, now)
        return True


def peer_of(address: str | None) -> str:
    """The key an address is counted under: IPv4 as is, IPv6 by its /64."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # not an IP (an ipc:// peer): counted by what libzmq reports
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)

"""A running proxy daemon answers a burst of status queries, and does not fork for each.

The engine here is a stand-in bound with the real engine's keys (tests/e2e/standin_engine),
so that it can push as many signed queries as it likes; every answer goes through the
engine's receive pipeline, signed by the proxy's enrolled key.
"""

from __future__ import annotations

import time

from protocol import catalogue as cat
from proxy_agent.health import MAX_AGE_S
from tests.e2e.conftest import PROXY_FQDN, Hosts, joined
from tests.e2e.standin_engine import StandinEngine
from wsproxy_agent.demo import free_port

BURST = 50


def test_a_burst_of_status_queries_is_answered_without_a_service_check_each(
    running: Hosts,
) -> None:
    h = joined(running)
    address = f"127.0.0.1:{free_port()}"
    h.configure(h.proxy, engine=address)
    engine = StandinEngine(h.engine, h.proxy, f"tcp://{address}")
    try:
        h.start_proxy()
        engine.wait_for_route()
        started = time.time()
        asked = {engine.push(cat.STATUS_QUERY) for _ in range(BURST)}
        answers = []
        while asked:
            msg = engine.receive(30)
            assert msg is not None, f"{len(asked)} status queries not answered"
            if msg.type == cat.STATUS_REPLY:
                assert msg.re in asked, "a reply that answers none of the queries"
                asked.discard(msg.re)
                answers.append(msg)
        ended = time.time()
    finally:
        engine.close()

    assert all(a.body["fqdn"] == PROXY_FQDN and a.body["service_active"] for a in answers)
    checks = [at for at, args in h.systemctl_proxy.calls if "is-active" in args and at >= started]
    # One look a second at most, not one per query.
    assert len(checks) <= (ended - started) / MAX_AGE_S + 1, (len(checks), ended - started)

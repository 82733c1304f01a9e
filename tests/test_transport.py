"""The proxy side's ZeroMQ socket: reconnect backoff that differs from one client to the next."""

from __future__ import annotations

import zmq

from wsproxy_agent import transport


def test_each_client_draws_its_own_reconnect_backoff() -> None:
    ctx = zmq.Context()
    try:
        socks = [transport.client(ctx, "tcp://127.0.0.1:1", None)[0] for _ in range(40)]
        first = [s.getsockopt(zmq.RECONNECT_IVL) for s in socks]
        cap = [s.getsockopt(zmq.RECONNECT_IVL_MAX) for s in socks]
        for s in socks:
            s.close()
    finally:
        ctx.term()
    assert all(transport.RECONNECT_MS[0] <= v <= transport.RECONNECT_MS[1] for v in first)
    assert all(transport.RECONNECT_MAX_MS[0] <= v <= transport.RECONNECT_MAX_MS[1] for v in cap)
    # Clients cut off together do not retry in lockstep.
    assert len(set(first)) > 20 and len(set(cap)) > 20

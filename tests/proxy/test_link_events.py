"""The link reads libzmq's monitor events itself: retries with their delays, handshakes.

Real sockets on loopback: an address where nothing listens yet, then an engine-side ROUTER
(Curve on) that appears there.
"""

from __future__ import annotations

from typing import Any

import zmq

from protocol import identity
from proxy_agent.link import EngineLink
from wsproxy_agent import transport
from wsproxy_agent.demo import free_port


def test_the_link_records_retry_delays_then_the_handshake() -> None:
    address = f"127.0.0.1:{free_port()}"
    public, secret = zmq.curve_keypair()
    link = EngineLink(
        address,
        transport.curve_to_raw(public),
        identity.public_raw(identity.generate()),
        identity.generate(),
    )
    ctx: Any = zmq.Context()
    server = None
    try:
        assert not link.wait_handshake(2.0)  # at least one retry: the first comes in 0.3-0.9 s
        low, high = transport.RECONNECT_MS[0], transport.RECONNECT_MAX_MS[1]
        assert link.retry_delays_ms and all(low <= d <= high for d in link.retry_delays_ms), (
            link.retry_delays_ms
        )
        assert (link.handshakes, link.connected) == (0, False)
        server = transport.server(ctx, f"tcp://{address}", secret)
        assert link.wait_handshake(20.0)
        assert (link.handshakes, link.connected) == (1, True)
    finally:
        link.close()
        if server is not None:
            server.close()
        ctx.term()

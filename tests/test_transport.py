"""The ZeroMQ sockets: reconnect backoff that differs from one client to the next, and who
probes the connection how often."""

from __future__ import annotations

from typing import Any

import zmq

from wsproxy_agent import transport


def int_option(sock: zmq.Socket[Any], option: int) -> int:
    value = sock.getsockopt(option)
    assert isinstance(value, int)  # the backoff options are numbers, not bytes
    return value


def test_each_client_draws_its_own_reconnect_backoff() -> None:
    ctx = zmq.Context()
    try:
        socks = [transport.client(ctx, "tcp://127.0.0.1:1", None)[0] for _ in range(40)]
        first = [int_option(s, zmq.RECONNECT_IVL) for s in socks]
        cap = [int_option(s, zmq.RECONNECT_IVL_MAX) for s in socks]
        for s in socks:
            s.close()
    finally:
        ctx.term()
    assert all(transport.RECONNECT_MS[0] <= v <= transport.RECONNECT_MS[1] for v in first)
    assert all(transport.RECONNECT_MAX_MS[0] <= v <= transport.RECONNECT_MAX_MS[1] for v in cap)
    # Clients cut off together do not retry in lockstep.
    assert len(set(first)) > 20 and len(set(cap)) > 20


def test_proxies_probe_often_and_the_engine_rarely_but_still_does() -> None:
    ctx = zmq.Context()
    try:
        client = transport.client(ctx, "tcp://127.0.0.1:1", None)[0]
        server = transport.server(ctx, "tcp://127.0.0.1:0", None)
        probes = {
            name: (s.getsockopt(zmq.HEARTBEAT_IVL), s.getsockopt(zmq.HEARTBEAT_TIMEOUT))
            for name, s in (("client", client), ("server", server))
        }
        client.close()
        server.close()
    finally:
        ctx.term()
    # A proxy notices a lost engine within 20 s; the engine reclaims a dead proxy's connection
    # within 75 s, probing twelve times less often than the proxies.
    assert probes["client"] == (transport.HEARTBEAT_MS, transport.HEARTBEAT_MS * 3)
    assert probes["server"] == (transport.SERVER_HEARTBEAT_MS, transport.HEARTBEAT_MS * 3)
    assert transport.SERVER_HEARTBEAT_MS >= 10 * transport.HEARTBEAT_MS

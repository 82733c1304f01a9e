"""Pushes that arrive while the proxy waits for an answer are kept, not dropped.

A revoke or a key rotation pushed while the daemon renews would otherwise be lost: the
renewal's wait reads every message and, before, kept only its answer. A real engine-side
ROUTER (Curve on) signs with the key the link pins.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import zmq

from protocol import catalogue as cat
from protocol import identity
from protocol.catalogue import Role
from protocol.codec import Value
from protocol.envelope import seal
from protocol.receive import Receiver
from proxy_agent.link import MAX_HELD_PUSHES, EngineLink
from wsproxy_agent import transport
from wsproxy_agent.demo import free_port


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_pushes_during_a_request_are_handed_over_after_it() -> None:
    ctx: Any = zmq.Context()
    public, secret = zmq.curve_keypair()
    address = f"127.0.0.1:{free_port()}"
    server = transport.server(ctx, f"tcp://{address}", secret)
    engine_key, proxy_key = identity.generate(), identity.generate()
    engine_fp, proxy_fp = identity.fingerprint(engine_key), identity.fingerprint(proxy_key)
    pushes = [cat.REVOKE_NOTICE] + [cat.RENEW_NOW] * (MAX_HELD_PUSHES + 3)

    def engine() -> None:
        """Answer the one request, after pushing more than the link holds."""
        receiver = Receiver(
            Role.ENGINE, engine_fp, lambda fp: proxy_key.public_key() if fp == proxy_fp else None
        )
        routing_id, *frames = server.recv_multipart()
        request = receiver.receive(frames, now_ms())
        for msg_type in pushes:
            pushed = seal(
                engine_key, msg_type, {"reason": "test"}, recipient=proxy_fp, now_ms=now_ms()
            )
            server.send_multipart([routing_id, *pushed.frames])
        answer = seal(
            engine_key,
            cat.ACTIVATION_DONE,
            {"activated": True, "websocket_proxy": "p:6100"},
            recipient=proxy_fp,
            now_ms=now_ms(),
            re=request.id,
        )
        server.send_multipart([routing_id, *answer.frames])

    thread = threading.Thread(target=engine)
    thread.start()
    link = EngineLink(
        address, transport.curve_to_raw(public), identity.public_raw(engine_key), proxy_key
    )
    try:
        report: dict[str, Value] = {"ok": True, "serial": "1f2e3d", "service_active": True}
        reply = link.request(
            cat.INSTALL_REPORT, report, attempt_s=10, deadline=time.monotonic() + 20
        )
        assert reply.type == cat.ACTIVATION_DONE
        held = link.take_pushed()
        # The first are kept when more came than the link holds.
        assert [m.type for m in held] == pushes[:MAX_HELD_PUSHES]
        assert all(m.re is None and m.sender == engine_fp for m in held)
        assert link.take_pushed() == []  # handed over once
    finally:
        thread.join(10)
        link.close()
        server.close()
        ctx.term()

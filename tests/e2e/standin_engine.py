"""A hand-driven engine for tests and benchmarks: the engine's own keys, a real ROUTER.

It binds where a proxy daemon is told the engine is, with the Curve secret and the identity
key of a real engine root, so the daemon cannot tell it from the engine agent: it pins those
keys. It pushes what we choose and reads the daemon's answers through the engine's receive
pipeline, so every answer it returns was signed by the proxy's enrolled key.
"""

from __future__ import annotations

import time
from pathlib import Path

import zmq

from protocol import codec, identity
from protocol.catalogue import Role
from protocol.codec import Value
from protocol.envelope import Message, seal
from protocol.receive import Receiver
from wsproxy_agent import transport
from wsproxy_agent.keyfiles import load_identity
from wsproxy_agent.paths import HostPaths


class StandinEngine:
    def __init__(self, engine_root: Path, proxy_root: Path, endpoint: str) -> None:
        engine, proxy = HostPaths.under(engine_root), HostPaths.under(proxy_root)
        self.key = load_identity(engine.identity_key)
        self.fingerprint = identity.fingerprint(self.key)
        proxy_public = load_identity(proxy.identity_key).public_key()
        self.proxy_fingerprint = identity.fingerprint(proxy_public)
        self.receiver = Receiver(
            Role.ENGINE,
            self.fingerprint,
            lambda fp: proxy_public if fp == self.proxy_fingerprint else None,
        )
        self.ctx: transport.Context = zmq.Context()
        secret = transport.read_curve_key(engine.curve_secret)
        self.sock = transport.server(self.ctx, endpoint, secret)
        self.route: bytes | None = None  # where the proxy last spoke from

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()

    def receive(self, timeout_s: float, verify: bool = True) -> Message | None:
        """The proxy's next message, or None at the timeout. Verified through the receive
        pipeline; with ``verify`` False only decoded, for a load that checks a sample."""
        if not self.sock.poll(int(timeout_s * 1000)):
            return None
        route, *frames = self.sock.recv_multipart()
        now_ms = time.time_ns() // 1_000_000
        msg = self.receiver.receive(frames, now_ms) if verify else _unverified(frames[0])
        self.route = route
        return msg

    def push(self, msg_type: str, body: dict[str, Value] | None = None) -> bytes:
        """Send to where the proxy last spoke from; the pushed message's id."""
        if self.route is None:
            raise AssertionError("the proxy has not spoken yet: no route to push to")
        sealed = seal(
            self.key,
            msg_type,
            body or {},
            recipient=self.proxy_fingerprint,
            now_ms=time.time_ns() // 1_000_000,
        )
        self.sock.send_multipart([self.route, *sealed.frames])
        return sealed.id

    def wait_for_route(self, timeout_s: float = 30.0) -> None:
        """Read until the proxy has spoken (its first heartbeat), so pushes can reach it."""
        deadline = time.monotonic() + timeout_s
        while self.route is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("the proxy daemon did not speak to the stand-in engine")
            self.receive(left)


def _unverified(payload: bytes) -> Message:
    header = codec.decode(payload)
    assert isinstance(header, dict)
    version, msg_type, msg_id, re = header["v"], header["type"], header["id"], header["re"]
    ts, sender, recipient, body = header["ts"], header["from"], header["to"], header["body"]
    assert isinstance(version, int) and isinstance(ts, int) and isinstance(body, dict)
    assert isinstance(msg_type, str) and isinstance(sender, str) and isinstance(recipient, str)
    assert isinstance(msg_id, bytes) and (re is None or isinstance(re, bytes))
    return Message(version, msg_type, msg_id, re, ts, sender, recipient, body)

"""The proxy's connection to the engine: one DEALER, pinned keys, signed request/reply.

A request is retried with a *new* message (new id, new signature, new token proof) when
no answer comes in time, because the engine refuses a repeated id as a replay. The
engine answers a repeated request with the same result, so retrying is safe.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import zmq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from zmq.utils.monitor import recv_monitor_message

from protocol import catalogue as cat
from protocol import identity
from protocol.codec import Value
from protocol.envelope import ID_SIZE, Message, seal
from protocol.errors import ProtocolError
from protocol.receive import Receiver
from wsproxy_agent import transport
from wsproxy_agent.errors import AgentError

BodyFor = Callable[[bytes], dict[str, Value]]

_HANDSHAKE_EVENTS = (
    zmq.EVENT_CONNECTED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


class LinkError(AgentError):
    """The engine could not be reached or did not answer as pinned."""


@dataclass
class EngineLink:
    address: str
    curve_key: bytes | None  # raw 32 bytes; None only when Curve is switched off
    engine_key: bytes  # raw Ed25519 public key: the pin
    key: Ed25519PrivateKey
    window_ms: int = 300_000
    refusals: list[ProtocolError] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.engine_fingerprint = identity.fingerprint(self.engine_key)
        engine_public = identity.public_from_raw(self.engine_key)
        self.receiver = Receiver(
            cat.Role.PROXY,
            identity.fingerprint(self.key),
            lambda fp: engine_public if fp == self.engine_fingerprint else None,
            window_ms=self.window_ms,
        )
        self.ctx = zmq.Context()
        server_key = transport.curve_from_raw(self.curve_key) if self.curve_key else None
        self.sock, monitor = transport.client(
            self.ctx, transport.tcp_endpoint(self.address), server_key, _HANDSHAKE_EVENTS
        )
        assert monitor is not None
        self.monitor = monitor
        self.handshakes = 0
        self.connected = False

    def close(self) -> None:
        self.sock.disable_monitor()
        self.monitor.close()
        self.sock.close()
        self.ctx.term()

    def wait_handshake(self, timeout_s: float) -> bool:
        """True once a CurveZMQ handshake with the pinned key has completed."""
        deadline = time.monotonic() + timeout_s
        while self.handshakes == 0:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self.monitor.poll(int(left * 1000)):
                self._on_monitor_event()
        return True

    def _on_monitor_event(self) -> None:
        event = recv_monitor_message(self.monitor)["event"]
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.handshakes += 1
            self.connected = True
        elif event == zmq.EVENT_DISCONNECTED:
            self.connected = False

    def send(
        self, msg_type: str, body: dict[str, Value] | BodyFor, re: bytes | None = None
    ) -> bytes:
        msg_id = _new_id()
        payload = body(msg_id) if callable(body) else body
        sealed = seal(
            self.key,
            msg_type,
            payload,
            recipient=self.engine_fingerprint,
            now_ms=_now_ms(),
            re=re,
            msg_id=msg_id,
        )
        self.sock.send_multipart(sealed.frames)
        return sealed.id

    def receive(self, timeout_s: float) -> Message | None:
        """The next message that passes the receive pipeline, or None at the timeout."""
        deadline = time.monotonic() + timeout_s
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self.monitor, zmq.POLLIN)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            for sock, _ in poller.poll(int(left * 1000) + 1):
                if sock is self.monitor:
                    self._on_monitor_event()
                    continue
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
                try:
                    return self.receiver.receive(frames, _now_ms())
                except ProtocolError as exc:
                    self.refusals.append(exc)

    def request(
        self,
        msg_type: str,
        body: dict[str, Value] | BodyFor,
        *,
        attempt_s: float,
        deadline: float,
    ) -> Message:
        """Send, wait for the reply bound to this request, resend until ``deadline``."""
        while True:
            request_id = self.send(msg_type, body)
            # Jitter, so proxies cut off together do not all come back in the same instant.
            attempt_end = min(time.monotonic() + attempt_s * random.uniform(0.8, 1.2), deadline)
            while (left := attempt_end - time.monotonic()) > 0:
                reply = self.receive(left)
                if reply is not None and reply.answers(request_id):
                    return reply
            if time.monotonic() >= deadline:
                raise LinkError(self.silence_reason())

    def silence_reason(self) -> str:
        foreign = [e for e in self.refusals if e.sender and e.sender != self.engine_fingerprint]
        if foreign:
            return (
                f"The engine at {self.address} answered with key {foreign[-1].sender}, but the "
                f"join string pins {self.engine_fingerprint}; refusing it. Check the join string."
            )
        if self.refusals:
            return f"The engine's answers were refused: {self.refusals[-1].sentence}"
        if self.handshakes == 0:
            return (
                f"No CurveZMQ handshake with {self.address}: the engine agent is not running or "
                "not reachable there, or its Curve key is not the one in the join string."
            )
        return f"The engine at {self.address} did not answer in time."


def _new_id() -> bytes:
    import secrets

    return secrets.token_bytes(ID_SIZE)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000

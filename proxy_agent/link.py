"""The proxy's connection to the engine: one DEALER, pinned keys, signed request/reply.

A request is retried with a *new* message (new id, new signature, new token proof) when
no answer comes in time, because the engine refuses a repeated id as a replay. The
engine answers a repeated request with the same result, so retrying is safe.

Sends never block: with no engine connection (the socket runs with IMMEDIATE, so nothing
is queued for a peer that is not there) a send reports that it did not go, and the caller
decides. A blocked send would freeze the daemon's loop for as long as the network is down.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import zmq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import catalogue as cat
from protocol import identity
from protocol.codec import Value
from protocol.envelope import ID_SIZE, Message, seal
from protocol.errors import ClockSkew, ProtocolError, Unauthorized
from protocol.receive import Receiver
from wsproxy_agent import transport
from wsproxy_agent.control import ControlServer
from wsproxy_agent.errors import AgentError

BodyFor = Callable[[bytes], dict[str, Value]]

MAX_HELD_PUSHES = 16
_HANDSHAKE_EVENTS = (
    zmq.EVENT_CONNECTED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_CONNECT_RETRIED
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
    # Many links in one process (a simulated fleet) share one context and its I/O thread;
    # a link given none owns its own and ends it on close.
    context: transport.Context | None = None

    def __post_init__(self) -> None:
        self.engine_fingerprint = identity.fingerprint(self.engine_key)
        engine_public = identity.public_from_raw(self.engine_key)
        self.receiver = Receiver(
            cat.Role.PROXY,
            identity.fingerprint(self.key),
            lambda fp: engine_public if fp == self.engine_fingerprint else None,
            window_ms=self.window_ms,
        )
        self.ctx = self.context or zmq.Context()
        server_key = transport.curve_from_raw(self.curve_key) if self.curve_key else None
        self.sock, monitor = transport.client(
            self.ctx, transport.tcp_endpoint(self.address), server_key, _HANDSHAKE_EVENTS
        )
        assert monitor is not None
        self.monitor = monitor
        self.handshakes = 0
        self.connected = False
        # Wall-clock times of the link's last loss and return, for the daemon to report.
        self.lost_at: float | None = None
        self.restored_at: float | None = None
        # libzmq's reconnect delays (ms; see transport.client for the jitter) not yet logged.
        self.retry_delays_ms: list[int] = []
        # The engine's last message refused as stamped outside our window, until taken.
        self.skew: ClockSkew | None = None
        # Pushes (a revoke, a rotation, renew now) that came while a request waited for its
        # answer, for the daemon to act on afterwards. Bounded: past it, later ones are dropped.
        self.pushed: list[Message] = []

    def close(self, linger_ms: int = 0) -> None:
        """Close; with ``linger_ms``, give messages still queued that long to go out."""
        self.sock.disable_monitor()
        self.monitor.close()
        self.sock.close(linger=linger_ms)
        if self.context is None:
            self.ctx.term()

    def wait_handshake(self, timeout_s: float) -> bool:
        """True once a CurveZMQ handshake with the pinned key has completed."""
        deadline = time.monotonic() + timeout_s
        while not self.connected:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self.monitor.poll(int(left * 1000)):
                self._on_monitor_event()
        return True

    def _on_monitor_event(self) -> None:
        event, value = _monitor_event(self.monitor.recv_multipart())
        if event == zmq.EVENT_CONNECT_RETRIED:
            self.retry_delays_ms.append(value)
        elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.handshakes += 1
            if self.lost_at is not None:
                self.restored_at = time.time()
            self.connected = True
        elif event == zmq.EVENT_DISCONNECTED and self.connected:
            self.connected = False
            self.lost_at = time.time()

    def send(
        self, msg_type: str, body: dict[str, Value] | BodyFor, re: bytes | None = None
    ) -> bytes | None:
        """The sent message's id, or None when no engine connection could take it now."""
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
        try:
            self.sock.send_multipart(sealed.frames, flags=zmq.NOBLOCK)
        except zmq.Again:
            return None
        return sealed.id

    def receive(self, timeout_s: float, wake: ControlServer | None = None) -> Message | None:
        """The next message that passes the receive pipeline, or None at the timeout, or as
        soon as ``wake`` (the daemon's control socket) has a request waiting."""
        deadline = time.monotonic() + timeout_s
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self.monitor, zmq.POLLIN)
        if wake is not None:
            poller.register(wake, zmq.POLLIN)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            for sock, _ in poller.poll(int(left * 1000) + 1):
                if wake is not None and sock == wake.fileno():  # polled by its descriptor
                    return None
                if sock is self.monitor:
                    self._on_monitor_event()
                    continue
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
                try:
                    return self.receiver.receive(frames, _now_ms())
                except ProtocolError as exc:
                    self.refusals.append(exc)
                    if isinstance(exc, ClockSkew) and exc.sender == self.engine_fingerprint:
                        # Nothing will pass either way until a clock is fixed: say so now.
                        self.skew = exc
                        return None

    def request(
        self,
        msg_type: str,
        body: dict[str, Value] | BodyFor,
        *,
        attempt_s: float,
        deadline: float,
    ) -> Message:
        """Send, wait for the reply bound to this request, resend until ``deadline``."""
        self.skew = None  # only the answers to this request tell whether the clocks agree now
        while True:
            # Jitter, so proxies cut off together do not all come back in the same instant.
            attempt_end = min(time.monotonic() + attempt_s * random.uniform(0.8, 1.2), deadline)
            self.wait_handshake(attempt_end - time.monotonic())
            request_id = self.send(msg_type, body)
            while (left := attempt_end - time.monotonic()) > 0:
                reply = self.receive(left)
                if request_id is not None and reply is not None and reply.answers(request_id):
                    return reply
                if reply is not None and reply.re is not None:
                    self.refusals.append(_unbound(reply))
                elif reply is not None and len(self.pushed) < MAX_HELD_PUSHES:
                    self.pushed.append(reply)
                if self.skew is not None:
                    raise LinkError(self.silence_reason())
            if time.monotonic() >= deadline:
                raise LinkError(self.silence_reason())

    def silence_reason(self) -> str:
        foreign = [e for e in self.refusals if e.sender and e.sender != self.engine_fingerprint]
        if foreign:
            return (
                f"The engine at {self.address} answered with key {foreign[-1].sender}, but the "
                f"join string pins {self.engine_fingerprint}; refusing it. Check the join string."
            )
        if self.skew is not None:
            return self.skew_sentence(self.skew)
        if self.refusals:
            return f"The engine's answers were refused: {self.refusals[-1].sentence}"
        if self.handshakes == 0:
            return (
                f"No CurveZMQ handshake with {self.address}: the engine agent is not running or "
                "not reachable there, or its Curve key is not the one in the join string."
            )
        return f"The engine at {self.address} did not answer in time."

    def take_pushed(self) -> list[Message]:
        """The pushes held while a request waited, oldest first, once."""
        held, self.pushed = self.pushed, []
        return held

    def take_skew(self) -> ClockSkew | None:
        """The engine's last message refused for clock skew since the last call, if any."""
        skew, self.skew = self.skew, None
        return skew

    def skew_sentence(self, skew: ClockSkew) -> str:
        # The engine answers what it refuses for skew, stamped by its own clock: that answer,
        # refused here in turn, is how this side learns whose clock is off, and by how much.
        direction = "ahead of" if skew.skew_ms > 0 else "behind"
        return (
            f"Clock skew: the engine at {self.address} stamps its messages "
            f"{abs(skew.skew_ms) // 1000} s {direction} this host's clock, beyond the "
            f"±{self.window_ms // 1000} s both agents allow, so each refuses the other's "
            "messages. Set the wrong clock right (NTP: 'timedatectl', 'chronyc tracking')."
        )


def _monitor_event(frames: list[bytes]) -> tuple[int, int]:
    """The event and its value from a libzmq monitor message: a 16-bit event id and a 32-bit
    value in one frame, then the endpoint. Read here rather than with pyzmq's helper, whose
    module imports asyncio: 20 to 50 ms of every join's start-up."""
    event, value = struct.unpack("=HI", frames[0])
    return int(event), int(value)


def _unbound(reply: Message) -> Unauthorized:
    """A genuine answer to some other request: never taken for the answer to this one."""
    refused = Unauthorized(
        f"A {reply.type} came that answers another request, not this one (a late answer to "
        "an earlier attempt, or one replayed by something on the path); it was ignored."
    )
    refused.sender = reply.sender
    refused.msg_id = reply.id
    return refused


def _new_id() -> bytes:
    import secrets

    return secrets.token_bytes(ID_SIZE)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000

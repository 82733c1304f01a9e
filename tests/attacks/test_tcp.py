"""Below ZeroMQ: raw TCP to the engine's port, and ZeroMQ clients that cannot pass Curve.

Nothing here ever becomes a message: the engine drops what does not finish the CurveZMQ
handshake, at once when the bytes say it never will and after the handshake interval
(transport.HANDSHAKE_MS) when they say nothing, and serves its proxy all the while.
"""

from __future__ import annotations

import contextlib
import os
import resource
import selectors
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from protocol import catalogue as cat
from protocol import identity
from protocol.codec import Value
from protocol.envelope import seal
from tests.attacks.conftest import STATE, Target
from tests.attacks.forge import now_ms
from tests.e2e.rawclient import csr, tls_key
from wsproxy_agent import transport

HANDSHAKE_S = transport.HANDSHAKE_MS / 1000
# How long past the handshake interval a drop may take on a slow, shared machine.
SLACK_S = 4.0


def zmtp_greeting(mechanism: bytes) -> bytes:
    """A ZMTP 3.0 greeting (RFC 23): signature, version, mechanism, as-server, filler."""
    return b"\xff" + bytes(8) + b"\x7f" + b"\x03\x00" + mechanism.ljust(20, b"\0") + bytes(32)


def connect_from(target: Target, source: str) -> socket.socket:
    sock = socket.create_connection(
        ("127.0.0.1", target.port), timeout=10, source_address=(source, 0)
    )
    sock.setblocking(False)
    return sock


def wait_closed(socks: list[socket.socket], within_s: float) -> dict[socket.socket, float]:
    """Which of ``socks`` the engine closed (end of stream or reset) within ``within_s``,
    and after how long; what it sends first (its own greeting) is read and ignored."""
    start = time.monotonic()
    closed: dict[socket.socket, float] = {}
    with selectors.DefaultSelector() as sel:
        for sock in socks:
            sel.register(sock, selectors.EVENT_READ)
        while len(closed) < len(socks):
            left = start + within_s - time.monotonic()
            if left <= 0:
                break
            for key, _ in sel.select(left):
                ready = key.fileobj
                assert isinstance(ready, socket.socket)  # only sockets were registered
                try:
                    ended = ready.recv(65536) == b""
                except ConnectionResetError:
                    ended = True
                if ended:
                    closed[ready] = time.monotonic() - start
                    sel.unregister(ready)
    return closed


@contextlib.contextmanager
def held(socks: list[socket.socket]) -> Iterator[list[socket.socket]]:
    try:
        yield socks
    finally:
        for sock in socks:
            sock.close()


def engine_lines_from(target: Target, peer: str) -> list[str]:
    return [line for line in target.engine_log().splitlines() if f'"{peer}"' in line]


JUNK = {
    "random bytes": os.urandom(4096),
    "an HTTP request": b"GET / HTTP/1.1\r\nHost: engine.e2e.test\r\nUpgrade: websocket\r\n\r\n",
    "a greeting with a bogus mechanism": zmtp_greeting(b"BOGUS"),
    "a NULL-mechanism greeting": zmtp_greeting(b"NULL"),
    "a PLAIN-mechanism greeting": zmtp_greeting(b"PLAIN"),
}


def test_junk_instead_of_a_handshake_is_dropped(target: Target) -> None:
    before = target.snapshot()
    sources = {what: f"127.0.0.{3 + n}" for n, what in enumerate(JUNK)}
    with held([connect_from(target, sources[what]) for what in JUNK]) as socks:
        for sock, junk in zip(socks, JUNK.values(), strict=True):
            sock.sendall(junk)

        closed = wait_closed(socks, HANDSHAKE_S + SLACK_S)

    kept = [what for sock, what in zip(socks, JUNK, strict=True) if sock not in closed]
    assert kept == [], f"the engine kept connections that sent {kept}"
    for source in sources.values():
        assert engine_lines_from(target, source) == []  # nothing reached the decoder
    target.assert_serves_legit()
    target.assert_unchanged(before)


def test_silent_and_half_open_connections_are_closed_after_the_handshake_interval(
    target: Target,
) -> None:
    before = target.snapshot()
    silent = [connect_from(target, "127.0.0.3") for _ in range(100)]
    one_byte = [connect_from(target, "127.0.0.4") for _ in range(100)]
    with held(silent + one_byte) as socks:
        for sock in one_byte:
            sock.sendall(zmtp_greeting(b"CURVE")[:1])
        opened = time.monotonic()

        # Held open, they cost the engine file descriptors and nothing else.
        target.assert_serves_legit()
        assert time.monotonic() - opened < HANDSHAKE_S, "too slow to check while held"
        closed = wait_closed(socks, HANDSHAKE_S + SLACK_S)

    assert len(closed) == len(socks), f"{len(socks) - len(closed)} of {len(socks)} still open"
    assert min(closed.values()) > HANDSHAKE_S / 2, "closed before the handshake interval"
    target.assert_serves_legit()
    target.assert_unchanged(before)


# systemd's default soft limit on open files for a service (DefaultLimitNOFILE=1024:524288).
SERVICE_SOFT_NOFILE = 1024


@contextlib.contextmanager
def open_files(soft: int) -> Iterator[None]:
    """This process, and the daemons it starts meanwhile, may open ``soft`` files."""
    old, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (old, hard))


def test_silent_connections_past_a_services_file_limit_do_not_lock_proxies_out(
    target: Target,
) -> None:
    """Started as systemd starts a service, the engine still has descriptors for a proxy
    that connects while more silent connections are held than that limit allows."""
    held_count = SERVICE_SOFT_NOFILE + 40  # within libzmq's listen backlog of 100 past it
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2 * held_count:
        pytest.skip(f"the hard limit on open files ({hard}) is too low to hold the connections")
    with open_files(SERVICE_SOFT_NOFILE):
        target.restart_engine()
    before = target.snapshot()
    engine = target.hosts.daemons[0].pid

    with (
        open_files(max(soft, 2 * held_count)),
        held([connect_from(target, "127.0.0.3") for _ in range(held_count)]),
    ):
        start = time.monotonic()
        target.assert_serves_legit()  # on a new connection
        took = time.monotonic() - start
        descriptors = len(os.listdir(f"/proc/{engine}/fd"))

    assert took < 3.0, (
        f"a proxy that connected waited {took:.1f} s behind {held_count} silent connections "
        f"(the engine held {descriptors} descriptors)"
    )
    target.assert_serves_legit()
    target.assert_unchanged(before)


HANDSHAKE_EVENTS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_DISCONNECTED
)


def queueing_client(
    target: Target, server_key: bytes | None, source: str
) -> tuple[zmq.Socket[Any], zmq.Socket[Any], zmq.Context[Any]]:
    """A DEALER that queues what it is given until a handshake succeeds (unlike the agents'
    sockets, which queue nothing for a peer that is not there), with a monitor attached
    before it connects. ``server_key`` None speaks ZMTP's NULL mechanism."""
    ctx: zmq.Context[Any] = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RECONNECT_IVL, 200)
    if server_key is not None:
        public, secret = zmq.curve_keypair()
        sock.curve_serverkey = server_key
        sock.curve_publickey = public
        sock.curve_secretkey = secret
    monitor = sock.get_monitor_socket(HANDSHAKE_EVENTS)
    sock.connect(f"tcp://{source}:0;127.0.0.1:{target.port}")
    return sock, monitor, ctx


def handshake_events(monitor: zmq.Socket[Any], seconds: float) -> list[int]:
    events = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if monitor.poll(int(left * 1000)):
            events.append(recv_monitor_message(monitor)["event"])
    return events


def enrollment_frames(target: Target) -> list[bytes]:
    """A valid enrollment request from a fresh key: delivered, it would be a pending row."""
    key = identity.generate()
    engine_key = (target.engine_root / STATE / "identity.key").read_bytes()
    fqdn = "intruder.e2e.test"
    body: dict[str, Value] = {
        "identity_key": identity.public_raw(key),
        "csr": csr(tls_key("ec"), fqdn),
        "fqdn": fqdn,
        "port": 6100,
    }
    recipient = identity.fingerprint(identity.private_from_pem(engine_key))
    sealed = seal(key, cat.ENROLL_REQUEST, body, recipient=recipient, now_ms=now_ms())
    return list(sealed.frames)


@pytest.mark.parametrize("mechanism", ["Curve with another server key", "NULL"])
def test_a_client_that_cannot_pass_curve_delivers_nothing(target: Target, mechanism: str) -> None:
    before = target.snapshot()
    wrong_key = zmq.curve_keypair()[0] if mechanism != "NULL" else None
    sock, monitor, ctx = queueing_client(target, wrong_key, "127.0.0.3")
    try:
        sock.send_multipart(enrollment_frames(target))  # queued until a handshake succeeds
        events = handshake_events(monitor, 3.0)
    finally:
        sock.disable_monitor()
        monitor.close()
        sock.close()
        ctx.term()

    assert zmq.EVENT_HANDSHAKE_SUCCEEDED not in events
    assert set(events) - {zmq.EVENT_DISCONNECTED}, f"no handshake failed: {events}"
    assert engine_lines_from(target, "127.0.0.3") == []
    target.assert_serves_legit()
    target.assert_unchanged(before)

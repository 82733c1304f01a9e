"""ZeroMQ plumbing both daemons share: CurveZMQ keys and the sockets they open.

Curve encrypts and authenticates the server: a proxy that pins the engine's Curve key
refuses an impostor during the handshake, before any message. Who a *proxy* is, is
decided by the Ed25519 signature on each message, so the server accepts any Curve client.
"""

from __future__ import annotations

import random
import resource
from pathlib import Path
from typing import Any

import zmq
from zmq.utils import z85

from wsproxy_agent.files import write_atomic

Socket = zmq.Socket[Any]
Context = zmq.Context[Any]

# Frames above this are dropped by libzmq before they reach our decoder.
MAX_WIRE_MESSAGE = 1024 * 1024 + 4096
HEARTBEAT_MS = 5_000
# How often the engine probes each proxy's connection (ZMTP PING), only to reclaim those of
# proxies gone silently: a dead one is dropped within this plus HEARTBEAT_MS * 3. Rarer than
# the proxies' own probes (HEARTBEAT_MS, how a proxy notices a lost engine), because each PONG
# costs libzmq's I/O thread a walk over all its timers (poller_base cancel_timer is O(n)):
# with 2,000 proxies probed every 5 s that walk alone took 7 % of a core.
SERVER_HEARTBEAT_MS = 60_000
# A peer that has not finished the ZMTP/Curve handshake by then is dropped: a silent or
# half-open connection costs the engine a file descriptor for this long, not for ever.
HANDSHAKE_MS = 10_000
# Open files the engine allows itself, within its hard limit. Every connection holds a
# descriptor until its handshake is done or HANDSHAKE_MS is up (and about 4 KiB of libzmq's
# memory). At the usual soft limit of 1024, a thousand silent connections every few seconds
# leave none for a proxy that connects, and libzmq's I/O thread spins on the failing accept(2);
# this many is more than one address can hold open (its ephemeral ports), for 256 MiB at most.
SERVER_OPEN_FILES = 65_536
# Reconnect backoff: libzmq doubles the delay from the first to the cap but, with a cap set,
# adds no jitter of its own, so each client draws its own first delay and cap from these
# ranges. Proxies cut off together (an engine restart) then come back spread out.
RECONNECT_MS = (300, 900)
RECONNECT_MAX_MS = (10_000, 20_000)


def generate_curve_keys(public_path: Path, secret_path: Path) -> bytes:
    public, secret = zmq.curve_keypair()
    write_atomic(secret_path, secret + b"\n", mode=0o600, keep_backup=False)
    write_atomic(public_path, public + b"\n", mode=0o644, keep_backup=False)
    return public


def read_curve_key(path: Path) -> bytes:
    key = path.read_bytes().strip()
    if len(key) != 40:
        raise ValueError(f"{path} does not hold a Z85 Curve key.")
    return key


def curve_to_raw(z85_key: bytes) -> bytes:
    return z85.decode(z85_key)


def curve_from_raw(raw: bytes) -> bytes:
    return z85.encode(raw)


def _common(sock: Socket) -> None:
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_WIRE_MESSAGE)
    sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_MS)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_MS * 3)
    sock.setsockopt(zmq.HANDSHAKE_IVL, HANDSHAKE_MS)
    sock.setsockopt(zmq.IPV6, 1)


def server(ctx: Context, endpoint: str, secret: bytes | None) -> Socket:
    """The engine's ROUTER. ``secret`` None turns Curve off (benchmarks, never defaults)."""
    sock: Socket = ctx.socket(zmq.ROUTER)
    _common(sock)
    sock.setsockopt(zmq.HEARTBEAT_IVL, SERVER_HEARTBEAT_MS)
    sock.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a reconnecting proxy takes its routing id back
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a send to a gone peer fails instead of vanishing
    if secret is not None:
        sock.curve_server = True
        sock.curve_secretkey = secret
    sock.bind(endpoint)
    return sock


def allow_open_files(wanted: int = SERVER_OPEN_FILES) -> None:
    """Raise this process's soft limit on open files towards ``wanted``, within the hard limit
    the administrator set (systemd's LimitNOFILE)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))


def client(
    ctx: Context, endpoint: str, server_public: bytes | None, monitor_events: int = 0
) -> tuple[Socket, Socket | None]:
    """A proxy's DEALER, pinned to the engine's Curve key, with jittered reconnect backoff.

    With ``monitor_events`` it also returns a monitor socket, attached *before* connecting:
    on loopback the handshake can finish before a monitor attached afterwards would see it.
    """
    sock: Socket = ctx.socket(zmq.DEALER)
    _common(sock)
    sock.setsockopt(zmq.RECONNECT_IVL, random.randint(*RECONNECT_MS))
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, random.randint(*RECONNECT_MAX_MS))
    sock.setsockopt(zmq.IMMEDIATE, 1)  # queue nothing for a peer whose handshake failed
    if server_public is not None:
        public, secret = zmq.curve_keypair()
        sock.curve_serverkey = server_public
        sock.curve_publickey = public
        sock.curve_secretkey = secret
    monitor = sock.get_monitor_socket(monitor_events) if monitor_events else None
    sock.connect(endpoint)
    return sock, monitor


def tcp_endpoint(address: str) -> str:
    """'host:port' or '[v6]:port' to a ZeroMQ TCP endpoint."""
    return address if address.startswith("tcp://") else f"tcp://{address}"

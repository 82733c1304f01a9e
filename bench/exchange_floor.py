"""The least CPU a status exchange can cost the engine: the ceiling the message rate is held to.

A status exchange is a query the engine seals (one signature) and a reply it takes through
the receive pipeline (one verification, and the checks of DESIGN §4 around it), both carried
by a ZeroMQ socket. Each part is timed here on its own, with the engine's own calls and nothing
the daemon adds (no registry, seen-id store, dispatch or event loop):

- protocol: ``seal`` of a query and ``Receiver.receive`` of a reply, in a tight loop, as one
  thread's CPU time per exchange;
- zmq: sending a query and receiving a reply on a ROUTER socket over loopback TCP, in batches
  of ``BATCH`` as the engine drains its socket, a peer process echoing ready-made replies; as
  this process's CPU time per exchange, libzmq's I/O thread included;
- curve: what the same costs more with CurveZMQ on (libzmq encrypts and decrypts each message
  in its I/O thread).

Their sum is a floor under the engine's CPU per exchange.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from dataclasses import dataclass

import zmq

from bench import procstat
from protocol import catalogue as cat
from protocol import identity
from protocol.envelope import seal
from protocol.receive import Receiver
from tests.support.fleet import HEALTHY

BATCH = 100
# Enough exchanges over the socket for the CPU clock's 10 ms ticks to count them closely.
SOCKET_EXCHANGES = 10_000


@dataclass(frozen=True)
class Floor:
    protocol_us: float
    zmq_us: float
    curve_us: float


def measure(exchanges: int) -> Floor:
    engine_key, proxy_key = identity.generate(), identity.generate()
    engine_fp, proxy_fp = identity.fingerprint(engine_key), identity.fingerprint(proxy_key)
    proxy_public = proxy_key.public_key()
    now_ms = time.time_ns() // 1_000_000
    body = {"enrolled": True, "fqdn": "sim0000.fleet.bench", **HEALTHY, "serial": "1" * 32}
    # Each reply its own id: the pipeline refuses a replay before it verifies anything.
    replies = [
        seal(proxy_key, cat.STATUS_REPLY, body, recipient=engine_fp, now_ms=now_ms, re=bytes(16))
        for _ in range(exchanges)
    ]
    receiver = Receiver(
        cat.Role.ENGINE, engine_fp, lambda fp: proxy_public if fp == proxy_fp else None
    )
    started = time.thread_time()
    for reply in replies:
        seal(engine_key, cat.STATUS_QUERY, {}, recipient=proxy_fp, now_ms=now_ms)
        receiver.receive(reply.frames, now_ms)
    protocol_us = (time.thread_time() - started) / exchanges * 1e6
    query_frames = list(
        seal(engine_key, cat.STATUS_QUERY, {}, recipient=proxy_fp, now_ms=now_ms).frames
    )
    reply_frames = list(replies[0].frames)
    plain = _socket_us(query_frames, reply_frames, curve=False)
    with_curve = _socket_us(query_frames, reply_frames, curve=True)
    return Floor(protocol_us, plain, max(0.0, with_curve - plain))


def _socket_us(query: list[bytes], reply: list[bytes], curve: bool) -> float:
    """This process's CPU per query sent and reply received, the peer in a process of its own."""
    server_public, server_secret = zmq.curve_keypair()
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    if curve:
        router.curve_server = True
        router.curve_secretkey = server_secret
    port = router.bind_to_random_port("tcp://127.0.0.1")
    peer = multiprocessing.get_context("spawn").Process(
        target=_echo, args=(port, server_public if curve else None, reply), daemon=True
    )
    peer.start()
    try:
        route, _ = router.recv_multipart()  # the peer's hello
        batches = SOCKET_EXCHANGES // BATCH
        started = procstat.cpu_seconds(os.getpid())
        for _ in range(batches):
            for _ in range(BATCH):
                router.send_multipart([route, *query])
            for _ in range(BATCH):
                router.recv_multipart()
        spent = procstat.cpu_seconds(os.getpid()) - started
        router.send_multipart([route, b"", b""])  # the peer's cue to stop
        peer.join(30)
        return spent / (batches * BATCH) * 1e6
    finally:
        peer.kill()
        router.close(linger=0)
        ctx.term()


def _echo(port: int, server_public: bytes | None, reply: list[bytes]) -> None:
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    if server_public is not None:
        dealer.curve_publickey, dealer.curve_secretkey = zmq.curve_keypair()
        dealer.curve_serverkey = server_public
    dealer.connect(f"tcp://127.0.0.1:{port}")
    dealer.send(b"hello")
    while dealer.recv_multipart()[0]:
        dealer.send_multipart(reply)
    dealer.close(linger=0)
    ctx.term()

"""Malformed frames through a real Curve DEALER: wrong frame counts and sizes, payloads too
big for the decoder or for the wire, and msgpack bombs.

Every one of them is refused before anyone is authenticated, so the engine answers nothing;
what it refused shows in its log, under the attacker's address. The untampered message in
the frame tests is a valid enrollment request from the attacker's own key: a framing check
that let it through would leave a pending request in the registry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from protocol import catalogue as cat
from protocol.codec import DEFAULT_LIMITS
from protocol.envelope import seal
from tests.attacks import procfs
from tests.attacks.conftest import ATTACKER_ADDRESS, Target
from tests.attacks.forge import assert_silent, engine_events, now_ms
from tests.e2e.conftest import wait_for
from tests.e2e.rawclient import RawProxy, csr, enroll_body, tls_key
from wsproxy_agent import transport

INTRUDER = "intruder.e2e.test"
FRAME_COUNT = "A message is 2 frames (payload, signature)."
SIGNATURE_SIZE = "The signature frame must be 64 bytes."
NOT_MSGPACK = "The message is not msgpack within the protocol's limits"


def refusals_from(target: Target, peer: str) -> list[tuple[str, str]]:
    """(code, why) of each message the engine refused from ``peer``."""
    return [
        (e["code"], e["why"])
        for e in engine_events(target, "message_refused")
        if e.get("peer") == peer
    ]


def wait_refusals(
    target: Target, peer: str, count: int, timeout: float = 30.0
) -> list[tuple[str, str]]:
    wait_for(
        lambda: len(refusals_from(target, peer)) >= count,
        f"{count} refusals from {peer}",
        timeout,
    )
    found = refusals_from(target, peer)
    assert len(found) == count, found
    return found


def enroll_frames(client: RawProxy) -> list[bytes]:
    body = enroll_body(client, csr(tls_key("ec"), INTRUDER), INTRUDER)
    sealed = seal(client.key, cat.ENROLL_REQUEST, body, recipient=client.engine_fp, now_ms=now_ms())
    return list(sealed.frames)


Reframe = Callable[[bytes, bytes], list[bytes]]

FRAMINGS: dict[str, tuple[Reframe, str]] = {
    "one frame": (lambda p, s: [p], FRAME_COUNT),
    "three frames": (lambda p, s: [p, s, b""], FRAME_COUNT),
    "fifty frames": (lambda p, s: [p, s, *[s] * 48], FRAME_COUNT),
    "signature first": (lambda p, s: [s, p], SIGNATURE_SIZE),
    "empty payload": (lambda p, s: [b"", s], NOT_MSGPACK),
    "truncated payload": (lambda p, s: [p[: len(p) - 40], s], NOT_MSGPACK),
    "signature of 63 bytes": (lambda p, s: [p, s[:63]], SIGNATURE_SIZE),
    "signature of 65 bytes": (lambda p, s: [p, s + b"\0"], SIGNATURE_SIZE),
    "empty signature": (lambda p, s: [p, b""], SIGNATURE_SIZE),
}


@pytest.mark.parametrize("framing", FRAMINGS)
def test_malformed_frames_are_refused_unanswered(target: Target, framing: str) -> None:
    before = target.snapshot()
    attacker = target.attacker()
    reframe, sentence = FRAMINGS[framing]

    attacker.send_frames(reframe(*enroll_frames(attacker)))

    [(code, why)] = wait_refusals(target, ATTACKER_ADDRESS, 1)
    assert code == "bad_request" and why.startswith(sentence), why
    assert_silent(attacker)
    target.assert_serves_legit()
    target.assert_unchanged(before)


def test_payload_over_the_decode_limit_is_refused_by_size(target: Target) -> None:
    """Just under libzmq's wire limit, so it reaches the receive pipeline, which refuses it
    by its length alone."""
    before = target.snapshot()
    attacker = target.attacker()
    payload, signature = enroll_frames(attacker)
    oversize = payload + b"\0" * (DEFAULT_LIMITS.max_message + 1 - len(payload))
    assert len(oversize) + len(signature) < transport.MAX_WIRE_MESSAGE

    attacker.send_frames([oversize, signature])

    [(code, why)] = wait_refusals(target, ATTACKER_ADDRESS, 1)
    assert (code, why) == (
        "bad_request",
        f"The message is {len(oversize)} bytes; the limit is {DEFAULT_LIMITS.max_message}.",
    )
    assert_silent(attacker)
    target.assert_serves_legit()
    target.assert_unchanged(before)


def test_frame_over_the_wire_limit_is_dropped_by_libzmq(target: Target) -> None:
    """libzmq reads the frame's length first and drops the connection (MAXMSGSIZE), so the
    frame is never held in memory and never reaches the decoder."""
    before = target.snapshot()
    pid = target.hosts.daemons[0].pid
    attacker = target.attacker()
    monitor = attacker.sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    frame = 32 * 1024 * 1024
    peak_before = procfs.peak_rss(pid)

    try:
        attacker.send_frames([b"\x80" * frame, bytes(64)])
        events = [recv_monitor_message(monitor)["event"]] if monitor.poll(20_000) else []
    finally:
        attacker.sock.disable_monitor()
        monitor.close()

    target.assert_serves_legit()
    grew = procfs.peak_rss(pid) - peak_before
    assert grew < frame // 4, f"the engine's peak memory grew by {grew} bytes"
    assert refusals_from(target, ATTACKER_ADDRESS) == []
    assert events == [zmq.EVENT_DISCONNECTED], "the engine kept the connection"
    target.assert_unchanged(before)


def _megabyte_of(value: bytes) -> bytes:
    """Arrays of 256 arrays of 256 ``value``s, as many as fit in the decode limit: a few
    levels deep, so only the count of values can stop it."""
    leaf = b"\xdc\x01\x00" + value * 256
    middle = b"\xdc\x01\x00" + leaf * 256
    count = min((DEFAULT_LIMITS.max_message - 3) // len(middle), 15)
    return bytes([0x90 | count]) + middle * count


def _envelope_with_timestamp() -> bytes:
    envelope: dict[str, Any] = {"v": 1, "type": cat.HEARTBEAT, "ts": msgpack.Timestamp(0, 0)}
    packed = msgpack.packb(envelope)
    assert isinstance(packed, bytes)
    return packed


# Each bomb, and what the engine's refusal of it says.
BOMBS: dict[str, tuple[bytes, str]] = {
    "10,000 nested arrays": (b"\x91" * 10_000 + b"\xc0", "nests deeper"),
    "10,000 nested maps": (b"\x81\xa1k" * 10_000 + b"\xc0", "nests deeper"),
    "array of 2**32-1 items": (b"\xdd\xff\xff\xff\xff" + b"\xc0" * 16, "exceeds max_array"),
    "map of 2**32-1 entries": (b"\xdf\xff\xff\xff\xff" + b"\xa1k\xc0" * 16, "exceeds max_map"),
    "str of 2**32-1 bytes": (b"\xdb\xff\xff\xff\xff" + b"x" * 16, NOT_MSGPACK),
    "bin of 2**32-1 bytes": (b"\xc6\xff\xff\xff\xff" + b"x" * 16, NOT_MSGPACK),
    "a megabyte of empty maps": (_megabyte_of(b"\x80"), "more than"),
    "a megabyte of one-entry maps": (_megabyte_of(b"\x81\xa1k\xc0"), "more than"),
    "ext 32 of 2**32-1 bytes": (b"\xc9\xff\xff\xff\xff\x01" + b"x" * 16, "max_ext_len"),
    "timestamp in the envelope": (_envelope_with_timestamp(), "max_ext_len"),
}
BURST_PER_BOMB = 4  # after the one timed alone: five of each kind, fifty in all


def test_msgpack_bombs_cost_bounded_work(target: Target) -> None:
    """Each bomb alone, timed by the engine's CPU, then a burst of all of them: the engine
    refuses every one, and answers its proxy at once."""
    before = target.snapshot()
    pid = target.hosts.daemons[0].pid
    # One address per kind: five refusals each, under any per-address throttle.
    sources = {kind: f"127.0.0.{3 + n}" for n, kind in enumerate(BOMBS)}
    attackers = {kind: target.attacker(source=sources[kind]) for kind in BOMBS}

    for kind, (bomb, sentence) in BOMBS.items():
        cpu = procfs.cpu_seconds(pid)
        attackers[kind].send_frames([bomb, bytes(64)])
        [(code, why)] = wait_refusals(target, sources[kind], 1)
        spent = procfs.cpu_seconds(pid) - cpu
        assert spent < 0.3, f"one bomb ({kind}) cost the engine {spent:.2f} s of CPU"
        assert code == "bad_request" and sentence in why, (kind, why)

    cpu = procfs.cpu_seconds(pid)
    for _ in range(BURST_PER_BOMB):
        for kind, (bomb, _) in BOMBS.items():
            attackers[kind].send_frames([bomb, bytes(64)])
    sent = time.monotonic()
    target.assert_serves_legit()
    answered_after = time.monotonic() - sent

    for kind, (_, sentence) in BOMBS.items():
        refused = wait_refusals(target, sources[kind], 1 + BURST_PER_BOMB)
        assert all(code == "bad_request" and sentence in why for code, why in refused), refused
    spent = procfs.cpu_seconds(pid) - cpu
    assert answered_after < 5.0, f"the proxy waited {answered_after:.1f} s behind the bombs"
    assert spent < 3.0, f"{len(BOMBS) * BURST_PER_BOMB} bombs cost the engine {spent:.2f} s of CPU"
    target.assert_serves_legit()
    target.assert_unchanged(before)

"""The engine takes the messages waiting on its socket together: each is checked, the ids of
those accepted go to disk in one transaction, and only then does any of them take effect.

A real engine (``engine init`` in a real root), its real registry and seen-id store; the
messages are handed to the daemon's batch handler as its socket would hand them over.
"""

from __future__ import annotations

import sqlite3
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine_agent.daemon import Accepted, Arrived, EngineDaemon
from protocol import catalogue as cat
from protocol import identity
from protocol.envelope import seal
from tests.support.fleet import HEALTHY, enter_as_enrolled


@pytest.fixture
def keys(daemon: EngineDaemon) -> list[Ed25519PrivateKey]:
    """Three enrolled proxies' identity keys."""
    keys = [identity.generate() for _ in range(3)]
    enter_as_enrolled(daemon.paths.root, [(f"p{n}.example", k) for n, k in enumerate(keys)], "test")
    return keys


def heartbeat(engine: EngineDaemon, key: Ed25519PrivateKey, n: int) -> Arrived:
    sealed = seal(
        key,
        cat.HEARTBEAT,
        HEALTHY,
        recipient=engine.fingerprint,
        now_ms=time.time_ns() // 1_000_000,
    )
    return Arrived(b"route%d" % n, "127.0.0.1", list(sealed.frames))


def ids_on_disk(engine: EngineDaemon) -> set[bytes]:
    db = sqlite3.connect(engine.paths.seen_ids)
    try:
        return {bytes(r[0]) for r in db.execute("SELECT id FROM seen_window")}
    finally:
        db.close()


def test_every_accepted_id_is_on_disk_before_any_message_takes_effect(
    daemon: EngineDaemon, keys: list[Ed25519PrivateKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = heartbeat(daemon, keys[0], 0), heartbeat(daemon, keys[1], 1)
    forged = heartbeat(daemon, keys[2], 2)
    forged.body[1] = bytes(64)  # a signature that does not verify
    acted: list[tuple[bytes, set[bytes]]] = []
    act = daemon._act

    def watching(accepted: Accepted) -> None:
        acted.append((accepted.msg.id, ids_on_disk(daemon)))
        act(accepted)

    monkeypatch.setattr(daemon, "_act", watching)
    replay = Arrived(*first)  # the same message again, in the same batch
    daemon._on_batch([first, forged, replay, second])

    ids = [message_id for message_id, _ in acted]
    assert len(ids) == 2 and len(set(ids)) == 2  # the replay and the forgery took no effect
    for _, on_disk in acted:
        assert on_disk == set(ids)  # both ids, already at the first one's effect
    assert ids_on_disk(daemon) == set(ids)  # nothing of the forgery was written

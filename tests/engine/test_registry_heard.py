"""Heartbeat facts are held in memory and written together: at a flush, or when the registry
is closed (the daemon stopping). Decisions keep their own fsync."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from engine_agent.registry import Registry
from protocol import identity
from protocol.states import EngineEvent


def enroll(registry: Registry, fqdn: str) -> str:
    key = identity.generate()
    fingerprint = identity.fingerprint(key)
    registry.transition(
        fqdn,
        EngineEvent.REQUEST_WITH_TOKEN,
        actor="test",
        why="test",
        fingerprint=fingerprint,
        identity_key=identity.public_raw(key),
        port=6100,
        activate=0,
    )
    return fingerprint


def rows(path: Path) -> dict[str, tuple[object, object, object]]:
    """fqdn: (last_seen, health, state), as another process (``status``) reads them."""
    db = sqlite3.connect(path)
    try:
        query = "SELECT fqdn, last_seen, health, state FROM proxies"
        return {r[0]: (r[1], r[2], r[3]) for r in db.execute(query)}
    finally:
        db.close()


def test_heartbeat_facts_reach_the_disk_at_a_flush_for_the_key_that_sent_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "registry.sqlite"
    registry = Registry(path)
    a = enroll(registry, "a.example")
    enroll(registry, "b.example")
    before = rows(path)

    registry.heard(a, {"serial": "01"})
    registry.heard(a, {"serial": "02"})  # the later one wins
    registry.heard(identity.fingerprint(identity.generate()), {})  # no row holds this key
    assert rows(path) == before  # held, not written

    registry.flush_heard()
    after = rows(path)
    last_seen, health, state = after["a.example"]
    assert isinstance(last_seen, int) and json.loads(str(health)) == {"serial": "02"}
    assert state == before["a.example"][2]  # a fact, not a decision
    assert after["b.example"] == before["b.example"]
    assert len(after) == 2
    # Only the facts skip the fsync: the next decision's commit is synchronous again.
    assert registry._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    registry.close()


def test_closing_the_registry_writes_what_it_still_holds(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite"
    registry = Registry(path)
    fingerprint = enroll(registry, "a.example")
    registry.heard(fingerprint, {"serial": "07"})
    registry.close()  # what the daemon does when it stops
    assert rows(path)["a.example"][1] == json.dumps({"serial": "07"})

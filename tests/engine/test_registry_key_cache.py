"""The engine keeps the keys it has looked up, and never a key the registry no longer holds.

Every message's sender is looked up; the answers are kept until the registry changes, whether
this process changed it or another one did (``keys delete`` runs as its own process)."""

from __future__ import annotations

from pathlib import Path

from engine_agent.registry import Registry
from protocol.states import EngineEvent, EngineState
from tests.engine.test_registry_heard import enroll


def lookups(registry: Registry) -> list[str]:
    """The key lookups that reach SQLite from now on."""
    seen: list[str] = []
    registry._db.set_trace_callback(
        lambda sql: seen.append(sql) if "FROM proxies WHERE fingerprint" in sql else None
    )
    return seen


def test_a_key_is_looked_up_once_while_nothing_changes(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry.sqlite")
    fingerprint = enroll(registry, "p1.example.test")
    queries = lookups(registry)
    for _ in range(3):
        assert registry.key_holder(fingerprint) is not None
    assert len(queries) == 1


def test_heartbeat_facts_do_not_forget_the_keys(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry.sqlite")
    fingerprint = enroll(registry, "p1.example.test")
    queries = lookups(registry)
    registry.key_holder(fingerprint)
    registry.heard(fingerprint, {})
    registry.flush_heard()
    registry.key_holder(fingerprint)
    assert len(queries) == 1


def test_a_key_deleted_by_another_process_is_not_trusted_from_memory(tmp_path: Path) -> None:
    daemon = Registry(tmp_path / "registry.sqlite")
    fingerprint = enroll(daemon, "p1.example.test")
    assert daemon.key_holder(fingerprint) is not None
    command_line = Registry(tmp_path / "registry.sqlite")
    with command_line.transaction() as db:
        db.execute("DELETE FROM proxies WHERE fingerprint = ?", (fingerprint,))
    assert daemon.key_holder(fingerprint) is None


def test_a_state_changed_by_this_process_is_seen(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry.sqlite")
    fingerprint = enroll(registry, "p1.example.test")
    before = registry.key_holder(fingerprint)
    assert before is not None
    registry.transition("p1.example.test", EngineEvent.REVOKE, actor="test", why="test")
    after = registry.key_holder(fingerprint)
    assert after is not None and after.state == EngineState.REVOKED != before.state


def test_a_change_just_before_a_flush_is_not_absorbed(tmp_path: Path) -> None:
    daemon = Registry(tmp_path / "registry.sqlite")
    fingerprint = enroll(daemon, "p1.example.test")
    daemon.key_holder(fingerprint)
    daemon.heard(fingerprint, {})
    command_line = Registry(tmp_path / "registry.sqlite")
    with command_line.transaction() as db:
        db.execute("DELETE FROM proxies WHERE fingerprint = ?", (fingerprint,))
    daemon.flush_heard()
    assert daemon.key_holder(fingerprint) is None


def test_made_up_senders_are_not_kept(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry.sqlite")
    for n in range(100):
        assert registry.key_holder(f"SHA256:made-up-{n}") is None
    assert registry._holders == {}


def test_a_change_of_this_process_before_a_flush_is_not_absorbed(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry.sqlite")
    fingerprint = enroll(registry, "p1.example.test")
    registry.key_holder(fingerprint)
    registry.transition("p1.example.test", EngineEvent.REVOKE, actor="test", why="test")
    registry.heard(fingerprint, {})
    registry.flush_heard()
    holder = registry.key_holder(fingerprint)
    assert holder is not None and holder.state == EngineState.REVOKED


def test_a_batch_asks_sqlite_for_other_commits_once(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry.sqlite")
    fingerprints = [enroll(registry, f"p{n}.example.test") for n in range(3)]
    asked: list[str] = []
    registry._db.set_trace_callback(
        lambda sql: asked.append(sql) if "data_version" in sql else None
    )
    with registry.other_commits_looked_for_once():
        for fingerprint in fingerprints * 2:
            assert registry.key_holder(fingerprint) is not None
    assert len(asked) == 1


def test_a_delete_during_a_batch_is_seen_by_the_next_one(tmp_path: Path) -> None:
    daemon = Registry(tmp_path / "registry.sqlite")
    fingerprint = enroll(daemon, "p1.example.test")
    command_line = Registry(tmp_path / "registry.sqlite")
    with daemon.other_commits_looked_for_once():
        assert daemon.key_holder(fingerprint) is not None
        with command_line.transaction() as db:
            db.execute("DELETE FROM proxies WHERE fingerprint = ?", (fingerprint,))
    with daemon.other_commits_looked_for_once():
        assert daemon.key_holder(fingerprint) is None
    assert daemon.key_holder(fingerprint) is None  # and outside any batch


def test_a_change_of_this_process_during_a_batch_is_seen_at_once(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry.sqlite")
    fingerprint = enroll(registry, "p1.example.test")
    with registry.other_commits_looked_for_once():
        assert registry.key_holder(fingerprint) is not None
        registry.transition("p1.example.test", EngineEvent.REVOKE, actor="test", why="test")
        holder = registry.key_holder(fingerprint)
        assert holder is not None and holder.state == EngineState.REVOKED

"""The seen-id store: a batch of accepted ids reaches the disk in one commit, or not at all."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine_agent.seen_store import SeenStore


def on_disk(path: Path) -> set[bytes]:
    """What another process (the engine after a crash) would read."""
    db = sqlite3.connect(path)
    try:
        return {bytes(row[0]) for row in db.execute("SELECT id FROM seen_window")}
    finally:
        db.close()


def test_a_batch_is_on_disk_when_add_all_returns(tmp_path: Path) -> None:
    path = tmp_path / "seen-ids.sqlite"
    store = SeenStore(path)
    batch = [(bytes([n]) * 16, 1_000 + n) for n in range(5)]
    store.add_all(batch)
    assert on_disk(path) == {msg_id for msg_id, _ in batch}  # committed, not just written
    store.add_all(batch[:2])  # seen again: kept once
    store.close()
    reopened = SeenStore(path)
    assert sorted(reopened.since(1_002)) == batch[2:]
    reopened.close()


def test_a_batch_that_fails_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "seen-ids.sqlite"
    store = SeenStore(path)
    good = (b"g" * 16, 1_000)
    with pytest.raises(sqlite3.ProgrammingError):  # the second one cannot even be bound
        store.add_all([good, (object(), 1_001)])  # type: ignore[list-item]
    assert on_disk(path) == set()
    store.add_all([good])  # and the store goes on working
    assert on_disk(path) == {good[0]}
    store.close()


def test_the_ids_of_an_engine_before_the_time_keyed_table_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "seen-ids.sqlite"
    former = sqlite3.connect(path)
    former.execute("CREATE TABLE seen (id BLOB PRIMARY KEY, ts INTEGER NOT NULL)")
    former.executemany("INSERT INTO seen VALUES (?, ?)", [(b"a" * 16, 1_000), (b"b" * 16, 2_000)])
    former.commit()
    former.close()
    store = SeenStore(path)
    assert sorted(store.since(0)) == [(b"a" * 16, 1_000), (b"b" * 16, 2_000)]
    store.close()
    db = sqlite3.connect(path)
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    db.close()
    assert tables == {"seen_window"}
    assert sorted(SeenStore(path).since(1_500)) == [(b"b" * 16, 2_000)]  # opened again: as is

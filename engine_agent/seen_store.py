"""The ids of accepted messages, kept on disk for one freshness window.

The receive pipeline's seen-id cache lives in memory; on its own it forgets everything when
the engine restarts, and a message captured in the minutes before the restart would then be
accepted a second time. The engine writes each accepted id here before acting on the message
and reloads the window's ids at start. The ids of the messages taken from the socket together
are written in one transaction, before any of them is acted on.

A file of its own with ``synchronous=NORMAL``: in WAL mode that survives the process being
killed (the case that matters: a crash, then a restart) without an fsync per message. Only
losing power can drop the last ids, and a replay then still needs a captured message within
the window.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

# Keyed by time first: the ids arrive in about the order of their timestamps, so each batch
# lands on the last pages of the one B-tree. Keyed by id (random bytes, as before 2026-12),
# every id touched a page of its own and wrote it to the WAL at the commit: 15 µs an id,
# rising with the table's size, against 5 µs flat (200,000 ids in batches of 40). Nothing
# needs the id unique on disk: the receive pipeline refuses a repeat before it gets here.
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS seen_window"
    " (ts INTEGER NOT NULL, id BLOB NOT NULL, PRIMARY KEY (ts, id)) WITHOUT ROWID"
)
# The table of engines before that: its ids move over once, at the first start after.
FORMER_TABLE = "seen"


class SeenStore:
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # Only ever appended to and pruned: a large page cache would hold ids, not speed.
        self._db.execute("PRAGMA cache_size=-256")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(SCHEMA)
            self._move_former_table()
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        path.chmod(0o600)

    def _move_former_table(self) -> None:
        found = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (FORMER_TABLE,)
        ).fetchone()
        if found is None:
            return
        self._db.execute(
            f"INSERT OR IGNORE INTO seen_window (ts, id) SELECT ts, id FROM {FORMER_TABLE}"
        )
        self._db.execute(f"DROP TABLE {FORMER_TABLE}")

    def close(self) -> None:
        self._db.close()

    def add_all(self, accepted: list[tuple[bytes, int]]) -> None:
        """Record (id, timestamp) pairs, all or none: one commit for the lot."""
        self._db.execute("BEGIN")
        try:
            self._db.executemany(
                "INSERT OR IGNORE INTO seen_window (id, ts) VALUES (?, ?)", accepted
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def since(self, ts_ms: int) -> Iterator[tuple[bytes, int]]:
        for msg_id, ts in self._db.execute(
            "SELECT id, ts FROM seen_window WHERE ts >= ?", (ts_ms,)
        ):
            yield bytes(msg_id), int(ts)

    def forget_before(self, ts_ms: int) -> None:
        self._db.execute("DELETE FROM seen_window WHERE ts < ?", (ts_ms,))

"""The engine's registry of proxies, join tokens and the audit trail, in SQLite (WAL).

The daemon and the command line open the same file; SQLite's locking makes them take
turns, so ``keys accept`` works whether the daemon runs or not. Each proxy row's state
moves only through ``protocol.states.ENGINE_TABLE``: ``transition()`` refuses anything
else, so the table is the one statement of what may happen to a proxy.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.states import EngineEvent, EngineState, engine_machine
from wsproxy_agent.errors import AgentError


class RegistryError(AgentError):
    """The registry database cannot be opened."""


SCHEMA = """
CREATE TABLE IF NOT EXISTS proxies (
    fqdn            TEXT PRIMARY KEY,
    fingerprint     TEXT NOT NULL,
    identity_key    BLOB NOT NULL,
    state           TEXT NOT NULL,
    port            INTEGER NOT NULL,
    activate        INTEGER NOT NULL DEFAULT 1,
    csr_sha256      TEXT,
    csr_pem         TEXT,
    cert_pem        TEXT,
    serial          TEXT,
    not_before      INTEGER,
    not_after       INTEGER,
    active          INTEGER NOT NULL DEFAULT 0,
    replaced_value  TEXT,
    activation_error TEXT,
    token_id        TEXT,
    requested_at    INTEGER NOT NULL,
    last_seen       INTEGER,
    health          TEXT,
    last_error      TEXT,
    last_error_at   INTEGER,
    address         TEXT
);
-- Every message from an enrolled proxy is looked up by its sender's fingerprint.
CREATE INDEX IF NOT EXISTS proxies_by_fingerprint ON proxies (fingerprint);
CREATE TABLE IF NOT EXISTS tokens (
    id              TEXT PRIMARY KEY,
    proof_key       BLOB NOT NULL,
    proxy_fqdn      TEXT NOT NULL,
    port            INTEGER NOT NULL,
    activate        INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    used_at         INTEGER,
    used_by         TEXT,
    used_csr_sha256 TEXT,
    failures        INTEGER NOT NULL DEFAULT 0,
    revoked         INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS audit (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    at              INTEGER NOT NULL,
    actor           TEXT NOT NULL,
    action          TEXT NOT NULL,
    fqdn            TEXT,
    fingerprint     TEXT,
    why             TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key             TEXT PRIMARY KEY,
    value           TEXT NOT NULL
);
"""
# Columns of ``proxies`` that registries made by earlier versions lack: added on open, so an
# upgraded engine keeps its proxies.
ADDED_COLUMNS = (
    ("not_before", "INTEGER"),
    ("last_error", "TEXT"),
    ("last_error_at", "INTEGER"),
    ("address", "TEXT"),
)


@dataclass(frozen=True)
class Proxy:
    fqdn: str
    fingerprint: str
    identity_key: bytes
    state: EngineState
    port: int
    activate: bool
    csr_sha256: str | None
    csr_pem: str | None
    cert_pem: str | None
    serial: str | None
    not_before: int | None
    not_after: int | None
    active: bool
    replaced_value: str | None
    activation_error: str | None
    token_id: str | None
    requested_at: int
    last_seen: int | None
    health: str | None
    last_error: str | None  # the last failed install report or refused renewal
    last_error_at: int | None
    address: str | None  # where its first request came from: the per-address pending cap

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Proxy:
        values = dict(row)
        values["state"] = EngineState(values["state"])
        values["activate"] = bool(values["activate"])
        values["active"] = bool(values["active"])
        return cls(**values)


@dataclass(frozen=True)
class KeyHolder:
    """Who holds an identity key, and in what state: all a message's sender is asked for."""

    fqdn: str
    fingerprint: str
    state: EngineState
    identity_key: bytes


@dataclass(frozen=True)
class TokenRow:
    id: str
    proof_key: bytes
    proxy_fqdn: str
    port: int
    activate: bool
    created_at: int
    expires_at: int
    used_at: int | None
    used_by: str | None
    used_csr_sha256: str | None
    failures: int
    revoked: bool

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> TokenRow:
        values = dict(row)
        values["activate"] = bool(values["activate"])
        values["revoked"] = bool(values["revoked"])
        return cls(**values)


class Registry:
    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.parent.is_dir():
            raise RegistryError(
                f"{path.parent} does not exist; run 'wsproxy-agent engine init' on this host first."
            )
        try:
            self._db = sqlite3.connect(path, timeout=30, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as exc:
            raise RegistryError(
                f"Cannot open the registry {path} ({exc}); check its permissions (run as root)."
            ) from exc
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._add_missing_columns()
        # Heartbeat facts (fingerprint: last_seen, health) not yet written: see ``heard``.
        self._heard: dict[str, tuple[int, Mapping[str, Any]]] = {}
        # ``key_holder`` answers, valid while the registry is as it was when they were read.
        self._holders: dict[str, KeyHolder] = {}
        self._holders_read_at = self._version()
        self._others_pinned: int | None = None

    def _add_missing_columns(self) -> None:
        if not _missing_columns(self._db):
            return  # the usual case, and no write lock taken for it
        with self.transaction() as db:
            # Asked again under the lock: another process may have just added them.
            missing = _missing_columns(db)
            for name, kind in missing:
                db.execute(f"ALTER TABLE proxies ADD COLUMN {name} {kind}")
            if ("not_before", "INTEGER") in missing:
                _fill_not_before(db)

    def close(self) -> None:
        self.flush_heard()
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One decision, all or nothing; IMMEDIATE so two writers never interleave."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # proxies
    def proxy(self, fqdn: str) -> Proxy | None:
        row = self._db.execute("SELECT * FROM proxies WHERE fqdn = ?", (fqdn,)).fetchone()
        return Proxy.from_row(row) if row else None

    def proxy_by_fingerprint(self, fingerprint: str) -> Proxy | None:
        row = self._db.execute(
            "SELECT * FROM proxies WHERE fingerprint = ?", (fingerprint,)
        ).fetchone()
        return Proxy.from_row(row) if row else None

    def key_holder(self, fingerprint: str) -> KeyHolder | None:
        """``proxy_by_fingerprint`` narrowed to the key, for every message received: the
        whole row (certificate and CSR PEMs) costs more to build than the signature to check.

        Answers are kept until the registry changes: a commit by another process (``keys
        accept`` or ``delete`` from the command line) or any write of this one but the
        heartbeat facts. Checking that costs half the query it saves; inside
        ``other_commits_looked_for_once`` it is asked once for many messages.
        """
        others = self._others_pinned if self._others_pinned is not None else self._others()
        version = (others, self._db.total_changes)
        if version != self._holders_read_at:
            self._holders.clear()
            self._holders_read_at = version
        holder = self._holders.get(fingerprint)
        if holder is not None:
            return holder
        row = self._db.execute(
            f"SELECT {_HOLDER_COLUMNS} FROM proxies WHERE fingerprint = ?", (fingerprint,)
        ).fetchone()
        if row is None:
            return None  # not kept: made-up senders must not grow the cache
        holder = self._holders[fingerprint] = _holder(row)
        return holder

    @contextmanager
    def other_commits_looked_for_once(self) -> Iterator[None]:
        """Key lookups inside see other processes' commits as of its start, and this
        process's own changes at once. For the messages taken from the socket together: all
        of them arrived before the first is checked, so a ``keys delete`` committed while
        they are checked came after them, as it would if they were checked before it. Asking
        SQLite for every message was 9 % of a heartbeat's cost to the engine."""
        self._others_pinned = self._others()
        try:
            yield
        finally:
            self._others_pinned = None

    def _version(self) -> tuple[int, int]:
        """Changes whenever the registry's rows may have: SQLite's count of commits by other
        connections, and of rows this connection changed."""
        return self._others(), self._db.total_changes

    def _others(self) -> int:
        (others,) = self._db.execute("PRAGMA data_version").fetchone()
        return int(others)

    def key_holders(self) -> list[KeyHolder]:
        """Every proxy, narrowed as ``key_holder``: what a status round to all of them needs."""
        rows = self._db.execute(f"SELECT {_HOLDER_COLUMNS} FROM proxies ORDER BY fqdn")
        return [_holder(r) for r in rows.fetchall()]

    def proxies(self) -> list[Proxy]:
        rows = self._db.execute("SELECT * FROM proxies ORDER BY fqdn").fetchall()
        return [Proxy.from_row(r) for r in rows]

    def count_in_state(self, state: EngineState) -> int:
        row = self._db.execute("SELECT count(*) FROM proxies WHERE state = ?", (state.value,))
        return int(row.fetchone()[0])

    def count_pending_from(self, address: str) -> int:
        row = self._db.execute(
            "SELECT count(*) FROM proxies WHERE state = ? AND address = ?",
            (EngineState.PENDING.value, address),
        )
        return int(row.fetchone()[0])

    def transition(
        self, fqdn: str, event: EngineEvent, *, actor: str, why: str, **fields: Any
    ) -> EngineState:
        """Move one proxy along the engine table, update ``fields``, audit it: one transaction."""
        with self.transaction() as db:
            return self.transition_within(db, fqdn, event, actor=actor, why=why, **fields)

    def transition_within(
        self,
        db: sqlite3.Connection,
        fqdn: str,
        event: EngineEvent,
        *,
        actor: str,
        why: str,
        **fields: Any,
    ) -> EngineState:
        row = db.execute("SELECT state, fingerprint FROM proxies WHERE fqdn = ?", (fqdn,))
        current = row.fetchone()
        machine = engine_machine(EngineState(current["state"]) if current else EngineState.NEW)
        new_state = machine.fire(event)
        fields["state"] = new_state.value
        if current is None:
            columns = ", ".join(fields) + ", fqdn, requested_at"
            marks = ", ".join("?" for _ in range(len(fields) + 2))
            db.execute(
                f"INSERT INTO proxies ({columns}) VALUES ({marks})",
                (*fields.values(), fqdn, now_s()),
            )
        else:
            assignments = ", ".join(f"{name} = ?" for name in fields)
            db.execute(f"UPDATE proxies SET {assignments} WHERE fqdn = ?", (*fields.values(), fqdn))
        fingerprint = fields.get("fingerprint") or (current["fingerprint"] if current else None)
        self.audit_within(db, actor, event.value, fqdn, fingerprint, why)
        return new_state

    def update(self, fqdn: str, **fields: Any) -> None:
        """Facts that are not decisions (last seen, health): no state change, no audit."""
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self._db.execute(
            f"UPDATE proxies SET {assignments} WHERE fqdn = ?", (*fields.values(), fqdn)
        )

    def heard(self, fingerprint: str, health: Mapping[str, Any]) -> None:
        """A heartbeat's facts, for the proxy holding that key, kept in memory until
        ``flush_heard``.

        Written one by one, each would be a transaction with its fsync (synchronous=FULL),
        and a fleet's heartbeats would keep the disk busy. These facts are not decisions:
        losing the last second of them in a crash loses nothing the next heartbeat does not
        bring back. Kept by key, they land on whichever row holds the key when written, and
        on none if a new enrollment replaced it meanwhile. Made JSON when written, so a
        proxy heard twice within a flush costs one encoding.
        """
        self._heard[fingerprint] = (now_s(), health)

    def flush_heard(self) -> None:
        """Write the heartbeat facts held since the last flush, in one transaction."""
        if not self._heard:
            return
        rows = [(seen, json.dumps(health), fp) for fp, (seen, health) in self._heard.items()]
        # Facts, not decisions: not worth an fsync, which would stall the daemon's loop on a
        # busy disk. In WAL mode they still reach the file in order, and the next decision's
        # commit syncs them along with it.
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            with self.transaction() as db:
                # Under the write lock, so no other commit can slip in unnoticed: the keys
                # read so far stay valid across these rows, which change no key or state.
                current = self._version() == self._holders_read_at
                db.executemany(
                    "UPDATE proxies SET last_seen = ?, health = ? WHERE fingerprint = ?", rows
                )
        finally:
            self._db.execute("PRAGMA synchronous=FULL")
        if current:
            self._holders_read_at = (self._holders_read_at[0], self._db.total_changes)
        self._heard.clear()

    def note_error(self, fqdn: str, sentence: str | None) -> None:
        """Remember what last went wrong with a proxy (None: it has since gone right)."""
        self.update(fqdn, last_error=sentence, last_error_at=now_s() if sentence else None)

    def delete_expired_pending(self, older_than: int) -> list[str]:
        with self.transaction() as db:
            rows = db.execute(
                "SELECT fqdn, fingerprint FROM proxies WHERE state = ? AND requested_at < ?",
                (EngineState.PENDING.value, older_than),
            ).fetchall()
            for row in rows:
                db.execute("DELETE FROM proxies WHERE fqdn = ?", (row["fqdn"],))
                self.audit_within(
                    db, "engine", "expire", row["fqdn"], row["fingerprint"], "pending too long"
                )
        return [r["fqdn"] for r in rows]

    # tokens
    def add_token(self, token: TokenRow) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO tokens (id, proof_key, proxy_fqdn, port, activate, created_at,"
                " expires_at, failures, revoked) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0)",
                (
                    token.id,
                    token.proof_key,
                    token.proxy_fqdn,
                    token.port,
                    int(token.activate),
                    token.created_at,
                    token.expires_at,
                ),
            )
            self.audit_within(
                db, "operator", "token_create", token.proxy_fqdn, None, f"token {token.id}"
            )

    def token(self, token_id: str) -> TokenRow | None:
        row = self._db.execute("SELECT * FROM tokens WHERE id = ?", (token_id,)).fetchone()
        return TokenRow.from_row(row) if row else None

    def tokens(self) -> list[TokenRow]:
        rows = self._db.execute("SELECT * FROM tokens ORDER BY created_at").fetchall()
        return [TokenRow.from_row(r) for r in rows]

    def count_token_failure(self, token_id: str) -> int:
        with self.transaction() as db:
            db.execute("UPDATE tokens SET failures = failures + 1 WHERE id = ?", (token_id,))
            row = db.execute("SELECT failures FROM tokens WHERE id = ?", (token_id,)).fetchone()
        return int(row[0]) if row else 0

    def mark_token_used(
        self, db: sqlite3.Connection, token_id: str, fingerprint: str, csr_sha256: str
    ) -> None:
        db.execute(
            "UPDATE tokens SET used_at = ?, used_by = ?, used_csr_sha256 = ? WHERE id = ?",
            (now_s(), fingerprint, csr_sha256, token_id),
        )

    def revoke_token(self, token_id: str, *, actor: str) -> bool:
        with self.transaction() as db:
            changed = db.execute(
                "UPDATE tokens SET revoked = 1 WHERE id = ? AND revoked = 0", (token_id,)
            ).rowcount
            if changed:
                self.audit_within(db, actor, "token_revoke", None, None, f"token {token_id}")
        return bool(changed)

    # audit and meta
    def audit(
        self, actor: str, action: str, fqdn: str | None, fingerprint: str | None, why: str
    ) -> None:
        self.audit_within(self._db, actor, action, fqdn, fingerprint, why)

    def audit_within(
        self,
        db: sqlite3.Connection,
        actor: str,
        action: str,
        fqdn: str | None,
        fingerprint: str | None,
        why: str,
    ) -> None:
        db.execute(
            "INSERT INTO audit (at, actor, action, fqdn, fingerprint, why) VALUES (?, ?, ?, ?, ?, ?)",
            (now_s(), actor, action, fqdn, fingerprint, why),
        )

    def audit_trail(self, fqdn: str | None = None) -> list[dict[str, Any]]:
        query = "SELECT * FROM audit" + (" WHERE fqdn = ?" if fqdn else "") + " ORDER BY seq"
        return [dict(r) for r in self._db.execute(query, (fqdn,) if fqdn else ()).fetchall()]

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None


def now_s() -> int:
    return int(time.time())


_HOLDER_COLUMNS = "fqdn, fingerprint, state, identity_key"


def _holder(row: sqlite3.Row) -> KeyHolder:
    return KeyHolder(row[0], row[1], EngineState(row[2]), row[3])


def _missing_columns(db: sqlite3.Connection) -> list[tuple[str, str]]:
    present = {row["name"] for row in db.execute("PRAGMA table_info(proxies)")}
    return [(name, kind) for name, kind in ADDED_COLUMNS if name not in present]


def _fill_not_before(db: sqlite3.Connection) -> None:
    """Read the start of each issued certificate, once, when the column is new."""
    # Imported here: only this one-time upgrade needs it, and 'status' opens the registry
    # without paying for cryptography.
    from cryptography import x509

    rows = db.execute("SELECT fqdn, cert_pem FROM proxies WHERE cert_pem IS NOT NULL").fetchall()
    for row in rows:
        cert = x509.load_pem_x509_certificate(row["cert_pem"].encode())
        db.execute(
            "UPDATE proxies SET not_before = ? WHERE fqdn = ?",
            (int(cert.not_valid_before_utc.timestamp()), row["fqdn"]),
        )

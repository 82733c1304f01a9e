"""The attack suite's target: a real engine daemon with one enrolled proxy, and the checks
every attack test makes.

Each attack asserts three things:

1. the daemon refused (what the attacker gets back, or that nothing comes back);
2. the daemon still serves a legitimate proxy afterwards (:meth:`Target.assert_serves_legit`);
3. no state changed (:meth:`Target.snapshot` before, :meth:`Target.assert_unchanged` after):
   the registry's proxies, tokens and meta rows, every file under both host roots (issued
   certificates, the CA's database, the proxy's config) and the stand-ins' recorded calls
   (engine-config, the restarts). The audit trail is left out: a refusal is written there.

The attacker connects from 127.0.0.2 and the legitimate proxy from 127.0.0.1, so limits
kept per address can be told apart on one loopback interface.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from protocol import catalogue as cat
from protocol import identity
from protocol.envelope import Message
from tests.e2e.conftest import PROXY_FQDN, Hosts, host_pair, joined, short_tempdir
from tests.e2e.rawclient import RawProxy

ATTACKER_ADDRESS = "127.0.0.2"
LEGIT_ADDRESS = "127.0.0.1"
STATE = "var/lib/wsproxy-agent"
# Rows that change with time or traffic, not with a decision.
VOLATILE_COLUMNS = frozenset({"last_seen", "health"})
# Files that change under any traffic: the registry (compared by rows), logs, sockets.
VOLATILE_FILES = ("registry.sqlite", "seen-ids.sqlite", "/run/", ".log")


@dataclass
class Snapshot:
    rows: dict[str, list[dict[str, Any]]]
    files: dict[str, str]
    calls: dict[str, list[list[str]]]


@dataclass
class Target:
    hosts: Hosts
    clients: list[RawProxy]

    @property
    def engine_root(self) -> Path:
        return self.hosts.engine

    @property
    def port(self) -> int:
        return self.hosts.port

    # clients
    def attacker(self, key: Any = None, *, source: str = ATTACKER_ADDRESS, **kw: Any) -> RawProxy:
        """A hand-driven client from the attacker's address (a fresh identity by default)."""
        client = RawProxy(self.engine_root, self.port, key, source=source, **kw)
        self.clients.append(client)
        return client

    def legit(self) -> RawProxy:
        """The enrolled proxy's own key, from its own address."""
        key = identity.private_from_pem((self.hosts.proxy / STATE / "identity.key").read_bytes())
        return self.attacker(key, source=LEGIT_ADDRESS)

    def restart_engine(self, *, kill: bool = False, **config: object) -> None:
        """Stop the engine daemon (SIGKILL with ``kill``), set ``config`` keys, start it again."""
        h = self.hosts
        engine = h.daemons[0]
        if kill:
            h.kill_engine(engine)
        else:
            engine.terminate()
            engine.wait(timeout=20)
        h.daemons.remove(engine)
        if config:
            h.configure(h.engine, **config)
        engine = h.start_engine()
        h.daemons.remove(engine)
        h.daemons.insert(0, engine)  # the engine stays first

    def engine_log(self) -> str:
        return self.hosts.engine_log()

    def enrolled(self) -> dict[str, Any]:
        """The row of the proxy the fixture joined (an attack may enroll others beside it)."""
        [row] = [r for r in self.hosts.registry() if r["fqdn"] == PROXY_FQDN]
        return row

    def assert_serves_legit(self) -> Message:
        """The enrolled proxy asks to renew with the request it holds: the engine answers
        with the certificate it already issued (a retry costs no new signing)."""
        row = self.enrolled()
        client = self.legit()
        sent = client.send(cat.RENEW_REQUEST, {"csr": row["csr_pem"]})
        reply = client.reply(10.0)
        assert reply is not None, "the engine no longer answers its enrolled proxy"
        assert reply.type == cat.ENROLL_APPROVED, reply
        assert reply.re == sent and reply.body["serial"] == row["serial"]
        return reply

    # state
    def snapshot(self) -> Snapshot:
        return Snapshot(self._rows(), self._files(), self._calls())

    def assert_unchanged(self, before: Snapshot) -> None:
        after = self.snapshot()
        assert after.rows == before.rows, "the registry changed"
        assert after.files == before.files, "files changed on a host"
        assert after.calls == before.calls, "a command ran"

    def _rows(self) -> dict[str, list[dict[str, Any]]]:
        db = sqlite3.connect(self.engine_root / STATE / "registry.sqlite")
        db.row_factory = sqlite3.Row
        try:
            return {
                table: [
                    {k: v for k, v in dict(r).items() if k not in VOLATILE_COLUMNS}
                    for r in db.execute(f"SELECT * FROM {table} ORDER BY 1")
                ]
                for table in ("proxies", "tokens", "meta")
            }
        finally:
            db.close()

    def _files(self) -> dict[str, str]:
        out = {}
        for root in (self.hosts.engine, self.hosts.proxy):
            for path in sorted(root.rglob("*")):
                name = str(path)
                if path.is_file() and not any(v in name for v in VOLATILE_FILES):
                    out[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        return out

    def _calls(self) -> dict[str, list[list[str]]]:
        h = self.hosts
        return {
            s.path.name: [args for _, args in s.calls]
            for s in (h.engine_config, h.systemctl_engine, h.systemctl_proxy)
        }


@contextlib.contextmanager
def running_target(prepare: Callable[[Hosts], None] | None = None) -> Iterator[Target]:
    """A running engine with the proxy joined; ``prepare`` sets up the engine root before
    ``engine init`` (e.g. installs oVirt's signing script so init picks that signer)."""
    with host_pair(short_tempdir()) as h:
        if prepare is not None:
            prepare(h)
        h.engine_init()
        h.start_engine()
        joined(h)
        t = Target(h, [])
        try:
            yield t
        finally:
            for client in t.clients:
                client.close()


@pytest.fixture
def target() -> Iterator[Target]:
    with running_target() as t:
        yield t

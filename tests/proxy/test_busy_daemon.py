"""A proxy daemon asked for its status many times a second does not redo its chores each time.

Each look at the health forks the service check and hashes setup.conf, each message from the
engine was written to proxy-state.json as the last contact, and each turn of the loop read
that file to see whether a renewal was due: under a burst of status queries, a fork, an fsync
and a read per query. Now each happens at most once a second. Real commands (the recording
stand-in for systemctl) and real files.
"""

from __future__ import annotations

import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from protocol import catalogue as cat
from protocol import identity
from protocol.envelope import ID_SIZE, Message
from protocol.joinstring import b64
from proxy_agent import health, state
from proxy_agent.daemon import RENEWAL_LOOK_S, ProxyDaemon
from proxy_agent.settings import ProxySettings
from wsproxy_agent import config
from wsproxy_agent.keyfiles import load_or_create_identity
from wsproxy_agent.paths import HostPaths

RECORDER = Path(__file__).resolve().parents[1] / "standins" / "recorder"


def settings_for(root: Path) -> ProxySettings:
    paths = HostPaths.under(root)
    paths.state_dir.mkdir(parents=True)
    load_or_create_identity(paths.identity_key)
    systemctl = root / "systemctl"
    shutil.copy(RECORDER, systemctl)
    values = {
        **config.PROXY_DEFAULTS,
        "fqdn": "proxy.example.com",
        "engine": "127.0.0.1:1",
        "engine_identity_key": b64(identity.public_raw(identity.generate())),
        "service_check_command": [str(systemctl), "is-active", "ovirt-websocket-proxy.service"],
    }
    return ProxySettings(paths=paths, **values)


def service_checks(settings: ProxySettings) -> int:
    calls = Path(settings.service_check_command[0] + ".calls")
    return len(calls.read_text().splitlines()) if calls.exists() else 0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_health_is_looked_at_again_once_it_is_max_age_old(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    clock = FakeClock()
    looks = health.Health(max_age_s=1.0, clock=clock)
    assert looks.snapshot(settings)["service_active"] is True
    Path(settings.service_check_command[0] + ".fail").write_text("inactive\n")

    clock.now += 0.9
    assert looks.snapshot(settings)["service_active"] is True  # the look of 0.9 s ago
    assert service_checks(settings) == 1

    clock.now += 0.1
    assert looks.snapshot(settings)["service_active"] is False  # a second old: looked again
    assert service_checks(settings) == 2

    reloaded = settings_for(tmp_path / "other")
    looks.snapshot(reloaded)  # settings read anew (a key rotation): looked at at once
    assert service_checks(reloaded) == 1


class RecordingLink:
    """What the daemon sends back, in place of its EngineLink."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], bytes | None]] = []

    def send(self, msg_type: str, body: dict[str, Any], re: bytes | None = None) -> bytes:
        self.sent.append((msg_type, body, re))
        return secrets.token_bytes(ID_SIZE)


def status_query(daemon: ProxyDaemon) -> Message:
    return Message(
        version=cat.PROTOCOL_VERSION,
        type=cat.STATUS_QUERY,
        id=secrets.token_bytes(ID_SIZE),
        re=None,
        ts=time.time_ns() // 1_000_000,
        sender=identity.fingerprint(identity.generate()),
        recipient=identity.fingerprint(daemon.key),
        body={},
    )


def test_a_burst_of_status_queries_is_answered_with_a_write_and_a_look_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = ProxyDaemon(settings_for(tmp_path))
    writes: list[dict[str, Any]] = []
    real_save = state.save

    def counted_save(path: Path, **changes: Any) -> dict[str, Any]:
        writes.append(changes)
        return real_save(path, **changes)

    monkeypatch.setattr(state, "save", counted_save)
    link = RecordingLink()
    queries = [status_query(daemon) for _ in range(40)]
    started_wall, started = time.time(), time.monotonic()
    for query in queries:
        daemon._on_message(link, query)  # type: ignore[arg-type]
    ended_wall, elapsed = time.time(), time.monotonic() - started

    # Every query answered, each reply naming its query, with the health in it.
    assert [re for _, _, re in link.sent] == [q.id for q in queries]
    assert all(t == cat.STATUS_REPLY and body["service_active"] for t, body, _ in link.sent)
    # One write per second spanned, one look per second elapsed (and the first), not 40.
    contact_writes = [w for w in writes if "last_contact" in w]
    assert 1 <= len(contact_writes) <= int(ended_wall) - int(started_wall) + 1
    assert int(started_wall) <= state.load(daemon.paths.proxy_state)["last_contact"]
    assert 1 <= service_checks(daemon.settings) <= elapsed / health.MAX_AGE_S + 1


def test_the_loop_looks_for_a_due_renewal_once_a_second_not_once_a_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = ProxyDaemon(settings_for(tmp_path))
    now = int(time.time())
    state.save(daemon.paths.proxy_state, enrollment="active", not_before=now, not_after=now + 10**7)
    reads: list[Path] = []
    real_load = state.load

    def counted_load(path: Path) -> dict[str, Any]:
        reads.append(path)
        return real_load(path)

    monkeypatch.setattr(state, "load", counted_load)
    started = time.monotonic()
    for _ in range(200):  # a loop turning once per message of a burst
        daemon._renew_when_due(RecordingLink())  # type: ignore[arg-type]
    elapsed = time.monotonic() - started
    # A read a look, and one more for saving the plan the first look made.
    assert 1 <= len(reads) <= elapsed / RENEWAL_LOOK_S + 2
    assert state.load(daemon.paths.proxy_state)["renewal"]["due"] > now  # the plan is saved

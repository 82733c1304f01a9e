"""`engine rotate-keys`: new engine keys, announced under the old key; enrolled proxies follow."""

from __future__ import annotations

import json
import time
import tomllib
from typing import Any

import zmq

from engine_agent import rotation
from protocol import catalogue as cat
from protocol import identity
from protocol.envelope import seal
from tests.e2e.conftest import PROXY_FQDN, Hosts, joined, wait_for
from wsproxy_agent import transport
from wsproxy_agent.paths import HostPaths


def joined_and_running(h: Hosts) -> Hosts:
    h.configure(h.proxy, heartbeat_interval=1)
    joined(h)
    h.start_proxy()
    # The engine can announce only to a proxy whose heartbeat told it where it is.
    wait_for(lambda: h.registry()[0]["health"] is not None, "a first heartbeat")
    return h


def engine_fingerprint(h: Hosts) -> str:
    return identity.fingerprint(
        identity.private_from_pem((h.engine / "var/lib/wsproxy-agent/identity.key").read_bytes())
    )


def pinned(h: Hosts) -> str:
    toml = tomllib.loads((h.proxy / "etc/wsproxy-agent/proxy.toml").read_text())
    return str(toml["engine_fingerprint"])


def test_connected_proxy_follows_and_keeps_working(running: Hosts) -> None:
    h = joined_and_running(running)
    old = engine_fingerprint(h)
    old_join_string = h.token()
    assert pinned(h) == old

    result = h.cli(h.engine, "engine", "rotate-keys", "--timeout", "20")
    assert result.returncode == 0, result.stdout + result.stderr
    new = engine_fingerprint(h)
    assert new != old and new in result.stdout
    assert f"followed         {PROXY_FQDN}" in result.stdout
    assert pinned(h) == new  # the proxy wrote the new pin itself; no token was used
    assert (h.engine / "var/lib/wsproxy-agent/identity.key.old").exists()
    assert [a for a in h.audit() if a["action"] == "rotate-keys" and a["fingerprint"] == new]
    assert '"decision": "accept"' in h.proxy_log() and new in h.proxy_log()

    # The proxy reconnects under the new Curve key and the engine reaches it with the new key.
    def live_answer() -> Any:
        report = json.loads(h.cli(h.engine, "status", "--live", "--json").stdout)
        return (report.get("live") or {}).get(PROXY_FQDN)

    wait_for(lambda: live_answer() is not None, "a pushed query answered after rotation", 60)
    renewed = h.cli(h.proxy, "proxy", "renew")
    assert renewed.returncode == 0, renewed.stdout + renewed.stderr
    assert new in h.cli(h.engine, "status").stdout

    # A join string made before the rotation pins keys the engine no longer has.
    stale = h.join(old_join_string, "--timeout", "8", root=h.top / "other")
    assert stale.returncode != 0


def test_refused_while_an_enrolled_proxy_is_not_connected(running: Hosts) -> None:
    h = running
    assert h.join(h.token()).returncode == 0  # enrolled, but its daemon never ran
    old = engine_fingerprint(h)
    result = h.cli(h.engine, "engine", "rotate-keys")
    assert result.returncode == 1
    assert "Not connected now: proxy.e2e.test" in result.stderr and "--force" in result.stderr
    assert engine_fingerprint(h) == old
    assert not rotation.pending(HostPaths.under(h.engine))
    assert not [a for a in h.audit() if a["action"] == "rotate-keys"]


def test_force_leaves_an_absent_proxy_to_rejoin(running: Hosts) -> None:
    h = running
    assert h.join(h.token()).returncode == 0
    old = engine_fingerprint(h)
    result = h.cli(h.engine, "engine", "rotate-keys", "--force", "--timeout", "2")
    assert result.returncode == 1
    assert "Did not confirm the new keys: proxy.e2e.test" in result.stderr
    assert engine_fingerprint(h) != old and pinned(h) == old
    # It cannot reach the engine under the old pins; a fresh token brings it back.
    assert h.cli(h.proxy, "proxy", "renew", "--timeout", "6").returncode != 0
    rejoined = h.join(h.token())
    assert rejoined.returncode == 0, rejoined.stdout + rejoined.stderr
    assert pinned(h) == engine_fingerprint(h)


def test_offline_rotation_without_proxies(hosts: Hosts) -> None:
    h = hosts
    h.engine_init()
    old = engine_fingerprint(h)
    result = h.cli(h.engine, "engine", "rotate-keys")
    assert result.returncode == 0, result.stdout + result.stderr
    assert engine_fingerprint(h) != old
    h.start_engine()
    assert h.join(h.token()).returncode == 0  # new tokens carry the new keys


def test_a_rotation_cut_short_is_finished_at_start(running: Hosts) -> None:
    h = joined_and_running(running)
    old = engine_fingerprint(h)
    engine = h.daemons[0]
    h.kill_engine(engine)
    # As if the daemon died right after announcing: the new keys wait beside the old ones.
    announced = rotation.prepare(HostPaths.under(h.engine))
    h.start_engine()
    assert engine_fingerprint(h) == announced.fingerprint != old
    assert not rotation.pending(HostPaths.under(h.engine))
    [entry] = [a for a in h.audit() if a["action"] == "rotate-keys"]
    assert "interruption" in str(entry["why"])


def test_an_announcement_not_signed_by_the_pinned_key_is_refused(running: Hosts) -> None:
    """Even with the engine's Curve secret (say it leaked), an impostor cannot re-pin a proxy."""
    h = joined_and_running(running)
    before = (h.proxy / "etc/wsproxy-agent/proxy.toml").read_text()
    h.kill_engine(h.daemons[0])
    state = h.engine / "var/lib/wsproxy-agent"
    ctx: zmq.Context[Any] = zmq.Context()
    impostor = transport.server(
        ctx, f"tcp://127.0.0.1:{h.port}", transport.read_curve_key(state / "curve.key_secret")
    )
    try:
        assert impostor.poll(30_000), "the proxy did not reconnect to the impostor"
        routing_id, *_ = impostor.recv_multipart()  # a heartbeat: now we can push to it
        forger = identity.generate()
        sealed = seal(
            forger,
            cat.ENGINE_KEY_ROTATION,
            {"identity_key": identity.public_raw(forger), "curve_key": b"\x01" * 32},
            recipient=str(h.registry()[0]["fingerprint"]),
            now_ms=time.time_ns() // 1_000_000,
        )
        impostor.send_multipart([routing_id, *sealed.frames])
        wait_for(
            lambda: identity.fingerprint(forger) in h.proxy_log(), "the proxy to refuse it", 20
        )
    finally:
        impostor.close()
        ctx.term()
    assert (h.proxy / "etc/wsproxy-agent/proxy.toml").read_text() == before
    refusal = next(
        json.loads(line)
        for line in h.proxy_log().splitlines()
        if identity.fingerprint(forger) in line
    )
    assert refusal["event"] == "security_decision" and refusal["decision"] == "refuse"
    assert "rotation signed by the pinned" not in h.proxy_log()

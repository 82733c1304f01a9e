"""200 proxies cut off together by an engine restart come back spread out, and all come back.

One real engine daemon; 200 simulated proxies in this process, each with its own Ed25519
identity and its own ``EngineLink`` (the proxy daemon's DEALER, reconnect backoff and
monitor), all on one shared zmq context, each on a thread that runs the daemon's
heartbeat policy: the first beat ``schedule.beat_after_reconnect`` after a reconnect,
then one per interval, and an answer to every pushed status query.

Times are wall-clock on one host, so the proxies' handshake and heartbeat times compare
directly with the engine's ``engine_started`` log line. A handshake is timed when the
proxy's monitor reports it done, which needs the engine's half of it, so that is also
when the engine saw it.
"""

from __future__ import annotations

import json
import random
import statistics
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

import zmq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine_agent.registry import Registry
from protocol import catalogue as cat
from protocol import identity
from proxy_agent import schedule
from proxy_agent.daemon import POLL_S
from proxy_agent.link import EngineLink
from tests.e2e.conftest import Hosts, wait_for
from tests.support.fleet import HEALTHY, enter_as_enrolled
from wsproxy_agent import control, transport
from wsproxy_agent.paths import HostPaths

FLEET = 200
# The default interval: after the restart only each proxy's first, randomly delayed beat
# falls in the measured window, which is the one the policy spreads.
HEARTBEAT_INTERVAL_S = 30
WINDOW_S = 0.1
# Each proxy's first reconnect delay is drawn from RECONNECT_MS, a band 600 ms wide: about
# 33 proxies a 100 ms on average (measured busiest 100 ms: 38-50). 80, 40% of the fleet,
# still tells it from a storm, where one delay for all puts the whole fleet in one. Counted
# on the delays libzmq reports it scheduled, not on when the handshakes were seen: those
# are seen by 200 threads of one process, and a stall of that process on a shared VM
# (CPU steal measured at 57%) bunched them to 90 in 100 ms though the delays were spread.
MAX_RETRIES_PER_WINDOW = 80
# First beats are spread over RECONNECT_SPREAD_S (5 s): about 4 per 100 ms on average
# (measured busiest 100 ms: 9-15). Five times that, 10% of the fleet; with no delay the
# beats fall due with the handshakes, 25-46 in one 100 ms. Counted on when each beat falls
# due, not when it is sent: the 200 proxies share one process here, and a stall of that
# process (CI once held every thread for 1.3 s) sends all the beats due in it together,
# a bunching no fleet of separate hosts has.
MAX_BEATS_PER_WINDOW = 20
# Whichever try meets the engine, the fleet's delays up to it span 600 ms or more.
MIN_HANDSHAKE_SPREAD_S = 0.5


@dataclass
class SimulatedProxy:
    fqdn: str
    key: Ed25519PrivateKey
    link: EngineLink
    handshakes: list[float] = field(default_factory=list)  # wall clock, each (re)connect
    beats: list[float] = field(default_factory=list)  # wall clock, each heartbeat sent
    beat_due: list[float] = field(default_factory=list)  # wall clock, each return's first beat
    error: BaseException | None = None

    def run(self, stop: threading.Event) -> None:
        try:
            # Daemons on separate hosts tick out of step; threads started together would
            # tick together and send their beats in lockstep, a bunching no fleet has.
            stop.wait(random.uniform(0, POLL_S))
            self._loop(stop)
        except BaseException as exc:  # reported by the test, not lost in a thread
            self.error = exc

    def _loop(self, stop: threading.Event) -> None:
        """The link and heartbeat part of ``ProxyDaemon.run``, with a fixed health body."""
        up = False
        handshakes_seen = 0
        next_beat = 0.0
        while not stop.is_set():
            # As ProxyDaemon._follow_link: a new handshake is a return even when the loss
            # and the return both fell between two looks.
            returned = self.link.handshakes != handshakes_seen
            handshakes_seen = self.link.handshakes
            if returned or self.link.connected != up:
                up = self.link.connected
                if up:
                    self.handshakes.append(self.link.restored_at or time.time())
                if up and self.link.lost_at is not None:
                    delay = schedule.beat_after_reconnect(HEARTBEAT_INTERVAL_S)
                    next_beat = time.monotonic() + delay
                    self.beat_due.append(time.time() + delay)
            beat_now = up and time.monotonic() >= next_beat
            if beat_now and self.link.send(cat.HEARTBEAT, HEALTHY) is not None:
                self.beats.append(time.time())
                next_beat = time.monotonic() + HEARTBEAT_INTERVAL_S
            msg = self.link.receive(POLL_S)
            if msg is not None and msg.type == cat.STATUS_QUERY:
                reply = {"enrolled": True, "fqdn": self.fqdn, **HEALTHY}
                self.link.send(cat.STATUS_REPLY, reply, re=msg.id)


def make_fleet(h: Hosts, ctx: transport.Context) -> list[SimulatedProxy]:
    state = HostPaths.under(h.engine).state_dir
    engine_key = identity.private_from_pem((state / "identity.key").read_bytes())
    curve = transport.curve_to_raw(transport.read_curve_key(state / "curve.key"))
    fleet = []
    for i in range(FLEET):
        key = identity.generate()
        link = EngineLink(
            address=f"127.0.0.1:{h.port}",
            curve_key=curve,
            engine_key=identity.public_raw(engine_key),
            key=key,
            context=ctx,
        )
        fleet.append(SimulatedProxy(f"proxy{i:03d}.fleet.e2e.test", key, link))
    return fleet


def register(h: Hosts, fleet: list[SimulatedProxy]) -> None:
    """Enter the fleet as enrolled proxies, with the engine stopped.

    Through the registry API rather than 200 token joins: each join signs a certificate
    and restarts a stand-in service, minutes for the fleet, and the joins are not what
    this test is about.
    """
    enter_as_enrolled(h.engine, [(p.fqdn, p.key) for p in fleet], "test")


def forget_last_seen(h: Hosts) -> None:
    """With the engine stopped: from now on a last_seen can only come from the new engine."""
    registry = Registry(HostPaths.under(h.engine).registry)
    try:
        with registry.transaction() as db:
            db.execute("UPDATE proxies SET last_seen = NULL")
    finally:
        registry.close()


def seen_by_engine(h: Hosts) -> int:
    return sum(1 for row in h.registry() if row["last_seen"] is not None)


def started_at(h: Hosts, pid: int) -> float | None:
    """When the engine daemon with this pid logged that it listens (it binds first)."""
    for line in h.engine_log().splitlines():
        if '"engine_started"' in line:
            event = json.loads(line)
            if event["pid"] == pid:
                return datetime.fromisoformat(event["timestamp"]).timestamp()
    return None


def busiest_window(times: list[float], width: float = WINDOW_S) -> int:
    ordered = sorted(times)
    most, first = 0, 0
    for last, t in enumerate(ordered):
        while t - ordered[first] >= width:
            first += 1
        most = max(most, last - first + 1)
    return most


@dataclass
class ControlProbe:
    """Pings the engine's control socket, as ``status`` does, until told to stop."""

    h: Hosts
    latencies: list[float] = field(default_factory=list)
    unanswered: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        path = HostPaths.under(self.h.engine).engine_control
        while not self.stop.is_set():
            asked = time.monotonic()
            if control.ask(path, {"op": "ping"}) is None:
                self.unanswered += 1
            else:
                self.latencies.append(time.monotonic() - asked)
            self.stop.wait(0.1)  # a steady pace of questions, not a wait for a condition


def test_200_proxies_come_back_spread_out_after_an_engine_restart(hosts: Hosts) -> None:
    h = hosts
    h.engine_init()
    ctx: transport.Context = zmq.Context()
    fleet = make_fleet(h, ctx)
    register(h, fleet)
    engine = h.start_engine()
    stop = threading.Event()
    threads = [threading.Thread(target=p.run, args=(stop,), daemon=True) for p in fleet]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: seen_by_engine(h) == FLEET, "every proxy's first heartbeat", 60)

        h.kill_engine(engine)
        wait_for(lambda: not any(p.link.connected for p in fleet), "every proxy to see it", 30)
        forget_last_seen(h)
        engine = h.start_engine(wait=False)
        wait_for(lambda: started_at(h, engine.pid) is not None, "the new engine to listen", 30)
        listening = started_at(h, engine.pid)
        assert listening is not None
        downtime = listening - max(p.link.lost_at or 0.0 for p in fleet)

        probe = ControlProbe(h)
        probing = threading.Thread(target=probe.run, daemon=True)
        probing.start()
        wait_for(lambda: all(len(p.handshakes) >= 2 for p in fleet), "every proxy to reconnect", 60)
        # While the heartbeats, the expensive part for the engine, come in; not earlier: on
        # two cores a Python start-up would hold back the handshakes being measured.
        during = h.cli(h.engine, "status", "--json")
        wait_for(lambda: all(len(p.beats) >= 2 for p in fleet), "every proxy to beat again", 30)
        wait_for(lambda: seen_by_engine(h) == FLEET, "the engine to record every heartbeat", 30)
        all_seen = time.time()
        probe.stop.set()
        probing.join(timeout=10)

        live = h.cli(h.engine, "status", "--live", "--timeout", "10", "--json", timeout=60)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        for p in fleet:
            p.link.close()
        ctx.term()

    assert [p.error for p in fleet if p.error] == []
    handshakes = sorted(p.handshakes[1] - listening for p in fleet)
    beats = sorted(p.beats[1] - listening for p in fleet)
    due = sorted(p.beat_due[0] - listening for p in fleet)
    late = sorted(p.beats[1] - p.beat_due[0] for p in fleet)
    peak_handshakes = busiest_window(handshakes)
    first_retry = sorted(p.link.retry_delays_ms[0] / 1000 for p in fleet)
    peak_retries = busiest_window(first_retry)
    peak_due = busiest_window(due)
    print(
        f"\n{FLEET} proxies, engine down {downtime:.2f} s (kill to listening); after it listens:"
        f"\n  handshakes  first {handshakes[0]:.2f} s, all by {handshakes[-1]:.2f} s,"
        f" spread {handshakes[-1] - handshakes[0]:.2f} s,"
        f" busiest 100 ms: {peak_handshakes}; first retry delays"
        f" {first_retry[0] * 1000:.0f}-{first_retry[-1] * 1000:.0f} ms,"
        f" busiest 100 ms: {peak_retries}"
        f"\n  heartbeats  first due {due[0]:.2f} s, busiest 100 ms: {peak_due} due;"
        f" all sent by {beats[-1]:.2f} s, sent after due: median"
        f" {late[len(late) // 2] * 1000:.0f} ms, most {late[-1] * 1000:.0f} ms;"
        f" all in the registry by {all_seen - listening:.2f} s (polled)"
        f"\n  control socket during the storm: {len(probe.latencies)} pings answered,"
        f" median {statistics.median(probe.latencies) * 1000:.0f} ms,"
        f" slowest {max(probe.latencies) * 1000:.0f} ms, {probe.unanswered} unanswered"
    )

    # The engine answered its operator throughout.
    assert json.loads(during.stdout)["facts"]["daemon"] == f"running (pid {engine.pid})"
    # Each ping within status's own timeout. The median, not the slowest: on a shared VM
    # (CPU steal measured at 57% here) one ping in forty waited 1.2 s for the CPU alone.
    assert probe.unanswered == 0 and len(probe.latencies) >= 5
    assert statistics.median(probe.latencies) < 0.25, probe.latencies
    # Every proxy is back and reachable: the new engine learnt each route from a heartbeat.
    report = json.loads(live.stdout)
    assert len(report["live"]) == FLEET
    assert [fqdn for fqdn, answer in report["live"].items() if answer is None] == []
    # No storm: the reconnects and first beats are spread out.
    assert handshakes[-1] - handshakes[0] >= MIN_HANDSHAKE_SPREAD_S, handshakes
    assert peak_retries <= MAX_RETRIES_PER_WINDOW, first_retry
    assert peak_due <= MAX_BEATS_PER_WINDOW, due
    # The bound. Backoff doubles while the engine is down, so the last proxy's next try
    # comes at most one more downtime plus its first delay (<= 0.9 s) after the engine
    # listens; its first beat then waits up to RECONNECT_SPREAD_S and one poll. Measured
    # (11 runs, engine down 0.5-1.9 s): all reconnected within 0.96-1.70 s and every
    # heartbeat in the registry within 6.3-7.2 s of the engine listening. Asserted with
    # room for a slow, shared machine.
    reconnect_bound = downtime + transport.RECONNECT_MS[1] / 1000 + 3.0
    heard_bound = reconnect_bound + schedule.RECONNECT_SPREAD_S + POLL_S + 3.0
    assert handshakes[-1] <= reconnect_bound, (handshakes[-1], downtime)
    assert beats[-1] <= heard_bound and all_seen - listening <= heard_bound, downtime
    # Each came back once and stayed: no flapping, nothing refused.
    assert all(len(p.handshakes) == 2 and p.link.refusals == [] for p in fleet)

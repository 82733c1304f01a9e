"""Simulated proxies: thousands of enrolled proxies in a few worker processes.

Each one has its own Ed25519 identity, its own Curve client keypair and its own DEALER socket
(``wsproxy_agent.transport.client``, pinned to the engine's Curve key, or without Curve when the
engine runs with ``curve = false``). They send real heartbeats sealed with
``protocol.envelope.seal`` (the body ``proxy_agent.health.snapshot`` makes) and answer every
status query the engine pushes with a signed status reply, as the proxy daemon does.

They are entered in the engine's registry as enrolled proxies through the registry's own API
while the engine is stopped (``enroll``): a set-up step, not measured. Real token joins would
sign two thousand certificates and restart a stand-in service for each, and are another
scenario's business.

A load generator, not a proxy: it reads the type and id of what the engine sends without
checking the engine's signature, so that its share of the two cores goes to what it sends, all
of which it signs.

A worker is ``python -m bench.simproxies CONFIG.json``: it takes commands as JSON lines on
stdin and says what happened as JSON lines on stdout.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import msgpack
import zmq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import catalogue as cat
from protocol import identity
from protocol.codec import Value
from protocol.envelope import seal
from tests.support.fleet import HEALTHY, enter_as_enrolled
from wsproxy_agent import control, transport
from wsproxy_agent.paths import HostPaths

# The serial added to each health body is the proxy's heartbeat count, in the width of a
# real certificate serial, so the engine's record of it (the health column) shows which
# heartbeat it took last.
SERIAL_DIGITS = 32
POLL_MS = 50
READY_TIMEOUT_S = 120.0


def serial(count: int) -> str:
    return f"{count:0{SERIAL_DIGITS}x}"


@dataclass(frozen=True)
class Identity:
    fqdn: str
    key: Ed25519PrivateKey


def enroll(engine_root: Path, count: int, prefix: str = "sim") -> list[Identity]:
    """Make ``count`` identities and enter them in the registry as enrolled (ACTIVE) proxies.

    The engine must be stopped: the daemon reads trust from the registry as messages come.
    """
    fleet = [Identity(f"{prefix}{i:04d}.fleet.bench", identity.generate()) for i in range(count)]
    enter_as_enrolled(engine_root, [(p.fqdn, p.key) for p in fleet], "bench", **_issued())
    return fleet


def _issued() -> dict[str, Any]:
    """What an enrollment stores with each proxy (its CSR, certificate and dates), so that the
    registry's rows have their real size: a heartbeat's write rewrites the row's page."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sim.fleet.bench")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    now = int(time.time())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.fromtimestamp(now, UTC))
        .not_valid_after(datetime.fromtimestamp(now + 398 * 86400, UTC))
        .sign(key, hashes.SHA256())
    )
    csr_pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    return {
        "csr_pem": csr_pem,
        "csr_sha256": hashlib.sha256(csr_pem.encode()).hexdigest(),
        "cert_pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "serial": f"{cert.serial_number:x}",
        "not_before": now,
        "not_after": now + 398 * 86400,
    }


@dataclass
class Fleet:
    """The worker processes of one simulated fleet, seen from the benchmark."""

    workers: list[subprocess.Popen[str]]
    size: int

    @classmethod
    def start(
        cls,
        engine_root: Path,
        port: int,
        proxies: list[Identity],
        *,
        workers: int,
        curve: bool,
        workdir: Path,
    ) -> Fleet:
        state = HostPaths.under(engine_root).state_dir
        engine_key = identity.private_from_pem((state / "identity.key").read_bytes())
        base = {
            "endpoint": f"tcp://127.0.0.1:{port}",
            "engine_fingerprint": identity.fingerprint(engine_key),
            "curve_key": transport.read_curve_key(state / "curve.key").decode() if curve else None,
            "total": len(proxies),
        }
        procs = []
        for w in range(workers):
            mine = list(range(w, len(proxies), workers))
            config = {
                **base,
                "proxies": [
                    [i, proxies[i].fqdn, proxies[i].key.private_bytes_raw().hex()] for i in mine
                ],
            }
            path = workdir / f"simproxies-{port}-{w}.json"
            path.touch(mode=0o600)  # private keys, even simulated ones
            path.write_text(json.dumps(config))
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bench.simproxies", str(path)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    bufsize=1,
                )
            )
        fleet = cls(procs, len(proxies))
        fleet.wait("ready", READY_TIMEOUT_S)
        return fleet

    def tell(self, op: str, **args: Any) -> None:
        for proc in self.workers:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
            proc.stdin.flush()

    def wait(self, event: str, timeout_s: float) -> list[dict[str, Any]]:
        """Each worker's next ``event`` line (a worker's earlier lines are skipped)."""
        deadline = time.monotonic() + timeout_s
        got = []
        for proc in self.workers:
            assert proc.stdout is not None
            while True:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"simulated proxies: no {event!r} in {timeout_s:.0f} s")
                line = _readline(proc.stdout, deadline)
                if not line:
                    raise RuntimeError(f"a simulated proxy worker ended (exit {proc.wait()})")
                said = json.loads(line)
                if said.get("event") == event:
                    got.append(said)
                    break
        return got

    def hello(self, timeout_s: float = 120.0) -> None:
        """Every proxy's first heartbeat sent, as soon as its connection is up."""
        self.tell("hello")
        self.wait("hello_done", timeout_s)

    def beat(self, interval: float, start: float, until: float) -> None:
        """Heartbeats every ``interval`` from ``start`` to ``until`` (wall clock), the fleet
        spread evenly over the interval; ``beats_done`` waits for the last."""
        self.tell("beat", interval=interval, start=start, until=until)

    def beats_done(self, timeout_s: float) -> dict[str, int]:
        """The fleet's counts: heartbeats sent, replies sent, sends no connection took."""
        counts = self.wait("beat_done", timeout_s)
        return {k: sum(c[k] for c in counts) for k in ("beats", "replies", "unsendable")}

    def prepare(self, per_proxy: int) -> None:
        """Each proxy seals ``per_proxy`` heartbeats ahead (not timed)."""
        self.tell("prepare", per_proxy=per_proxy)
        self.wait("prepared", 300.0)

    def blast(self) -> int:
        """Every prepared heartbeat sent at once; how many the sockets took."""
        self.tell("blast")
        return sum(said["sent"] for said in self.wait("blast_sent", 60.0))

    def stop(self) -> list[dict[str, Any]]:
        try:
            self.tell("stop")
            return self.wait("stopped", 60.0)
        finally:
            for proc in self.workers:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def live(engine_root: Path, timeout_s: float, fqdn: str | None = None) -> dict[str, Any]:
    """The engine's ``live`` control operation: a status query pushed to every enrolled
    proxy (or to ``fqdn``), answered once each replied or ``timeout_s`` is up."""
    request: dict[str, Any] = {"op": "live", "timeout": timeout_s}
    if fqdn is not None:
        request["fqdn"] = fqdn
    path = HostPaths.under(engine_root).engine_control
    answer = control.ask(path, request, timeout_ms=int(timeout_s * 1000) + 5000)
    if answer is None or not answer.get("ok"):
        raise RuntimeError(f"the engine's live query failed: {answer}")
    return answer


def recorded_beats(engine_root: Path) -> int:
    """The heartbeats the engine recorded: each proxy's last serial is its count so far."""
    db = sqlite3.connect(HostPaths.under(engine_root).registry)
    try:
        rows = db.execute("SELECT health FROM proxies WHERE health IS NOT NULL").fetchall()
    finally:
        db.close()
    return sum(int(json.loads(health)["serial"], 16) for (health,) in rows)


def wait_recorded(engine_root: Path, beats: int, timeout_s: float = 30.0) -> int:
    """Until the registry holds ``beats`` (it is written once a second); what it holds."""
    deadline = time.monotonic() + timeout_s
    while (recorded := recorded_beats(engine_root)) < beats and time.monotonic() < deadline:
        time.sleep(0.2)
    return recorded


def _readline(stream: IO[str], deadline: float) -> str:
    import select

    left = deadline - time.monotonic()
    if left > 0 and select.select([stream], [], [], left)[0]:
        return stream.readline()
    raise TimeoutError("simulated proxies: a worker said nothing in time")


# The worker process


@dataclass
class SimProxy:
    index: int  # in the whole fleet: where its heartbeats fall in the interval
    fqdn: str
    key: Ed25519PrivateKey
    sock: transport.Socket
    beats: int = 0


@dataclass
class Worker:
    engine_fingerprint: str
    total: int
    proxies: list[SimProxy] = field(default_factory=list)
    replies: int = 0
    unsendable: int = 0  # a reply or a beat the socket refused: no connection to take it
    # Heartbeats due, as (wall-clock time, proxy's place in ``proxies``), and until when.
    due: list[tuple[float, int]] = field(default_factory=list)
    interval: float = 0.0
    until: float = 0.0
    hello: set[int] = field(default_factory=set)  # proxies yet to send their first beat
    prepared: list[tuple[SimProxy, tuple[bytes, bytes]]] = field(default_factory=list)

    def heartbeat(self, p: SimProxy) -> bool:
        if not self._send(p, cat.HEARTBEAT, {**HEALTHY, "serial": serial(p.beats + 1)}, None):
            return False
        p.beats += 1
        return True

    def answer(self, p: SimProxy, frames: list[bytes]) -> None:
        # Not verified: see the module docstring. Only the type and the id are read.
        envelope = msgpack.unpackb(frames[0], raw=False)
        if envelope.get("type") != cat.STATUS_QUERY:
            return
        body = {"enrolled": True, "fqdn": p.fqdn, **HEALTHY, "serial": serial(p.beats)}
        if self._send(p, cat.STATUS_REPLY, body, envelope["id"]):
            self.replies += 1
        else:
            self.unsendable += 1

    def _send(self, p: SimProxy, msg_type: str, body: dict[str, Value], re: bytes | None) -> bool:
        sealed = seal(
            p.key,
            msg_type,
            body,
            recipient=self.engine_fingerprint,
            now_ms=time.time_ns() // 1_000_000,
            re=re,
        )
        try:
            p.sock.send_multipart(sealed.frames, flags=zmq.NOBLOCK)
        except zmq.Again:  # IMMEDIATE: no connection (yet) to take it
            return False
        return True

    def start_beating(self, interval: float, start: float, until: float) -> None:
        """Each proxy every ``interval``, the fleet spread evenly over it, as real proxies
        are after their jittered starts."""
        self.interval, self.until = interval, until
        self.due = [
            (start + interval * p.index / self.total, n) for n, p in enumerate(self.proxies)
        ]
        heapq.heapify(self.due)

    def beat_due(self, now: float) -> None:
        while self.due and self.due[0][0] <= now:
            at, n = heapq.heappop(self.due)
            if not self.heartbeat(self.proxies[n]):
                self.unsendable += 1
            if at + self.interval < self.until:
                heapq.heappush(self.due, (at + self.interval, n))

    def say_hello(self) -> bool:
        """Send the first heartbeats whose connection is up; True once all have gone."""
        self.hello = {n for n in self.hello if not self.heartbeat(self.proxies[n])}
        return not self.hello

    def run(self, commands: IO[str], out: IO[str]) -> None:
        poller = zmq.Poller()
        by_socket = {}
        for p in self.proxies:
            poller.register(p.sock, zmq.POLLIN)
            by_socket[p.sock] = p
        poller.register(commands.fileno(), zmq.POLLIN)
        say(out, "ready")
        beating = False
        while True:
            wait_ms = POLL_MS
            if self.due:
                wait_ms = max(0, min(wait_ms, int((self.due[0][0] - time.time()) * 1000) + 1))
            for sock, _ in poller.poll(wait_ms):
                if sock == commands.fileno():
                    command = json.loads(commands.readline() or '{"op": "stop"}')
                    if command["op"] == "stop":
                        say(out, "stopped", **self.stats())
                        return
                    if command["op"] == "hello":
                        self.hello = set(range(len(self.proxies)))
                    elif command["op"] == "beat":
                        self.start_beating(command["interval"], command["start"], command["until"])
                        beating = True
                    elif command["op"] == "prepare":
                        self.prepare(command["per_proxy"])
                        say(out, "prepared")
                    elif command["op"] == "blast":
                        say(out, "blast_sent", sent=self.blast())
                    continue
                p = by_socket[sock]
                while True:  # every message that came for this proxy
                    try:
                        frames = sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.answer(p, frames)
            if self.hello and self.say_hello():
                say(out, "hello_done")
            self.beat_due(time.time())
            if beating and not self.due:
                beating = False
                say(out, "beat_done", **self.stats())

    def prepare(self, per_proxy: int) -> None:
        """Seal heartbeats ahead, so that sending them costs this process almost nothing and
        the engine is the only one working while they arrive."""
        for _ in range(per_proxy):
            for p in self.proxies:
                p.beats += 1
                body = {**HEALTHY, "serial": serial(p.beats)}
                sealed = seal(
                    p.key,
                    cat.HEARTBEAT,
                    body,
                    recipient=self.engine_fingerprint,
                    now_ms=time.time_ns() // 1_000_000,
                )
                self.prepared.append((p, sealed.frames))

    def blast(self) -> int:
        """Send every prepared heartbeat at once; how many went."""
        sent = 0
        for p, frames in self.prepared:
            try:
                p.sock.send_multipart(frames, flags=zmq.NOBLOCK)
                sent += 1
            except zmq.Again:
                self.unsendable += 1
        self.prepared.clear()
        return sent

    def stats(self) -> dict[str, int]:
        return {
            "beats": sum(p.beats for p in self.proxies),
            "replies": self.replies,
            "unsendable": self.unsendable,
        }


def say(out: IO[str], event: str, **facts: Any) -> None:
    out.write(json.dumps({"event": event, **facts}) + "\n")
    out.flush()


def worker_main(config_path: str) -> int:
    config = json.loads(Path(config_path).read_text())
    # Two descriptors per proxy (its TCP connection and its socket's mailbox), and more.
    transport.allow_open_files()
    ctx: transport.Context = zmq.Context()
    ctx.setsockopt(zmq.MAX_SOCKETS, len(config["proxies"]) + 64)
    curve = config["curve_key"].encode() if config["curve_key"] else None
    worker = Worker(config["engine_fingerprint"], config["total"])
    for index, fqdn, seed in config["proxies"]:
        key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed))
        sock, _ = transport.client(ctx, config["endpoint"], curve)
        worker.proxies.append(SimProxy(index, fqdn, key, sock))
    try:
        worker.run(sys.stdin, sys.stdout)
    finally:
        for p in worker.proxies:
            p.sock.close(linger=0)
        ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1]))

"""Consoles through `proxy serve` against websockify: throughput, added latency, memory.

Two proxies on the same TLS certificate and key, to the same target, each started afresh for
every run, the runs in turn (ours, websockify, websockify, ours, ...):

- ours: ``wsproxy-agent proxy serve`` with its default workers (an asyncio process per CPU,
  each on its own SO_REUSEPORT socket, under a parent that only supervises), configured as a
  join leaves it (SSL_ONLY=True), every console's ticket verified against
  CERT_FOR_DATA_VERIFICATION;
- theirs: websockify, the library oVirt's ovirt-websocket-proxy is built on, as that service
  runs it (a process forked per connection), TLS only, SSL_MIN_VERSION's and SSL_CIPHERS's
  defaults, its target fixed on the command line. It checks no ticket (it is sent the same
  ticket URLs and ignores them), and it unmasks with numpy, which the bench venv has: both
  favour it slightly.

The target (bench/consoletarget.py) and the client (bench/consoleload.py, a websockets
client) are processes of their own, so that neither's CPU counts as the proxy's. In each
run the client, after a first console: opens 50 consoles at once and 50 TCP connections
straight to the target's echo, and times 64-byte round trips, one every 50 ms on each,
through the straight ones and the consoles in alternate slices of time; the proxy's memory
is read while the consoles are open; 50 new consoles then take a bulk download each, all at
once; last, one console at a time uploads, then another downloads, bulk data. Memory is the
proportional set size (PSS) of the proxy's processes, each parent and its children (our
workers, websockify's forked consoles) summed, so that a page they share counts once. CPU is
the proxy's, children included, read at the client's stops on either side of each transfer,
beside the client's and the target's over the same time.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import procstat
from bench.context import BenchContext
from bench.result import ScenarioResult
from bench.stats import percentile, ratio, summarize
from engine_agent import pki
from tests.e2e.conftest import wait_for
from tests.serve.conftest import ENGINE_FQDN, PROXY_FQDN, Pki, ServeHost
from wsproxy_agent.demo import free_port
from wsproxy_agent.paths import HostPaths

CONSOLES = 50
ECHO_BYTES = 64
INTERVAL_S = 0.05
MESSAGE_BYTES = 64 * 1024  # what the client writes per websocket message when uploading
TICKET_TTL_S = 600
CHILDREN_GONE_S = 30.0  # websockify reaps a console's process within a second of its end
CLIENT_TIMEOUT_S = 30.0  # for the client to exit once told it is done
OURS, THEIRS = "proxy serve", "websockify"
SIDES = (OURS, THEIRS)


@dataclass
class Load:
    """How hard each run tries."""

    latency_s: float  # of round trips each way, straight and through the proxy
    latency_slices: int
    aggregate_bytes: int  # per console, 50 at once
    bulk_bytes: int  # one console
    bulk_repeats: int  # of each direction, per run


class Proxy:
    """A proxy process started for one run, its children (our workers, websockify's forked
    consoles) counted with it."""

    def __init__(self, proc: subprocess.Popen[bytes], name: str, forks: bool) -> None:
        self.proc = proc
        self.name = name
        self.forks = forks  # a process per console

    def children(self) -> list[int]:
        found = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            if ppid == self.proc.pid:
                found.append(int(entry.name))
        return found

    def pss_bytes(self) -> int:
        return int(
            sum(_or_zero(procstat.pss_bytes, pid) for pid in [self.proc.pid, *self.children()])
        )

    def cpu_s(self) -> float:
        """The process's CPU and its children's, those alive and those it has reaped."""
        live = sum(_or_zero(procstat.cpu_seconds, pid) for pid in self.children())
        return procstat.cpu_seconds(self.proc.pid, reaped_children=True) + live

    def wait_consoles(self, count: int) -> None:
        """For websockify: until it has a process for each open console and no more, the
        processes of consoles just closed reaped (their CPU is then counted in its own)."""
        if self.forks:
            wait_for(
                lambda: len(self.children()) == count,
                f"{self.name} to have {count} console processes",
                CHILDREN_GONE_S,
            )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _or_zero(read: Callable[[int], float], pid: int) -> float:
    try:
        return read(pid)
    except (OSError, ValueError):
        return 0  # a child that ended between listing and reading


def start_ours(host: ServeHost) -> Proxy:
    # A fresh log, so that the last run's line saying it listens is not taken for this one's.
    host.log_path.unlink(missing_ok=True)
    host.start()
    assert host.proc is not None
    return Proxy(host.proc, OURS, forks=False)


def start_websockify(host: ServeHost, target_port: int, workdir: Path) -> Proxy:
    """websockify on the files a join installs for the proxy, as oVirt's service uses them."""
    log_path = workdir / "websockify.log"
    with log_path.open("wb") as log:  # fresh, as ours (start_ours)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "websockify",
                "--cert",
                str(host.paths.proxy_cert),
                "--key",
                str(host.paths.proxy_tls_key),
                "--ssl-only",
                "--ssl-version",
                "tlsv1_2",  # SSL_MIN_VERSION's default
                "--ssl-ciphers",
                "HIGH:!aNULL",  # SSL_CIPHERS's default
                f"127.0.0.1:{host.port}",
                f"127.0.0.1:{target_port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def listening() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"websockify exited {proc.returncode}:\n{log_path.read_text()}")
        return "proxying from" in log_path.read_text()

    wait_for(listening, "websockify to listen", timeout=30)
    return Proxy(proc, THEIRS, forks=True)


KINDS = ("upload", "download", "aggregate")  # the bulk transfers, one console or 50


@dataclass
class Side:
    """Everything measured of one proxy, run after run."""

    mb_s: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    # Proxy CPU (all its processes) per GB carried, and the share of one core the proxy, the
    # client and the target each kept busy meanwhile.
    cpu_s_per_gb: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    proxy_busy: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    client_busy: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    target_busy: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    direct_p50: list[float] = field(default_factory=list)
    direct_p99: list[float] = field(default_factory=list)
    added_p50: list[float] = field(default_factory=list)
    added_p99: list[float] = field(default_factory=list)
    cpu_us_per_round_trip: list[float] = field(default_factory=list)
    idle_mib: list[float] = field(default_factory=list)
    kib_per_console: list[float] = field(default_factory=list)
    open_all_s: list[float] = field(default_factory=list)
    cipher: str = ""


@dataclass
class Stop:
    """The client stopped at a phase: what it said, when, and the CPU used by then."""

    said: dict[str, Any]
    at: float
    proxy_cpu_s: float
    target_cpu_s: float
    went_on_at: float = 0.0  # when it was told to go on

    @property
    def client_cpu_s(self) -> float:
        return float(self.said["client_cpu_s"])


class Client:
    """bench/consoleload.py, run through its phases, stopping at each."""

    def __init__(self, plan: dict[str, Any], proxy: Proxy, target_pid: int, workdir: Path) -> None:
        plan_path = workdir / "plan.json"
        plan_path.write_text(json.dumps(plan))
        self.proxy = proxy
        self.target_pid = target_pid
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.consoleload", str(plan_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.last: Stop | None = None

    def reached(self, phase: str, open_consoles: int) -> Stop:
        """Wait for the client's stop at ``phase``, where ``open_consoles`` are open, and for
        websockify's processes to match."""
        if self.last is not None:
            self._go_on()
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        at = time.monotonic()
        if not line:
            raise AssertionError(f"the console client exited {self.proc.wait()} before {phase}")
        said: dict[str, Any] = json.loads(line)
        if said["at"] != phase:
            raise AssertionError(f"the console client is at {said['at']}, not {phase}")
        self.proxy.wait_consoles(open_consoles)
        self.last = Stop(said, at, self.proxy.cpu_s(), procstat.cpu_seconds(self.target_pid))
        return self.last

    def _go_on(self) -> None:
        assert self.proc.stdin is not None and self.last is not None
        self.last.went_on_at = time.monotonic()
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self) -> None:
        self._go_on()
        if self.proc.wait(timeout=CLIENT_TIMEOUT_S) != 0:
            raise AssertionError(f"the console client exited {self.proc.returncode}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def transfer(side: Side, kind: str, ready: Stop, done: Stop, gb: float) -> None:
    """What one bulk transfer cost, from the client's go to its stop after the last byte."""
    wall = done.at - ready.went_on_at
    proxy_cpu = done.proxy_cpu_s - ready.proxy_cpu_s
    side.mb_s[kind].append(float(done.said["mb_s"]))
    side.cpu_s_per_gb[kind].append(proxy_cpu / gb)
    side.proxy_busy[kind].append(proxy_cpu / wall)
    side.client_busy[kind].append((done.client_cpu_s - ready.client_cpu_s) / wall)
    side.target_busy[kind].append((done.target_cpu_s - ready.target_cpu_s) / wall)


def one_run(
    proxy: Proxy, target_pid: int, side: Side, plan: dict[str, Any], load: Load, workdir: Path
) -> None:
    client = Client(plan, proxy, target_pid, workdir)
    try:
        warm = client.reached("warm", 0)
        side.cipher = warm.said["cipher"]
        idle = proxy.pss_bytes()

        echo_open = client.reached("echo_open", CONSOLES)
        echo_done = client.reached("echo_done", CONSOLES)
        side.kib_per_console.append((proxy.pss_bytes() - idle) / CONSOLES / 1024)
        side.idle_mib.append(idle / procstat.MIB)
        side.open_all_s.append(echo_open.said["open_all_s"])
        direct, proxied = echo_done.said["direct_ms"], echo_done.said["proxied_ms"]
        for p, direct_at, added_at in (
            (0.5, side.direct_p50, side.added_p50),
            (0.99, side.direct_p99, side.added_p99),
        ):
            direct_at.append(percentile(direct, p))
            added_at.append(percentile(proxied, p) - direct_at[-1])
        side.cpu_us_per_round_trip.append(
            (echo_done.proxy_cpu_s - echo_open.proxy_cpu_s) / len(proxied) * 1e6
        )

        ready = client.reached("aggregate_ready", CONSOLES)
        done = client.reached("aggregate_done", CONSOLES)
        transfer(side, "aggregate", ready, done, CONSOLES * load.aggregate_bytes / 1e9)
        for _ in range(load.bulk_repeats):
            for kind, phase in (("upload", "up"), ("download", "down")):
                ready = client.reached(f"{phase}_ready", 1)
                done = client.reached(f"{phase}_done", 1)
                transfer(side, kind, ready, done, load.bulk_bytes / 1e9)
        client.reached("end", 0)
        client.finish()
    finally:
        client.close()


def start_target() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.consoletarget"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def run(ctx: BenchContext) -> ScenarioResult:
    rounds = ctx.repeats(5, 1)
    load = Load(
        latency_s=1.0 if ctx.quick else 2.5,
        latency_slices=ctx.scale(6, 2),
        aggregate_bytes=ctx.scale(4, 1) * 1024 * 1024,
        bulk_bytes=ctx.scale(96, 8) * 1024 * 1024,
        bulk_repeats=ctx.scale(2, 1),
    )
    result = ScenarioResult(
        "console",
        f"Consoles through proxy serve and websockify: one at a time, {CONSOLES} at once",
    )
    engine = HostPaths.under(ctx.workdir / "engine")
    pki.create_ca(
        engine, ca_subject="/C=US/O=Bench", engine_fqdn=ENGINE_FQDN, now=datetime.now(UTC)
    )
    pki_ = Pki(engine)
    host = ServeHost(ctx.workdir / "proxy", pki_, free_port(), workers=None)  # the default
    host.root.mkdir()
    host.install()
    sides = {OURS: Side(), THEIRS: Side()}
    target, target_port = start_target()
    try:
        for r in range(rounds):
            for name in SIDES if r % 2 == 0 else SIDES[::-1]:
                ctx.say(f"round {r + 1} of {rounds}: {name}")
                # Tickets made before the run, so that signing them costs the run nothing.
                urls = [
                    host.url(pki_.ticket("127.0.0.1", target_port, ttl=TICKET_TTL_S))
                    for _ in range(1 + 2 * CONSOLES + 2 * load.bulk_repeats)
                ]
                plan = {
                    "urls": urls,
                    "ca_file": str(pki_.paths.ca_cert),
                    "server_name": PROXY_FQDN,
                    "echo_port": target_port,
                    "consoles": CONSOLES,
                    "echo_bytes": ECHO_BYTES,
                    "interval_s": INTERVAL_S,
                    "message_bytes": MESSAGE_BYTES,
                    **dataclasses.asdict(load),
                }
                proxy = (
                    start_ours(host)
                    if name == OURS
                    else start_websockify(host, target_port, ctx.workdir)
                )
                try:
                    one_run(proxy, target.pid, sides[name], plan, load, ctx.workdir)
                finally:
                    proxy.stop()
    finally:
        target.terminate()
        target.wait(timeout=30)
    report(result, sides, load, rounds)
    return result


def report(result: ScenarioResult, sides: dict[str, Side], load: Load, rounds: int) -> None:
    ours, theirs = sides[OURS], sides[THEIRS]
    what = {
        "upload": "upload, 1 console",
        "download": "download, 1 console",
        "aggregate": f"downloads, {CONSOLES} consoles at once",
    }
    for kind in KINDS:
        for name, side in sides.items():
            result.measure(f"{what[kind]}, {name}", "MB/s", side.mb_s[kind])
    result.measure("direct TCP round trip, p50", "ms", ours.direct_p50 + theirs.direct_p50)
    result.measure("direct TCP round trip, p99", "ms", ours.direct_p99 + theirs.direct_p99)
    for p in ("p50", "p99"):
        for name, side in sides.items():
            added = side.added_p50 if p == "p50" else side.added_p99
            result.measure(f"added round trip, {p}, {name}", "ms", added)
    for name, side in sides.items():
        result.measure(f"memory per open console (PSS), {name}", "KiB", side.kib_per_console)
    for name, side in sides.items():
        result.measure(f"idle memory (PSS), {name}", "MiB", side.idle_mib)
    for kind in KINDS:
        for name, side in sides.items():
            result.measure(f"CPU per GB, {what[kind]}, {name}", "s", side.cpu_s_per_gb[kind])
    for name, side in sides.items():
        result.measure(
            f"CPU per {ECHO_BYTES}-byte round trip, {name}", "µs", side.cpu_us_per_round_trip
        )
    for name, side in sides.items():
        result.measure(f"opening {CONSOLES} consoles at once, {name}", "s", side.open_all_s)
    result.chart_units = ["MB/s", "ms", "KiB"]

    for kind in KINDS:
        value = ratio(ours.mb_s[kind], theirs.mb_s[kind])
        result.check(f"throughput, {what[kind]}: ours / websockify", value, ">= 1", value >= 1)
    for p, mine, yours in (
        ("p50", ours.added_p50, theirs.added_p50),
        ("p99", ours.added_p99, theirs.added_p99),
    ):
        value, bound = statistics.median(mine), statistics.median(yours)
        result.check(
            f"added round trip, {CONSOLES} consoles, {p}",
            value,
            f"<= {bound:.2f} ms (websockify's)",
            value <= bound,
            "ms",
        )
    value = ratio(ours.kib_per_console, theirs.kib_per_console)
    result.check("memory per open console (PSS): ours / websockify", value, "< 1", value < 1)

    def med(samples: list[float], digits: int = 1) -> str:
        return f"{summarize(samples).median:,.{digits}f}"

    def share(samples: list[float]) -> str:
        return f"{summarize(samples).median * 100:.0f} %"

    facts = result.facts
    facts.update(
        consoles=str(CONSOLES),
        rounds=str(rounds),
        echo_bytes=str(ECHO_BYTES),
        interval_ms=f"{INTERVAL_S * 1000:g}",
        bulk_mib=str(load.bulk_bytes // (1024 * 1024)),
        aggregate_mib=str(load.aggregate_bytes // (1024 * 1024)),
        cipher=ours.cipher,
        memory_ratio=f"{ratio(ours.kib_per_console, theirs.kib_per_console):.2f}",
        direct_p50=med(ours.direct_p50 + theirs.direct_p50, 2),
        direct_p99=med(ours.direct_p99 + theirs.direct_p99, 2),
        direct_p50_low=f"{min(ours.direct_p50 + theirs.direct_p50):.2f}",
        direct_p50_high=f"{max(ours.direct_p50 + theirs.direct_p50):.2f}",
        direct_p99_low=f"{min(ours.direct_p99 + theirs.direct_p99):.1f}",
        direct_p99_high=f"{max(ours.direct_p99 + theirs.direct_p99):.1f}",
    )
    for kind in KINDS:
        facts[f"{kind}_ratio"] = f"{ratio(ours.mb_s[kind], theirs.mb_s[kind]):.2f}"
    for key, side in (("ours", ours), ("theirs", theirs)):
        facts.update(
            {
                f"{key}_added_p50": med(side.added_p50, 2),
                f"{key}_added_p99": med(side.added_p99, 2),
                f"{key}_kib_per_console": med(side.kib_per_console, 0),
                f"{key}_idle_mib": med(side.idle_mib),
                f"{key}_us_per_round_trip": med(side.cpu_us_per_round_trip, 0),
                f"{key}_open_all_s": med(side.open_all_s, 2),
            }
        )
        for kind in KINDS:
            facts.update(
                {
                    f"{key}_{kind}": med(side.mb_s[kind]),
                    f"{key}_{kind}_cpu_per_gb": med(side.cpu_s_per_gb[kind], 2),
                    f"{key}_{kind}_proxy_busy": share(side.proxy_busy[kind]),
                    f"{key}_{kind}_client_busy": share(side.client_busy[kind]),
                    f"{key}_{kind}_target_busy": share(side.target_busy[kind]),
                }
            )


ANALYSIS = """
Memory is where the two differ most. With {consoles} consoles open, proxy serve held
{ours_kib_per_console} KiB per console above its idle {ours_idle_mib} MiB, websockify
{theirs_kib_per_console} KiB above its idle {theirs_idle_mib} MiB (ours / websockify
{memory_ratio}; PSS, each parent and its children summed: our workers, one per core,
websockify's {consoles} console processes). Each websockify console is a forked Python interpreter: fork
shares the parent's pages, but the child's
reference counting and garbage collection write to them, so copy-on-write duplicates them
page by page, and the child adds its own heap and OpenSSL session. A console of ours is two
asyncio tasks, a websockets connection, an OpenSSL session and their buffers in a worker; each
worker is a process forked from the parent after start-up, with its own idle memory.
Opening {consoles} consoles at once took {ours_open_all_s} s through ours and
{theirs_open_all_s} s through websockify, whose parent accepts and forks one at a time.

Throughput, wall clock, ours / websockify: one console downloading (target to browser, what a
VNC console mostly carries) {ours_download} against {theirs_download} MB/s
({download_ratio}), uploading {ours_upload} against {theirs_upload} MB/s ({upload_ratio}),
{consoles} consoles downloading at once {ours_aggregate} against {theirs_aggregate} MB/s
({aggregate_ratio}). These figures measure the 2-core machine as much as the proxy: during a
one-console download proxy serve kept {ours_download_proxy_busy} of a core busy, the client
{ours_download_client_busy} and the target {ours_download_target_busy} (websockify's
{theirs_download_proxy_busy}, client {theirs_download_client_busy}, target
{theirs_download_target_busy}), three processes on two cores beside whatever else the shared
machine ran. The proxy's CPU per GB carried depends much less on that: downloading, proxy
serve spent {ours_download_cpu_per_gb} s per GB and websockify {theirs_download_cpu_per_gb} s
({consoles} at once: {ours_aggregate_cpu_per_gb} against {theirs_aggregate_cpu_per_gb} s);
uploading, {ours_upload_cpu_per_gb} against {theirs_upload_cpu_per_gb} s. A download through
ours used to cost half as much again as through websockify (3.28 against 2.14 s per GB, the
one-console download 0.70 of websockify's MB/s); a profile (py-spy, 512 MiB through one
console) found asyncio's StreamReader copying every byte into and out of its buffer
(``feed_data`` 16 %, ``read`` 9 %) and websockets making every message wait for the socket to
drain. Two changes cut that: console_proxy/target.py reads the target as an asyncio protocol
that hands on the bytes as they were read (13 % less CPU per GB), and the browser's side may
hold 512 KiB before the sender waits, not websockets' default 32 KiB, less than one message
(2.53 to 2.19 s per GB in an A/B run). In two full runs of three on 2026-11-22 ours then
spent about what websockify did per GB (2.19 against 2.28 s, 2.43 against 2.48 s). One
console's download still ran in one of two modes, 1.8 to 2.0 or 3.2 to 3.8 s of the proxy's
CPU per GB, and the one-console ratio swung between 0.82 and 1.31 over the runs of
2026-12-07: the slow mode took 37,000 minor page faults per 96 MiB carried against a few
hundred, glibc handing back the pages of each freed 256 KiB block and faulting them in again
at the next read (its dynamic thresholds, in some heap layouts). proxy serve now fixes those
thresholds before it serves (wsproxy_agent/memtrim.py), and each of 36 downloads measured
apart ran in the fast mode. Uploads had taken the faults every time (39,000 per 96 MiB in 12
of 12 measured apart without the thresholds, 2.9 to 4.4 s per GB); with them, 1.8 to 2.6 s
and about a third more MB/s, interleaved in the same set-up. What is left is asyncio's TLS, which encrypts into a memory
BIO in Python (``SSLObject.write``, ``_process_outgoing``) where websockify's ``SSLSocket.send``
encrypts straight into the socket, and websockets' framing, a copy per message. Uploading,
websockify loses what it gains there: it reads the client 4 KiB at a time, appending each
piece to a bytes buffer (websocket.py ``_recv``), and goes back to ``select`` after every TLS
record (``SSLSocket.read`` 30 %, ``select`` 16 %, the appending 9 %). uvloop (libuv and a
Cython TLS layer in place of asyncio's) was tried: 13 % less CPU per round trip, no faster a
download and no lower a latency here, so not added. One process is also one core: once the
proxy is what limits, websockify's process per console spreads over every core; ours runs a
worker per core, each on its own socket on the port (SO_REUSEPORT), the kernel spreading new
connections over them, so that {consoles} consoles share the cores too, though one console
is still served by one process.

Added latency: 64-byte round trips, {consoles} consoles each sending one every
{interval_ms} ms. Straight to the echo over TCP they took {direct_p50} ms at the median and
{direct_p99} ms at p99; through proxy serve {ours_added_p50} ms more at the median and
{ours_added_p99} ms more at p99, through websockify {theirs_added_p50} ms and
{theirs_added_p99} ms more. That includes the client's own websocket and TLS work, the same
for both. The proxy's CPU per round trip was {ours_us_per_round_trip} µs for ours and
{theirs_us_per_round_trip} µs for websockify, but websockify's is spread over {consoles}
processes that run side by side, while each of our workers runs its consoles' messages one
after the other in its event loop, so a message that arrives while another is handled waits.
Per message, ours used to wake the console's task twice on each hop (the parsed frame's
queue, then the target's read and ``send()``'s context and drain): with one console doing
64-byte round trips back to back (measured apart, four interleaved runs each), ours added
0.35 to 0.43 ms at the median and websockify 0.28, and the profile was half event-loop and
task machinery. Bytes now go on from the event loop's callbacks while neither side pushes
back (console_proxy/connection.py): 0.29 to 0.30 ms against websockify's 0.28 in the same
runs, and the CPU per round trip here fell from 403 µs (2026-12-07, before) to under
websockify's. What is left per message is asyncio's TLS in Python (``SSLObject.read`` and
``write``, about 10 % of the worker's samples) and the socket sends (12 %), which on loopback
carry the receiver's wake-up. The shared machine weighs on all of these: over the runs, the
straight round trip's own median ranged from {direct_p50_low} to {direct_p50_high} ms and its
p99 from {direct_p99_low} to {direct_p99_high} ms. Three full runs of one process (before
workers) on 2026-11-22 gave a median added round trip 0.18 ms above websockify's, 0.18 ms
below it, and 1.05 ms above it. With a worker per core, three runs on 2026-12-07 gave 0.56
against 0.60 ms, 0.66 against 0.79 ms, and 1.07 against 0.78 ms; with the callbacks, three
more that day gave 0.69 against 0.60 ms, 0.58 against 0.69 ms and 0.65 against 0.59 ms, so
the scenario now takes five runs a side rather than three; two such on 2026-12-07 gave 0.540
against 0.528 ms and (a fresh clone's full `make bench`) 0.618 against 0.75 ms. Later that
day a fresh clone's full run, with the hypervisor taking 9 % of the machine during this
scenario, gave 1.17 against 1.66 ms (and one console's download 0.82 of websockify's);
this scenario alone, re-run three times at 0 to 1 %, gave 0.653 against 0.69 ms, 0.568
against 0.594 ms and 0.609 against 0.640 ms. This section's run, a fresh clone's full
`make bench` with the heap kept (above), is the one at the top. The medians of the two proxies lie within the
spread between runs of either, the verdict falling either way by less than that spread; the
p99 has been ours in every run since the workers. One console measured apart (2026-12-07,
four interleaved runs of 3,000 round trips) shows what separates them: ours spent 222 to
247 µs of the proxy's CPU per round trip and added 0.32 ms, websockify 203 to 228 µs and
0.28 ms. Of that, asyncio's TLS layer in Python is the part a rewrite could take: a TLS echo
reading and writing an ``SSLSocket`` from ``add_reader`` callbacks answered 25 µs sooner per
round trip than the same echo through asyncio's ``sslproto`` (one read and one write, as a
console's round trip costs the proxy), about 4 % of the added round trip here, less than the
spread between runs, so the standard library's TLS layer stays.

Both used {cipher}, with the same certificate and key.
"""

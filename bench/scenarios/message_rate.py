"""Signed message rate: status queries the engine signs and replies it verifies, per second.

One engine daemon and 200 simulated proxies connected at once (bench/simproxies.py).
The engine's ``live`` control operation pushes a signed status query to every one of them and
answers when all have sent their signed status reply: one exchange costs the engine one
Ed25519 signature and one verification, and is counted only once the engine has it. Rounds
run back to back; the rate is exchanges answered over the wall-clock time of the rounds.

The bound: the same two library calls (``protocol.identity.sign`` over a status query's
signed bytes, ``protocol.identity.verify`` of a status reply's), in a tight loop on one core.
Curve on, Curve off (a second engine with ``curve = false``, its proxies connecting without
Curve) and the bound run interleaved.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from bench import procstat, simproxies
from bench.context import BenchContext
from bench.result import ScenarioResult
from bench.stats import ratio, summarize
from protocol import catalogue as cat
from protocol import identity
from protocol.envelope import seal, signed_bytes
from tests.e2e.conftest import Hosts, host_pair

TARGET = 0.7
LIVE_TIMEOUT_S = 20.0


def crypto_bound(exchanges: int) -> float:
    """Exchanges per second of nothing but their unavoidable cryptography."""
    engine_key, proxy_key = identity.generate(), identity.generate()
    engine_fp = identity.fingerprint(engine_key)
    now = time.time_ns() // 1_000_000
    query = seal(engine_key, cat.STATUS_QUERY, {}, recipient="SHA256:" + "A" * 43, now_ms=now)
    reply = seal(
        proxy_key,
        cat.STATUS_REPLY,
        {"enrolled": True, "fqdn": "sim0000.fleet.bench", **simproxies.HEALTH, "serial": "1" * 32},
        recipient=engine_fp,
        now_ms=now,
        re=query.id,
    )
    to_sign = signed_bytes(query.frames[0])
    to_verify, signature = signed_bytes(reply.frames[0]), reply.frames[1]
    proxy_public = proxy_key.public_key()
    started = time.perf_counter()
    for _ in range(exchanges):
        identity.sign(engine_key, to_sign)
        if not identity.verify(proxy_public, signature, to_verify):
            raise AssertionError("the bound's own signature does not verify")
    return exchanges / (time.perf_counter() - started)


class Engine:
    """One engine daemon with its simulated fleet connected and answering."""

    def __init__(self, h: Hosts, proxies: int, curve: bool, workdir: Path) -> None:
        self.h = h
        h.engine_init()
        if not curve:
            h.configure(h.engine, curve=False)
        identities = simproxies.enroll(h.engine, proxies)
        self.proc = h.start_engine()
        self.fleet = simproxies.Fleet.start(
            h.engine,
            h.port,
            identities,
            workers=2,
            curve=curve,
            workdir=workdir,
        )
        self.fleet.hello()
        self.size = proxies
        # Every route learnt and every proxy answering before anything is timed.
        deadline = time.monotonic() + 60
        while self.answered(simproxies.live(h.engine, LIVE_TIMEOUT_S)) < proxies:
            if time.monotonic() > deadline:
                raise RuntimeError("the simulated fleet does not all answer the engine")

    @staticmethod
    def answered(answer: dict[str, object]) -> int:
        answers = answer["answers"]
        assert isinstance(answers, dict)
        return sum(1 for a in answers.values() if a is not None)

    def heartbeat_rate(self, per_proxy: int) -> tuple[float, float]:
        """Heartbeats per second, each proxy sending ``per_proxy`` sealed ahead, all at once,
        and the engine's CPU seconds per heartbeat."""
        self.fleet.prepare(per_proxy)
        cpu = procstat.cpu_seconds(self.proc.pid)
        started = time.perf_counter()
        sent = self.fleet.blast()
        # A proxy's reply follows its heartbeats on its connection: once every proxy has
        # answered, the engine has taken every heartbeat.
        answered = self.answered(simproxies.live(self.h.engine, LIVE_TIMEOUT_S))
        elapsed = time.perf_counter() - started
        cpu = procstat.cpu_seconds(self.proc.pid) - cpu
        if sent < per_proxy * self.size or answered < self.size:
            raise RuntimeError(f"{per_proxy * self.size - sent} heartbeats were not sent")
        return sent / elapsed, cpu / sent

    def rate(self, rounds: int) -> tuple[float, float]:
        """Exchanges per second over ``rounds`` back-to-back live rounds, and the engine's
        CPU seconds per exchange."""
        cpu = procstat.cpu_seconds(self.proc.pid)
        started = time.perf_counter()
        done = sum(
            self.answered(simproxies.live(self.h.engine, LIVE_TIMEOUT_S)) for _ in range(rounds)
        )
        elapsed = time.perf_counter() - started
        cpu = procstat.cpu_seconds(self.proc.pid) - cpu
        if done < rounds * self.size:
            raise RuntimeError(f"{rounds * self.size - done} status queries went unanswered")
        return done / elapsed, cpu / done

    def close(self) -> None:
        self.fleet.stop()


def run(ctx: BenchContext) -> ScenarioResult:
    proxies = ctx.scale(200, 40)
    rounds = ctx.scale(6, 2)
    per_proxy = ctx.scale(40, 10)
    repeats = ctx.repeats(5, 2)
    bound_exchanges = ctx.scale(2000, 500)
    result = ScenarioResult("message_rate", "Signed message rate")
    bound: list[float] = []
    modes = ("on", "off")
    beats: dict[str, list[float]] = {m: [] for m in modes}
    beat_cpu: dict[str, list[float]] = {m: [] for m in modes}
    rates: dict[str, list[float]] = {m: [] for m in modes}
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    with contextlib.ExitStack() as stack:
        engines = {}
        for mode in modes:
            h = stack.enter_context(host_pair(ctx.workdir / mode))
            ctx.say(f"engine with Curve {mode}, {proxies} simulated proxies connecting")
            engine = Engine(h, proxies, mode == "on", ctx.workdir)
            stack.callback(engine.close)
            engines[mode] = engine
        for n in range(repeats):
            for mode, engine in engines.items():
                rate, per_beat = engine.heartbeat_rate(per_proxy)
                beats[mode].append(rate)
                beat_cpu[mode].append(per_beat * 1e6)
                rate, per_exchange = engine.rate(rounds)
                rates[mode].append(rate)
                cpu[mode].append(per_exchange * 1e6)
            bound.append(crypto_bound(bound_exchanges))
            ctx.say(
                f"run {n + 1}/{repeats}: heartbeats {beats['on'][-1]:.0f}/s (Curve off "
                f"{beats['off'][-1]:.0f}/s), exchanges {rates['on'][-1]:.0f}/s (off "
                f"{rates['off'][-1]:.0f}/s), bound {bound[-1]:.0f}/s"
            )
    result.measure("Ed25519 sign + verify, tight loop: the bound", "messages/s", bound)
    for mode in modes:
        result.measure(f"heartbeats, CurveZMQ {mode}", "messages/s", beats[mode])
    for mode in modes:
        result.measure(f"status exchanges, CurveZMQ {mode}", "messages/s", rates[mode])
    for mode in modes:
        result.measure(f"engine CPU per heartbeat, CurveZMQ {mode}", "µs", beat_cpu[mode])
    for mode in modes:
        result.measure(f"engine CPU per status exchange, CurveZMQ {mode}", "µs", cpu[mode])
    result.chart_units = ["messages/s", "µs"]
    ratios = {
        f"{kind}_{mode}": ratio(samples[mode], bound)
        for kind, samples in (("beats", beats), ("exchanges", rates))
        for mode in modes
    }
    for kind, what in (("beats", "heartbeats"), ("exchanges", "status exchanges")):
        value = ratios[f"{kind}_on"]
        result.check(f"{what} / crypto bound", value, f">= {TARGET}", value >= TARGET)
    median = {k: summarize(v).median for k, v in (("bound", bound),)}
    result.facts.update(
        proxies=str(proxies),
        per_proxy=str(per_proxy),
        rounds=str(rounds),
        bound=f"{median['bound']:,.0f}",
        crypto_us=f"{1e6 / median['bound']:.0f}",
        **{f"ratio_{k}": f"{v:.2f}" for k, v in ratios.items()},
        **{f"beats_{m}": f"{summarize(beats[m]).median:,.0f}" for m in modes},
        **{f"exchanges_{m}": f"{summarize(rates[m]).median:,.0f}" for m in modes},
        **{f"beat_cpu_{m}": f"{summarize(beat_cpu[m]).median:.0f}" for m in modes},
        **{f"exchange_cpu_{m}": f"{summarize(cpu[m]).median:.0f}" for m in modes},
        curve_cost_beats=f"{(1 - ratio(beats['on'], beats['off'])) * 100:.0f}",
        curve_cost_exchanges=f"{(1 - ratio(rates['on'], rates['off'])) * 100:.0f}",
    )
    return result


ANALYSIS = """
TO BE WRITTEN from the measurements.
"""

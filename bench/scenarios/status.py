"""`wsproxy-agent status` latency, process start to exit, against the bare interpreter start.

One engine and one joined proxy, both daemons running, so each status has a registry row, a
certificate and a live daemon to report. Interleaved in every round: ``python -c pass`` from
the same venv (the baseline), the installed console script's ``status`` on each host, the
same through ``python -m wsproxy_agent``, and the floor: a script that imports only the
control-socket client (``wsproxy_agent.control``, standard library only) and asks the daemon
one ping, alone and with click imported too. Wall time is the target; the children's CPU time is
reported beside it because it moves less when the shared machine is busy.

All commands run with a warm bytecode cache, as an installed package has one, in a private
``PYTHONPYCACHEPREFIX`` (the environment may forbid writing ``__pycache__`` in the tree).
``-X importtime`` runs of the engine's status say where its start-up goes.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.context import BenchContext
from bench.result import ScenarioResult
from bench.stats import ratio, summarize
from tests.e2e.conftest import Hosts, host_pair, joined
from wsproxy_agent.paths import HostPaths

TARGET = 3.0
PYTHON = Path(sys.executable)
CONSOLE_SCRIPT = PYTHON.parent / "wsproxy-agent"
# The floor: the one import the status query cannot do without, and one round trip.
FLOOR = (
    "import sys; from pathlib import Path; from wsproxy_agent import control; "
    "sys.exit(control.ask(Path(sys.argv[1]), {'op': 'ping'}) is None)"
)


@dataclass
class Command:
    name: str
    argv: list[str]
    proves_it_worked: Callable[[subprocess.CompletedProcess[str]], bool]
    wall_ms: list[float]
    cpu_ms: list[float]


def exited_zero(proc: subprocess.CompletedProcess[str]) -> bool:
    return proc.returncode == 0


def healthy_status(role: str) -> Callable[[subprocess.CompletedProcess[str]], bool]:
    """A real status: that host's report, its daemon answering, nothing to fix."""

    def check(proc: subprocess.CompletedProcess[str]) -> bool:
        lines = proc.stdout.splitlines()
        return (
            proc.returncode == 0
            and lines[:1] == [f"{role} agent"]
            and "running (pid" in proc.stdout
            and lines[-1:] == ["healthy"]
        )

    return check


def children_cpu_s() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def timed(command: Command, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cpu_before = children_cpu_s()
    started = time.perf_counter()
    proc = subprocess.run(command.argv, capture_output=True, text=True, env=env, timeout=60)
    wall = time.perf_counter() - started
    cpu = children_cpu_s() - cpu_before
    if not command.proves_it_worked(proc):
        raise RuntimeError(
            f"{command.name} did not work (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
        )
    command.wall_ms.append(wall * 1000)
    command.cpu_ms.append(cpu * 1000)
    return proc


def commands(h: Hosts) -> list[Command]:
    engine, proxy = str(h.engine), str(h.proxy)
    engine_control = str(HostPaths.under(h.engine).engine_control)
    proxy_control = str(HostPaths.under(h.proxy).proxy_control)
    py = str(PYTHON)
    table: list[tuple[str, list[str], Callable[[subprocess.CompletedProcess[str]], bool]]] = [
        ("python -c pass (bare interpreter)", [py, "-c", "pass"], exited_zero),
        (
            "wsproxy-agent status, engine",
            [str(CONSOLE_SCRIPT), "--root", engine, "status"],
            healthy_status("engine"),
        ),
        (
            "wsproxy-agent status, proxy",
            [str(CONSOLE_SCRIPT), "--root", proxy, "status"],
            healthy_status("proxy"),
        ),
        (
            "python -m wsproxy_agent status, engine",
            [py, "-m", "wsproxy_agent", "--root", engine, "status"],
            healthy_status("engine"),
        ),
        (
            "floor: control client + one ping, engine",
            [py, "-c", FLOOR, engine_control],
            exited_zero,
        ),
        (
            "floor + import click, engine",
            [py, "-c", "import click; " + FLOOR, engine_control],
            exited_zero,
        ),
        (
            "floor: control client + one ping, proxy",
            [py, "-c", FLOOR, proxy_control],
            exited_zero,
        ),
    ]
    return [Command(name, argv, check, [], []) for name, argv, check in table]


def importtime(argv: list[str], env: dict[str, str]) -> dict[str, tuple[int, int]]:
    """Module -> (self, cumulative) microseconds, as ``-X importtime`` counts them."""
    err = subprocess.run(
        [str(PYTHON), "-X", "importtime", *argv], capture_output=True, text=True, env=env
    ).stderr
    found = {}
    for line in err.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[0].strip().isdigit():
            found[parts[2].strip()] = (int(parts[0]), int(parts[1]))
    return found


def import_costs(h: Hosts, env: dict[str, str], runs: int) -> dict[str, float]:
    """Milliseconds of the engine status's imports (each the least of ``runs``), by part."""
    status_argv = [str(CONSOLE_SCRIPT), "--root", str(h.engine), "status"]
    best: dict[str, float] = {}
    for _ in range(runs):
        bare = importtime(["-c", "pass"], env)
        status = importtime(status_argv, env)
        beyond = set(status) - set(bare)
        # Exclusive times summed over every module bare Python does not load: the whole bill.
        parts = {
            "beyond_bare": sum(status[m][0] for m in beyond),
            "click": status["click"][1],
            "agent": sum(
                status[m][0]
                for m in beyond
                if m.split(".")[0] in ("wsproxy_agent", "engine_agent", "protocol")
            ),
            # What building the report would load here; the daemon builds it, so: none.
            "report": sum(
                status[m][0] for m in beyond if m.split(".")[0] in ("engine_agent", "sqlite3")
            ),
        }
        for part, us in parts.items():
            best[part] = min(best.get(part, float("inf")), us / 1000)
    return best


def run(ctx: BenchContext) -> ScenarioResult:
    result = ScenarioResult("status", "status latency: process start to exit")
    if not CONSOLE_SCRIPT.exists():
        raise RuntimeError(f"{CONSOLE_SCRIPT} is missing: install the package (make bench does)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(ctx.workdir / "pycache")
    rounds = ctx.repeats(20, 3)
    with host_pair(ctx.workdir / "hosts") as h:
        ctx.say("engine init, join, both daemons")
        h.engine_init()
        h.start_engine()
        joined(h)
        h.start_proxy()
        measured = commands(h)
        for _ in range(2):  # fills the bytecode cache; not counted
            for command in measured:
                timed(command, env)
        for command in measured:
            command.wall_ms.clear()
            command.cpu_ms.clear()
        ctx.say(f"{rounds} interleaved rounds of {len(measured)} commands")
        for _ in range(rounds):
            for command in measured:
                timed(command, env)
        costs = import_costs(h, env, ctx.repeats(5, 1))
    for command in measured:
        result.measure(command.name, "ms", command.wall_ms)
    for command in measured:
        result.measure(command.name + " (CPU)", "ms CPU", command.cpu_ms)
    result.chart_units = ["ms", "ms CPU"]
    bare, engine, proxy, module, floor, floor_click, floor_proxy = measured
    for side, command in (("engine", engine), ("proxy", proxy)):
        value = ratio(command.wall_ms, bare.wall_ms)
        result.check(f"status, {side} / bare interpreter", value, f"<= {TARGET:g}", value <= TARGET)
    result.facts.update(facts(bare, engine, proxy, module, floor, floor_click, floor_proxy))
    result.facts.update({f"import_{part}_ms": f"{ms:.0f} ms" for part, ms in costs.items()})
    return result


def facts(
    bare: Command,
    engine: Command,
    proxy: Command,
    module: Command,
    floor: Command,
    floor_click: Command,
    floor_proxy: Command,
) -> dict[str, str]:
    def times(c: Command) -> str:
        return f"{ratio(c.wall_ms, bare.wall_ms):.2f}x"

    def median(c: Command) -> float:
        return summarize(c.wall_ms).median

    room = TARGET * median(bare) - median(floor_click)
    used = median(engine) - median(floor_click)
    if room <= 0:
        floor_verdict = "already above the bound before a status has asked anything"
    else:
        floor_verdict = (
            f"which leaves {room:.0f} ms under the bound for everything a status does beyond "
            f"one ping; the engine's status spends {used:.0f} ms there"
        )
    proxy_wait = median(floor_proxy) - median(floor)
    if proxy_wait > 0.25 * median(floor):
        proxy_verdict = (
            f"The proxy's status pays one more cost: the same ping waits {proxy_wait:.0f} ms "
            "longer (median) at the proxy daemon than at the engine's, because the proxy "
            "daemon reads its control socket only between waits of up to 0.5 s on the engine "
            "link (proxy_agent/daemon.py, POLL_S); waking that wait on the control socket too "
            "would remove it."
        )
    else:
        proxy_verdict = (
            f"A ping answers as fast at the proxy daemon as at the engine's "
            f"({times(floor_proxy)} against {times(floor)}); the proxy's status differs from "
            "the engine's by the report its daemon builds (from its state file and installed "
            "files instead of the registry) and sends."
        )
    return {
        "bare_ms": f"{median(bare):.0f} ms",
        "engine_ms": f"{median(engine):.0f} ms",
        "proxy_ms": f"{median(proxy):.0f} ms",
        "engine_x": times(engine),
        "proxy_x": times(proxy),
        "module_x": times(module),
        "engine_cpu_x": f"{ratio(engine.cpu_ms, bare.cpu_ms):.2f}x",
        "floor_x": times(floor),
        "floor_click_x": times(floor_click),
        "floor_verdict": floor_verdict,
        "proxy_verdict": proxy_verdict,
    }


ANALYSIS = """
A status is a Python process start, and nearly all of it is imports. The bare interpreter
(`python -c pass` from the same venv, whose editable-install hook is part of it) starts in
{bare_ms}; the engine's status runs in {engine_ms}, {engine_x} that (in CPU time {engine_cpu_x}),
and the proxy's in {proxy_ms}, {proxy_x}. `python -m wsproxy_agent` runs the same code after
one runpy step ({module_x} for the engine).

What a status does not need is not loaded. The running daemon builds its host's report (the
`status` operation on its control socket) and the command line prints it, so a status loads
none of the agents' code: no registry, config parser or renewal rules, and no cryptography,
structlog, msgpack, daemon code or other subcommand (the command line loads each subcommand
only when it is invoked; tests/e2e/test_status_lean.py keeps both true). Only with the daemon
down does it build the report itself, from the files. Built by the command line, the report
cost the engine's status 3.35x the bare start and the proxy's 3.66x in the run before this
change (2026-11-22): the registry's row dataclasses, tomllib, sqlite3 and the reading itself,
about 30 ms. `-X importtime` of the engine's status (the least of several runs; it adds its
own overhead) now counts {import_beyond_bare_ms} of imports beyond the bare interpreter's:
click {import_click_ms}, the agent's own modules {import_agent_ms} (the command line, the
paths, the control client and the report's layout), and {import_report_ms} for building a
report. pyzmq is not among them: the control socket is a plain Unix socket speaking one JSON
object each way (wsproxy_agent/control.py), because pyzmq's import alone was a third of a
status (about 19 ms of 60 beyond the bare start) and the daemons poll a plain socket as easily
as a ZeroMQ one. A script that imports nothing but the control-socket client and asks the
daemon one ping takes {floor_x} the bare start; with click imported as well, {floor_click_x}:
the floor of any click command that talks to the daemon, {floor_verdict}.

{proxy_verdict}
"""

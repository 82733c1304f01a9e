"""Run the benchmarks: ``python -m bench [--quick] [--only KEY,...]``."""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import charts, machine, report
from bench.context import BenchContext

# In this order: the cheap ones first, so that a broken set-up shows early.
SCENARIOS = ["status", "enrollment", "message_rate", "fleet", "enroll_burst", "memory", "console"]
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CHARTS = ROOT / "bench" / "charts"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run: small loads, few runs")
    parser.add_argument("--only", default="", help=f"comma-separated, of: {', '.join(SCENARIOS)}")
    args = parser.parse_args(argv)
    chosen = [s for s in args.only.split(",") if s] or SCENARIOS
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        parser.error(f"no such scenario: {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    ran_on = machine.describe()
    print(" | ".join(f"{k}: {v}" for k, v in ran_on.items()), flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="wsbench-", dir="/var/tmp"))
    started = time.monotonic()
    try:
        for key in chosen:
            module = importlib.import_module(f"bench.scenarios.{key}")
            print(f"\n-- {key}: {(module.__doc__ or key).splitlines()[0]}", flush=True)
            ctx = BenchContext(quick=args.quick, workdir=workdir / key)
            ctx.workdir.mkdir()
            ticks = machine.cpu_ticks()
            result = module.run(ctx)
            # On a shared VM the host may run other guests on our cores: said beside each
            # scenario, since it moves absolute figures (CPU %, latency) more than ratios.
            ran_this = {**ran_on, machine.STOLEN: machine.stolen(ticks, machine.cpu_ticks())}
            print(report.terminal(result), flush=True)
            print(f"   CPU time taken by other guests meanwhile: {ran_this[machine.STOLEN]}")
            if not args.quick:
                report.save(result, ran_this, RESULTS)
                charts.draw(result, CHARTS / f"{result.key}.png")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nbench took {time.monotonic() - started:.0f} s", flush=True)
    if not args.quick:
        write_report()
    return 0


def write_report() -> None:
    entries = []
    for key in SCENARIOS:
        path = RESULTS / f"{key}.json"
        if path.exists():
            result, ran_on = report.load(path)
            analysis = importlib.import_module(f"bench.scenarios.{key}").ANALYSIS
            entries.append((result, ran_on, analysis))
    (ROOT / "BENCHMARKS.md").write_text(report.markdown(entries))
    print(f"wrote {ROOT / 'BENCHMARKS.md'}", flush=True)


if __name__ == "__main__":
    sys.exit(main())

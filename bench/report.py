"""BENCHMARKS.md and the terminal table, from the results of the scenarios.

Each scenario's result is kept as JSON under bench/results/, so that running one scenario
again (``make bench BENCH_ONLY=fleet``) rewrites its part and keeps the others.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from bench.machine import STOLEN
from bench.result import Check, Measure, ScenarioResult

HEADER = """# Benchmarks

Written by `make bench` (bench/, not part of `make test`); do not edit by hand. Every figure is
the median of repeated runs with their min and max; every ratio divides two medians measured
side by side in the same run. The machine is shared and has {cores}: other work on it moves
single runs by tens of percent, which is why the medians and the spread are both given.
"""


def save(result: ScenarioResult, machine: dict[str, str], results_dir: Path) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    data = {"machine": machine, **dataclasses.asdict(result)}
    (results_dir / f"{result.key}.json").write_text(json.dumps(data, indent=1) + "\n")


def load(path: Path) -> tuple[ScenarioResult, dict[str, str]]:
    data: dict[str, Any] = json.loads(path.read_text())
    machine = data.pop("machine")
    result = ScenarioResult(
        key=data["key"],
        title=data["title"],
        measures=[Measure(**m) for m in data["measures"]],
        checks=[Check(**c) for c in data["checks"]],
        facts=data["facts"],
        chart_units=data["chart_units"],
    )
    return result, machine


def fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def check_line(c: Check) -> str:
    verdict = "met" if c.met else "**missed**"
    return (
        f"| {c.what} | {fmt(c.value)}{(' ' + c.unit) if c.unit else ''} | {c.target} | {verdict} |"
    )


def measures_table(result: ScenarioResult) -> list[str]:
    lines = ["| measure | median | min | max | runs |", "|---|---:|---:|---:|---:|"]
    for m in result.measures:
        s = m.summary
        lines.append(
            f"| {m.name} | {fmt(s.median)} {m.unit} | {fmt(s.low)} | {fmt(s.high)} | {s.runs} |"
        )
    return lines


def markdown(entries: list[tuple[ScenarioResult, dict[str, str], str]]) -> str:
    """``entries``: each scenario's result, the machine it ran on, and its analysis text."""
    machine = entries[0][1]
    out = [HEADER.format(cores=machine["cpu"].split(",")[0]).rstrip(), ""]
    out += ["| machine | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in machine.items() if k != STOLEN]
    out += ["", "## Targets", "", "| target | measured | bound | |", "|---|---:|---|---|"]
    for result, _, _ in entries:
        out += [check_line(c) for c in result.checks]
    for result, ran_on, analysis in entries:
        out += ["", f"## {result.title}", ""]
        if ran_on["date"] != machine["date"]:
            out += [f"Measured in a separate run on {ran_on['date']}.", ""]
        if STOLEN in ran_on:
            out += [
                f"While it ran, the hypervisor gave {ran_on[STOLEN]} of the machine's CPU time"
                " to other guests (steal, /proc/stat).",
                "",
            ]
        out += measures_table(result)
        out += ["", f"![{result.title}](bench/charts/{result.key}.png)", ""]
        out += [analysis.format(**result.facts).strip()]
    return "\n".join(out) + "\n"


def terminal(result: ScenarioResult) -> str:
    lines = [f"== {result.title}"]
    for m in result.measures:
        s = m.summary
        lines.append(
            f"   {m.name:<58} {fmt(s.median):>10} {m.unit:<6}"
            f" [{fmt(s.low)} .. {fmt(s.high)}] n={s.runs}"
        )
    for c in result.checks:
        verdict = "met" if c.met else "MISSED"
        lines.append(f"   target: {c.what}: {fmt(c.value)} {c.unit} (bound {c.target}) {verdict}")
    return "\n".join(lines)

"""The benchmark report's arithmetic and text: what BENCHMARKS.md quotes must be what was measured."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import machine, report
from bench.result import ScenarioResult
from bench.stats import percentile, ratio, summarize

MACHINE = {"date": "2026-11-21 10:00 UTC", "cpu": "2 cores, Test CPU", "kernel": "6"}


def test_percentile_is_a_measured_value_by_nearest_rank() -> None:
    samples = [float(x) for x in range(1, 101)]
    assert percentile(samples, 0.5) == 50.0
    assert percentile(samples, 0.99) == 99.0
    assert percentile([3.0, 1.0, 2.0], 0.99) == 3.0
    assert percentile([7.0], 0.5) == 7.0


def test_summary_and_ratio_use_medians_not_means() -> None:
    s = summarize([1.0, 2.0, 100.0])
    assert (s.median, s.low, s.high, s.runs) == (2.0, 1.0, 100.0, 3)
    assert ratio([1.0, 2.0, 100.0], [4.0, 4.0, 5.0]) == 0.5


def test_empty_samples_are_an_error_not_a_zero() -> None:
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        percentile([], 0.5)


def sample_result() -> ScenarioResult:
    r = ScenarioResult("demo", "A demo scenario")
    r.measure("ours", "ms", [10.0, 12.0, 11.0])
    r.measure("theirs", "ms", [30.0, 33.0, 31.0])
    r.check("ours / theirs", 11.0 / 31.0, "<= 0.5", True)
    r.check("memory", 170.0, "< 150", False, "MB")
    r.facts["speedup"] = "2.8x"
    return r


def test_markdown_quotes_medians_spreads_verdicts_and_facts() -> None:
    text = report.markdown([(sample_result(), MACHINE, "We are {speedup} faster.")])
    assert "| ours | 11 ms | 10 | 12 | 3 |" in text
    assert "| ours / theirs | 0.355 | <= 0.5 | met |" in text
    assert "| memory | 170 MB | < 150 | **missed** |" in text
    assert "We are 2.8x faster." in text
    assert "2 cores" in text and "![A demo scenario](bench/charts/demo.png)" in text


def test_results_survive_the_round_trip_through_json(tmp_path: Path) -> None:
    report.save(sample_result(), MACHINE, tmp_path)
    loaded, machine = report.load(tmp_path / "demo.json")
    assert machine == MACHINE
    assert loaded == sample_result()


def test_each_scenario_says_how_much_cpu_other_guests_took_while_it_ran() -> None:
    busy_neighbours = {**MACHINE, machine.STOLEN: "57 %"}
    text = report.markdown([(sample_result(), busy_neighbours, "")])
    assert "the hypervisor gave 57 % of the machine's CPU time to other guests" in text
    assert "| cpu stolen |" not in text  # the scenario's, not the machine's, so not up top


def test_stolen_share_is_steal_ticks_over_all_ticks() -> None:
    assert machine.stolen((100, 1000), (400, 2000)) == "30 %"
    assert machine.stolen((0, 0), (0, 0)) == "unknown"
    steal, total = machine.cpu_ticks()
    assert 0 <= steal <= total and total > 0  # this machine's own /proc/stat

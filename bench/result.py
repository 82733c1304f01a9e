"""What a scenario hands back: its measures, the targets it checked, and facts for the text."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.stats import Summary, summarize


@dataclass
class Measure:
    """One quantity measured repeatedly, e.g. 'proxy join, ours' in seconds."""

    name: str
    unit: str
    samples: list[float]

    @property
    def summary(self) -> Summary:
        return summarize(self.samples)


@dataclass
class Check:
    """A target of the issue: the value measured against its bound."""

    what: str
    value: float
    target: str  # as the issue states it, e.g. "<= 0.5"
    met: bool
    unit: str = ""


@dataclass
class ScenarioResult:
    key: str  # file names: bench/charts/<key>.png
    title: str
    measures: list[Measure] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    # Measured facts the scenario's analysis paragraph quotes, by name.
    facts: dict[str, str] = field(default_factory=dict)
    # The measures that share one chart, by unit; a scenario may leave some out of its chart.
    chart_units: list[str] = field(default_factory=list)

    def measure(self, name: str, unit: str, samples: list[float]) -> Measure:
        added = Measure(name, unit, list(samples))
        self.measures.append(added)
        return added

    def check(self, what: str, value: float, target: str, met: bool, unit: str = "") -> None:
        self.checks.append(Check(what, value, target, met, unit))

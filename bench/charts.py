"""One PNG per scenario: each measure's median as a bar, its min..max as the error bar."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on a server
import matplotlib.pyplot as plt

from bench.result import ScenarioResult


def draw(result: ScenarioResult, path: Path) -> None:
    units = result.chart_units or sorted({m.unit for m in result.measures})
    panels = [[m for m in result.measures if m.unit == unit] for unit in units]
    panels = [p for p in panels if p]
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(8, 1.2 + 0.45 * sum(len(p) for p in panels) + 0.8 * len(panels))
    )
    for ax, measures in zip([axes] if len(panels) == 1 else axes, panels, strict=True):
        names = [m.name for m in measures][::-1]
        medians = [m.summary.median for m in measures][::-1]
        below = [m.summary.median - m.summary.low for m in measures][::-1]
        above = [m.summary.high - m.summary.median for m in measures][::-1]
        ax.barh(names, medians, xerr=[below, above], color="#4c72b0", capsize=3)
        ax.set_xlabel(f"{measures[0].unit} (median; bars: min..max)")
        for y, value in enumerate(medians):
            ax.annotate(
                f" {value:.4g}",
                (value, y),
                va="center",
                fontsize=8,
                xytext=(4, 0),
                textcoords="offset points",
            )
    fig.suptitle(result.title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)

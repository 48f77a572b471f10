"""The report's plots, drawn with matplotlib (Agg: no display) from `report_data`.

Covers: `draw_plots(data, run_dir)`: best fitness over time per island (the global best
drawn thick), memory per island against its slice over time above the total against
the budget (pressure levels shaded, actions marked), population sizes per island, and
migrant totals; `draw_costs(costs, path)` (cost per constraint, for timetables). Each
PNG is written without a date in its metadata, so the same data gives the same bytes.

Does not cover: what the series are (`coordinator.report.report_data`), the HTML
(`coordinator.report`). Only the coordinator imports this module, never an island.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after the backend is chosen)

MB = 2**20
LEVEL_COLOURS = {"elevated": "#fff3b0", "high": "#ffd59e", "critical": "#ffb3b3",
                 "emergency": "#ff8080"}
PNG_METADATA = {"Software": None}  # no matplotlib version or date: same data, same bytes
FIGURE_SIZE = (10, 4)
MARKED_ACTIONS = {"shrink", "hibernate", "hibernated", "terminate", "resume", "grow", "restart",
                  "crash", "stuck"}


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=90, metadata=PNG_METADATA)
    plt.close(figure)
    return path


def _no_data(axes: Any, what: str) -> None:
    axes.text(0.5, 0.5, f"no {what} in events.jsonl", ha="center", va="center",
              transform=axes.transAxes, color="grey")


def draw_best(data: dict[str, Any], path: Path) -> Path:
    figure, axes = plt.subplots(figsize=FIGURE_SIZE)
    for island, points in sorted(data["best"].items(), key=lambda item: int(item[0])):
        times, values = zip(*points, strict=True)
        axes.step(times, values, where="post", label=f"island {island}", alpha=0.7)
    if data["global_best"]:
        times, values = zip(*data["global_best"], strict=True)
        axes.step(times, values, where="post", color="black", linewidth=2.2, label="global best")
        if min(values) > 0 and max(values) / min(values) > 100:
            axes.set_yscale("log")
    else:
        _no_data(axes, "improvements")
    axes.set(xlabel="run time (s)", ylabel="best fitness (lower is better)",
             title="Best fitness over time")
    if data["best"]:
        axes.legend(fontsize="small", ncol=4)
    return _save(figure, path)


def _shade_levels(axes: Any, levels: list[list[Any]], end: float) -> None:
    """Shade the time spent at each pressure level above normal."""
    if not levels:
        return
    for (start, level), following in zip(levels, [*levels[1:], [end, None]], strict=True):
        if level in LEVEL_COLOURS:
            axes.axvspan(start, following[0], color=LEVEL_COLOURS[level], alpha=0.6, lw=0,
                         label=f"pressure {level}")


def draw_memory(data: dict[str, Any], path: Path) -> Path:
    figure, (per_island, total) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    samples = data["memory"]
    end = samples[-1]["t"] if samples else 0.0
    if data["summary"].get("elapsed_s"):
        end = max(end, float(data["summary"]["elapsed_s"]))
    for axes in (per_island, total):
        _shade_levels(axes, data["levels"], end)
    islands = sorted({i for s in samples for i in s["islands"]}, key=int)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for n, island in enumerate(islands):
        points = [(s["t"], *s["islands"][island]) for s in samples if island in s["islands"]]
        times, used, slices = zip(*points, strict=True)
        colour = colours[n % len(colours)]
        per_island.plot(times, [u / MB for u in used], color=colour, label=f"island {island}")
        per_island.step(times, [s / MB for s in slices], where="post", color=colour,
                        linestyle="--", alpha=0.6)
    if samples:
        times = [s["t"] for s in samples]
        total.plot(times, [s["used"] / MB for s in samples], color="black", label="used (PSS)")
        total.step(times, [s["budget"] / MB for s in samples], where="post", color="red",
                   linestyle="--", label="budget")
    else:
        _no_data(total, "memory samples")
    for t, action, island, _level in data["actions"]:
        if action not in MARKED_ACTIONS:  # cache clears and growth pauses: the table has them
            continue
        for axes in (per_island, total):
            axes.axvline(t, color="purple", alpha=0.5, linewidth=1)
        total.annotate(f"{action} {'' if island is None else island}", (t, 0),
                       xycoords=("data", "axes fraction"), rotation=90, fontsize=7,
                       va="bottom", ha="right", color="purple")
    if end > 0:
        total.set_xlim(0, end)
    per_island.set(ylabel="USS (MB)", title="Memory per island (dashed: its slice)")
    total.set(xlabel="run time (s)", ylabel="MB", title="Memory used against the budget "
              "(shaded: pressure level; purple: actions)")
    for axes in (per_island, total):
        handles, labels = axes.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        if unique:
            axes.legend(unique.values(), unique.keys(), fontsize="small", ncol=4)
    return _save(figure, path)


def draw_population(data: dict[str, Any], path: Path) -> Path:
    figure, axes = plt.subplots(figsize=FIGURE_SIZE)
    for island, points in sorted(data["population"].items(), key=lambda item: int(item[0])):
        times, sizes = zip(*[(t, p or 0) for t, p in points], strict=True)
        axes.step(times, sizes, where="post", label=f"island {island}")
    if not data["population"]:
        _no_data(axes, "population samples")
    else:
        axes.legend(fontsize="small", ncol=4)
    axes.set(xlabel="run time (s)", ylabel="individuals", title="Population size per island")
    axes.set_ylim(bottom=0)
    return _save(figure, path)


def draw_migration(data: dict[str, Any], path: Path) -> Path:
    figure, axes = plt.subplots(figsize=FIGURE_SIZE)
    if data["migration"]:
        columns = list(zip(*data["migration"], strict=True))
        for n, name in enumerate(("sent", "received", "accepted", "dropped"), 1):
            axes.step(columns[0], columns[n], where="post", label=name)
        axes.legend(fontsize="small")
    else:
        _no_data(axes, "migrations")
    axes.set(xlabel="run time (s)", ylabel="migrants (running total)", title="Migrations")
    return _save(figure, path)


def draw_plots(data: dict[str, Any], run_dir: Path) -> list[tuple[Path, str]]:
    """The four run plots as RUN_DIR/*.png, with their titles, in report order."""
    run_dir = Path(run_dir)
    return [(draw_best(data, run_dir / "plot_best.png"), "Best fitness over time"),
            (draw_memory(data, run_dir / "plot_memory.png"), "Memory"),
            (draw_population(data, run_dir / "plot_population.png"), "Population sizes"),
            (draw_migration(data, run_dir / "plot_migration.png"), "Migrations")]


def draw_costs(costs: dict[str, int], path: Path) -> Path:
    figure, axes = plt.subplots(figsize=(10, 3.2))
    names = list(costs)
    bars = axes.barh(names, [costs[n] for n in names],
                     color=["#c0392b" if n.endswith("(hard)") else "#2e86c1" for n in names])
    axes.bar_label(bars, fontsize=8)
    axes.invert_yaxis()
    axes.set(xlabel="violations (hard) / weighted cost (soft)",
             title="Cost per constraint of the best timetable")
    return _save(figure, path)


__all__ = ["draw_costs", "draw_plots"]

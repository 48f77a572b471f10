"""The report's plots, drawn as SVG with pygal (pure Python, no display) from `report_data`.

Covers: `draw_plots(data, run_dir)`: best fitness over time per island (step lines, the
global best drawn thick and black, a log scale when the values are positive and span more
than 100x), the total memory against the budget (the time spent at each pressure level
above normal as a coloured band along the time axis, actions as purple labelled lines),
memory per island against its slice (same bands and lines), population sizes per island,
and migrant totals; `draw_costs(costs, path)` (cost per constraint, for timetables, hard
constraints in red). Each SVG has a fixed chart id instead of pygal's random uuid, and
neither pygal's date comment nor any script (its tooltip JavaScript, linked from a CDN,
is off), so the same data gives the same bytes and the page that embeds it works offline.
A series of more than MAX_POINTS points is thinned per time bucket (first, lowest,
highest and last point kept), so a long run's plots stay small and quick to draw.

Does not cover: what the series are (`coordinator.report.report_data`), the HTML and how
an SVG is embedded (`coordinator.report`). Only the coordinator imports this module (and
pygal, when drawing), never an island.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

MB = 2**20
WIDTH = 1000
MAX_POINTS = 500  # per series
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
LEVEL_COLOURS = {"elevated": "#e6b800", "high": "#f08c00", "critical": "#e03131",
                 "emergency": "#8b0000"}
ACTION_COLOUR = "#8e44ad"
HARD_COLOUR, SOFT_COLOUR = "#c0392b", "#2e86c1"
BAND = {"width": 9, "band": True}  # pressure levels: a thick band along the time axis
DASHED = {"width": 1.5, "dash": "6,4"}
MARKED_ACTIONS = {"shrink", "hibernate", "hibernated", "terminate", "resume", "grow", "restart",
                  "crash", "stuck"}

Series = tuple[str, list[Any], str, dict[str, Any]]  # title, values, colour, serie options


def _strip_unstable(root: Any) -> Any:
    """Drop comments (pygal dates them) and scripts (config JSON, tooltip JS)."""
    for parent in list(root.iter()):
        for child in list(parent):
            if callable(child.tag) or str(child.tag).rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    return root


def _series_css(chart_id: str, series: list[Series]) -> str:
    """Line widths and dashes per series (pygal's own `stroke_style` loses to its CSS)."""
    rules = []
    for n, (_, _, _, serie) in enumerate(series):
        width, dash = serie.get("width", 2), serie.get("dash", "none")
        cap = "butt" if serie.get("band") else "round"
        rules.append(f"#{chart_id} .serie-{n} .line{{stroke-width:{width};"
                     f"stroke-dasharray:{dash};stroke-linecap:{cap}}}")
    rules.append(f"#{chart_id} text.label{{paint-order:stroke;stroke:#fff !important;"
                 "stroke-width:3px}")  # action labels stay readable over the lines
    return "".join(rules)


def _legend_margin(count: int, columns: int) -> int:
    """The bottom margin pygal forgets when the legend's last row is not full."""
    return 20 + 18 * (math.ceil(count / columns) - count // columns) if count else 20


def _render(kind: str, name: str, series: list[Series], path: Path, extra_css: str = "",
            **config: Any) -> Path:
    """Draw `series` as a pygal `kind` chart with a fixed id and write it to `path`."""
    import pygal
    from pygal.style import Style

    style = Style(background="white", plot_background="white", foreground="#333",
                  foreground_strong="#111", foreground_subtle="#666", font_family=FONT,
                  colors=tuple(colour for _, _, colour, _ in series) or ("#333",),
                  guide_stroke_color="#d0d0d0", major_guide_stroke_color="#d0d0d0",
                  guide_stroke_dasharray="3,3", major_guide_stroke_dasharray="3,3",
                  stroke_opacity="1", opacity=".85", title_font_size=17, label_font_size=12,
                  major_label_font_size=12, legend_font_size=12, value_font_size=11,
                  no_data_font_size=16)
    chart_id = f"chart-islands-{name}"
    columns = max(1, min(4, len(series)))
    options = {"width": WIDTH, "height": 420, "explicit_size": True, "js": [],
               "css": ["file://style.css", "file://graph.css",
                       "inline:" + _series_css(chart_id, series) + extra_css],
               "legend_at_bottom": True, "legend_at_bottom_columns": columns,
               "margin_bottom": _legend_margin(len(series), columns), "truncate_legend": -1,
               "show_dots": False, "allow_interruptions": True, "print_labels": True,
               "x_value_formatter": lambda x: f"{x:g}", "value_formatter": lambda y: f"{y:g}"}
    chart = getattr(pygal, kind)(style=style, **{**options, **config})
    chart.uuid = chart_id.removeprefix("chart-")  # pygal draws a random one: same data, same bytes
    chart.add_xml_filter(_strip_unstable)
    for title, values, _colour, serie in series:
        options = {k: v for k, v in serie.items() if k not in ("width", "dash", "band")}
        if sum(value is not None for value in values) == 1:  # one point: no line to see
            options.update(show_dots=True, dots_size=4)
        chart.add(title, values, **options)
    path.write_bytes(chart.render())
    return path


def _run_end(data: dict[str, Any]) -> float:
    """The last time anything was recorded (the run's elapsed time when known)."""
    times = [p[0] for points in data["best"].values() for p in points]
    times += [s["t"] for s in data["memory"]] + [m[0] for m in data["migration"]]
    times += [p[0] for points in data["population"].values() for p in points]
    return max([float(data["summary"].get("elapsed_s") or 0.0), *times])


def _thin(points: list[Any]) -> list[Any]:
    """At most about MAX_POINTS (t, value) points: per time bucket the first, lowest,
    highest and last, so peaks and steps survive (a chart is 1000 pixels wide)."""
    if len(points) <= MAX_POINTS:
        return list(points)
    start, span = points[0][0], (points[-1][0] - points[0][0]) or 1.0
    count = MAX_POINTS // 4
    buckets: dict[int, list[int]] = {}
    for n, (t, _value) in enumerate(points):
        buckets.setdefault(min(int((t - start) / span * count), count - 1), []).append(n)
    kept: set[int] = set()
    for members in buckets.values():
        kept.update((members[0], members[-1], min(members, key=lambda n: points[n][1]),
                     max(members, key=lambda n: points[n][1])))
    return [points[n] for n in sorted(kept)]


def _steps(points: list[Any], end: float | None = None) -> list[tuple[float, float]]:
    """(t, value) points as a step line (each value holds until the next), up to `end`
    (else the last point): unchanged values dropped, then thinned."""
    changes = [p for n, p in enumerate(points) if n == 0 or p[1] != points[n - 1][1]]
    line: list[tuple[float, float]] = []
    for t, value in _thin(changes):
        if line:
            line.append((t, line[-1][1]))
        line.append((t, value))
    end = points[-1][0] if end is None and points else end
    if line and end is not None and end > line[-1][0]:
        line.append((end, line[-1][1]))
    return line


def _time_axis(end: float) -> dict[str, Any]:
    """The x axis of every plot over time: from 0 to the run's end."""
    return {"x_title": "run time (s)", "xrange": (0, end) if end > 0 else None}


def _log_scale(values: list[float]) -> list[dict[str, Any]]:
    """y labels at the powers of ten spanning `values` (already log10)."""
    low, high = math.floor(min(values)), math.ceil(max(values))
    return [{"value": k, "label": f"{10.0**k:g}"} for k in range(low, high + 1)]


def draw_best(data: dict[str, Any], path: Path) -> Path:
    end = _run_end(data)
    lines = [(f"island {island}", _steps(points, end))
             for island, points in sorted(data["best"].items(), key=lambda item: int(item[0]))]
    glob = _steps(data["global_best"], end)
    everything = [v for _, line in lines for _, v in line] + [v for _, v in glob]
    config: dict[str, Any] = {}
    y_title = "best fitness (lower is better)"
    global_values = [v for _, v in data["global_best"]]
    if (global_values and min(everything) > 0
            and max(global_values) / min(global_values) > 100):
        lines = [(title, [(t, math.log10(v)) for t, v in line]) for title, line in lines]
        glob = [(t, math.log10(v)) for t, v in glob]
        config["y_labels"] = _log_scale([v for _, line in lines for _, v in line]
                                        + [v for _, v in glob])
        y_title += ", log scale"
        config["extra_css"] = ("#chart-islands-best .axis.y .guides .line:not(.guide)"
                               "{stroke:#d0d0d0;stroke-dasharray:3,3}")  # 1 is no axis
    series: list[Series] = [(title, line, COLOURS[n % len(COLOURS)], {"width": 1.5})
                            for n, (title, line) in enumerate(lines)]
    if glob:
        series.append(("global best", glob, "#000000", {"width": 3.5}))
    return _render("XY", "best", series, path, title="Best fitness over time",
                   y_title=y_title, **_time_axis(end),
                   no_data_text="no improvements in events.jsonl", **config)


def _level_bands(levels: list[list[Any]], end: float) -> list[Series]:
    """One series per pressure level above normal: its time spans as a band at y=0."""
    spans: dict[str, list[Any]] = {}
    for (start, level), following in zip(levels, [*levels[1:], [end, None]], strict=False):
        if level in LEVEL_COLOURS and following[0] > start:
            spans.setdefault(level, []).extend([(start, 0), (following[0], 0), None])
    return [(f"pressure {level}", spans[level], colour, BAND)
            for level, colour in LEVEL_COLOURS.items() if level in spans]


def _action_lines(actions: list[list[Any]], top: float, labelled: bool) -> list[Series]:
    """Memory actions (not cache clears or growth pauses) as purple vertical lines."""
    values: list[Any] = []
    for n, (t, action, island, _level) in enumerate(a for a in actions
                                                     if a[1] in MARKED_ACTIONS):
        height = top * (1 - 0.07 * (n % 4))  # staggered, so close labels do not overlap
        label = f"{action}{'' if island is None else f' {island}'}" if labelled else None
        values += [{"value": (t, 0), "label": None},
                   {"value": (t, height), "label": label}, None]
    if not values:
        return []
    return [("actions", values, ACTION_COLOUR,
             {"width": 1.2, "show_dots": labelled, "dots_size": 2})]


def draw_memory(data: dict[str, Any], path: Path) -> Path:
    """The total (PSS) against the budget, pressure level bands, labelled actions."""
    samples, end = data["memory"], _run_end(data)
    series: list[Series] = []
    if samples:
        series += [("used (PSS)", _thin([(s["t"], s["used"] / MB) for s in samples]), "#000000",
                    {"width": 2}),
                   ("budget", _steps([(s["t"], s["budget"] / MB) for s in samples], end),
                    "#d62728", DASHED)]
    top = max([s["budget"] / MB for s in samples] + [s["used"] / MB for s in samples] + [1.0])
    series += _level_bands(data["levels"], end) + _action_lines(data["actions"], top, True)
    title = ("Memory used against the budget (bands on the time axis: pressure level; "
             "purple: actions)")
    if not samples and series:
        title += ": no memory samples in events.jsonl"
    return _render("XY", "memory", series, path, height=460, title=title,
                   y_title="MB", include_x_axis=True, **_time_axis(end),
                   no_data_text="no memory samples in events.jsonl")


def draw_memory_islands(data: dict[str, Any], path: Path) -> Path:
    """Each island's USS (solid) against its slice (dashed, same colour)."""
    samples, end = data["memory"], _run_end(data)
    series: list[Series] = []
    top = 1.0
    for n, island in enumerate(sorted({i for s in samples for i in s["islands"]}, key=int)):
        points = [(s["t"], *s["islands"][island]) for s in samples if island in s["islands"]]
        colour = COLOURS[n % len(COLOURS)]
        series += [(f"island {island}", _thin([(t, used / MB) for t, used, _ in points]), colour,
                    {"width": 2}),
                   (f"island {island} slice", _steps([(t, s / MB) for t, _, s in points], end),
                    colour, DASHED)]
        top = max([top] + [max(used, s) / MB for _, used, s in points])
    if series:
        series += _level_bands(data["levels"], end) + _action_lines(data["actions"], top, False)
    return _render("XY", "memory-islands", series, path, height=460,
                   title="Memory per island (dashed: its slice)", y_title="USS (MB)",
                   include_x_axis=True, **_time_axis(end),
                   no_data_text="no memory samples in events.jsonl")


def draw_population(data: dict[str, Any], path: Path) -> Path:
    end = _run_end(data)
    series: list[Series] = [
        (f"island {island}", _steps([(t, p or 0) for t, p in points], end),
         COLOURS[n % len(COLOURS)], {"width": 2})
        for n, (island, points) in enumerate(sorted(data["population"].items(),
                                                    key=lambda item: int(item[0])))]
    return _render("XY", "population", series, path, title="Population size per island",
                   y_title="individuals", include_x_axis=True, **_time_axis(end),
                   no_data_text="no population samples in events.jsonl")


def draw_migration(data: dict[str, Any], path: Path) -> Path:
    end = _run_end(data)
    series: list[Series] = []
    if data["migration"]:
        columns = list(zip(*data["migration"], strict=True))
        series = [(name, _steps(list(zip(columns[0], columns[n], strict=True)), end),
                   COLOURS[n - 1], {"width": 2})
                  for n, name in enumerate(("sent", "received", "accepted", "dropped"), 1)]
    return _render("XY", "migration", series, path, title="Migrations",
                   y_title="migrants (running total)", include_x_axis=True, **_time_axis(end),
                   no_data_text="no migrations in events.jsonl")


def draw_plots(data: dict[str, Any], run_dir: Path) -> list[tuple[Path, str]]:
    """The run plots as RUN_DIR/plot_*.svg, with their titles, in report order."""
    run_dir = Path(run_dir)
    return [(draw_best(data, run_dir / "plot_best.svg"), "Best fitness over time"),
            (draw_memory(data, run_dir / "plot_memory.svg"), "Memory against the budget"),
            (draw_memory_islands(data, run_dir / "plot_memory_islands.svg"),
             "Memory per island"),
            (draw_population(data, run_dir / "plot_population.svg"), "Population sizes"),
            (draw_migration(data, run_dir / "plot_migration.svg"), "Migrations")]


def draw_costs(costs: dict[str, int], path: Path) -> Path:
    """Horizontal bars, one per constraint, first at the top; hard constraints in red."""
    names = list(costs)[::-1]  # pygal draws the first bar at the bottom
    bars = [{"value": costs[n], "color": HARD_COLOUR if n.endswith("(hard)") else SOFT_COLOUR}
            for n in names]
    return _render("HorizontalBar", "costs", [("cost", bars, SOFT_COLOUR, {})], path,
                   height=40 * len(names) + 140, x_labels=names, show_legend=False,
                   print_values=True, print_values_position="top",
                   title="Cost per constraint of the best timetable",
                   x_title="violations (hard) / weighted cost (soft)",
                   no_data_text="no costs in events.jsonl")


__all__ = ["draw_costs", "draw_plots"]

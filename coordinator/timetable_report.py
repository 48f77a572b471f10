"""The timetable part of a run's report, and `islands export`'s CSV.

Covers: `load_timetable(summary, run_dir)` (the instance named by the run's problem spec
and the best solution, `best.sol`, both resolved from the directory the run started in,
with RUN_DIR/best.sol as a fallback; `InputError` when either is missing),
`timetable_sections(data, run_dir)` (HTML: the cost per constraint as a plot (SVG) and
a table, then the timetable as grids of days x periods per curriculum, room and
teacher, each in a folding section) and `timetable_rows` / `write_csv` (one row per
lecture: course, teacher, room, day, period, curricula).

Does not cover: reading instances and solutions (`islands.timetable.instance`,
`islands.timetable.solution`), the exact cost (`islands.timetable.validate`), the rest
of the report (`coordinator.report`).
"""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path
from typing import Any

import numpy as np

from islands.errors import InputError
from islands.problem import parse_spec

HARD = (("lectures", "Lectures"), ("conflicts", "Conflicts"), ("availability", "Availability"),
        ("room_occupancy", "RoomOccupancy"))
SOFT = (("room_capacity", "RoomCapacity"), ("min_working_days", "MinWorkingDays"),
        ("curriculum_compactness", "CurriculumCompactness"), ("room_stability", "RoomStability"))
OPEN_GRIDS = 1  # grids of each kind shown open; the rest fold


def _resolve(name: str | None, workdir: str | None) -> Path | None:
    if not name:
        return None
    path = Path(name)
    return path if path.is_absolute() or not workdir else Path(workdir) / path


def load_timetable(summary: dict[str, Any], run_dir: Path) -> tuple[Any, np.ndarray]:
    """The instance and the best solution's entries [N, 3] (course, room, period)."""
    from islands.timetable.instance import read_ctt
    from islands.timetable.solution import read_sol

    workdir = summary.get("workdir")
    try:
        instance_name = parse_spec(str(summary.get("problem", ""))).params.get("path")
    except Exception:  # a spec this version cannot parse: no instance to show
        instance_name = None
    instance_path = _resolve(instance_name, workdir)
    if instance_path is None or not instance_path.is_file():
        raise InputError(f"the run's instance file {instance_path or '(none)'} is not there")
    candidates = [_resolve(summary.get("solution_file"), workdir), Path(run_dir) / "best.sol"]
    solution = next((p for p in candidates if p is not None and p.is_file()), None)
    if solution is None:
        raise InputError(f"{run_dir} has no best.sol")
    instance = read_ctt(instance_path)
    return instance, read_sol(solution, instance)


def timetable_rows(instance: Any, entries: np.ndarray) -> list[dict[str, Any]]:
    """One row per lecture, in solution order."""
    ppd = instance.periods_per_day
    rows = []
    for course, room, period in np.asarray(entries).reshape(-1, 3):
        curricula = instance.course_curricula[instance.course_curricula_offsets[course]:
                                              instance.course_curricula_offsets[course + 1]]
        rows.append({"course": instance.course_names[course],
                     "teacher": instance.course_teachers[course],
                     "room": instance.room_names[room], "day": int(period // ppd),
                     "period": int(period % ppd),
                     "curricula": " ".join(instance.curriculum_names[q] for q in curricula)})
    return rows


def write_csv(rows: list[dict[str, Any]], out: io.TextIOBase | Any) -> None:
    writer = csv.DictWriter(out, fieldnames=["course", "teacher", "room", "day", "period",
                                             "curricula"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def _grid(title: str, cells: dict[tuple[int, int], list[str]], days: int, periods: int,
          open_: bool) -> str:
    head = "".join(f"<th>day {d}</th>" for d in range(days))
    body = "".join(
        f"<tr><th>period {p}</th>" + "".join(
            f"<td>{'<br>'.join(html.escape(x) for x in cells.get((d, p), []))}</td>"
            for d in range(days)) + "</tr>" for p in range(periods))
    return (f"<details{' open' if open_ else ''}><summary>{html.escape(title)}</summary>"
            f"<table><tr><th></th>{head}</tr>{body}</table></details>")


def grids(rows: list[dict[str, Any]], days: int, periods: int) -> dict[str, list[str]]:
    """HTML grids (days x periods) per curriculum, room and teacher."""
    by: dict[str, dict[str, dict[tuple[int, int], list[str]]]] = {
        "curriculum": {}, "room": {}, "teacher": {}}
    for row in rows:
        slot = (row["day"], row["period"])
        for curriculum in row["curricula"].split():
            by["curriculum"].setdefault(curriculum, {}).setdefault(slot, []).append(
                f"{row['course']} ({row['room']})")
        by["room"].setdefault(row["room"], {}).setdefault(slot, []).append(row["course"])
        by["teacher"].setdefault(row["teacher"], {}).setdefault(slot, []).append(
            f"{row['course']} ({row['room']})")
    return {kind: [_grid(f"{kind} {name}", cells, days, periods, n < OPEN_GRIDS)
                   for n, (name, cells) in enumerate(sorted(tables.items()))]
            for kind, tables in by.items()}


def cost_table(summary: dict[str, Any]) -> dict[str, int]:
    costs = {f"{label} (hard)": int(summary.get(key, 0) or 0) for key, label in HARD}
    costs.update({f"{label} (soft)": int(summary.get(key, 0) or 0) for key, label in SOFT})
    return costs


def timetable_sections(data: dict[str, Any], run_dir: Path) -> list[str]:
    """The report's timetable sections (cost per constraint, grids)."""
    from coordinator.report import html_image, html_table
    from coordinator.report_plots import draw_costs

    summary = data["summary"]
    costs = cost_table(summary)
    cost_plot = draw_costs(costs, Path(run_dir) / "plot_costs.svg")
    sections = [html_image(cost_plot, "Cost per constraint"),
                html_table([(name, str(value)) for name, value in costs.items()]
                       + [("total: hard / soft", f"{summary.get('hard_violations')} / "
                                                 f"{summary.get('soft_cost')}")])]
    try:
        instance, entries = load_timetable(summary, run_dir)
    except InputError as error:
        return [*sections, f"<h2>Timetable</h2><p class='empty'>not shown: {html.escape(str(error))}</p>"]
    tables = grids(timetable_rows(instance, entries), instance.days, instance.periods_per_day)
    for kind in ("curriculum", "room", "teacher"):
        sections.append(f"<h2>Timetable per {kind} ({len(tables[kind])})</h2>")
        sections += tables[kind]
    sections.append("<p class='empty'>As CSV: <code>islands export "
                    f"{html.escape(str(run_dir))}</code></p>")
    return sections


__all__ = ["cost_table", "grids", "load_timetable", "timetable_rows", "timetable_sections",
           "write_csv"]

"""The report of a run: `report.html` (one self-contained file) and its SVG plots.

Covers: `load_events(run_dir, strict)` (RUN_DIR/events.jsonl; a line that is not one
JSON object is an `InputError` naming it when `strict`, else skipped), `report_data(events)`
(the series every plot is drawn from, as plain JSON-able data: best fitness over time
per island and global, memory per island against its slice with the total against the
budget, pressure level changes and actions, population sizes, migrant totals, and the
run's config and summary events), and `build_report(run_dir)`: the SVGs
(`coordinator.report_plots`), for timetables the cost per constraint and the timetable
as grids per curriculum, room and teacher (`coordinator.timetable_report`), all put
into RUN_DIR/report.html with the SVGs inline (`html_image`: no link, no script, so the
one file works offline). Everything is rebuilt from
events.jsonl alone (plus the instance and best.sol for the timetable grids), so
`islands report RUN_DIR` gives the same plots from the same data.

Does not cover: drawing (`coordinator.report_plots`), the timetable tables and CSV
(`coordinator.timetable_report`), the commands (`coordinator.review_cli`). pygal is
imported only in report_plots, when drawing, never in island workers.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from coordinator.events import Event, read_events
from coordinator.observers import PRESSURE_ACTIONS
from islands.checkpoint import atomic_write_bytes
from islands.errors import InputError
from memory.budget import format_bytes

REPORT_FILE = "report.html"
PLOT_FILES = ("plot_best.svg", "plot_memory.svg", "plot_memory_islands.svg", "plot_population.svg",
              "plot_migration.svg")
CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1300px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;
font-size:.85em;vertical-align:top}th{background:#f0f0f0}table.facts td:first-child{
font-weight:bold;background:#f7f7f7}svg.pygal-chart{max-width:100%;height:auto;display:block;
margin:.5em 0}
details{margin:.3em 0}summary{cursor:pointer;font-weight:bold}.empty{color:#aaa}"""


def load_events(run_dir: str | Path, strict: bool = True) -> list[Event]:
    """The events of RUN_DIR/events.jsonl (InputError when there is none to read)."""
    path = Path(run_dir)
    if not path.is_dir():
        raise InputError(f"no run directory {path}")
    events_file = path / "events.jsonl"
    try:
        events = read_events(events_file, strict=strict)
    except FileNotFoundError:
        raise InputError(f"{path} has no events.jsonl: not a run directory?") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read {events_file}: {error}") from None
    if not events:
        raise InputError(f"{events_file} holds no events")
    return events


def report_data(events: list[Event]) -> dict[str, Any]:
    """The series the plots and tables are drawn from (plain data, in event order)."""
    data: dict[str, Any] = {"best": {}, "global_best": [], "memory": [], "levels": [],
                            "actions": [], "population": {}, "states": {}, "migration": [],
                            "config": {}, "summary": {}}
    for event in events:
        kind, t = event["event"], float(event["t"])
        if kind == "improved":
            data["best"].setdefault(str(event["island"]), []).append([t, event["fitness"]])
            if event.get("global"):
                data["global_best"].append([t, event["fitness"]])
        elif kind == "memory":
            data["memory"].append({"t": t, "used": event["used_bytes"],
                                   "budget": event["budget_bytes"], "level": event.get("level"),
                                   "islands": {i: [m.get("uss", 0), m.get("slice", 0)]
                                               for i, m in (event.get("islands") or {}).items()}})
        elif kind == "pressure":
            data["levels"].append([t, event["new"]])
        elif kind in ("action", "hibernated", "restart", "crash", "stuck"):
            data["actions"].append([t, event.get("action", kind), event.get("island"),
                                    event.get("level")])
        elif kind == "islands":
            for island, state in event["islands"].items():
                data["population"].setdefault(island, []).append([t, state.get("population")])
                data["states"].setdefault(island, []).append([t, state.get("state")])
        elif kind == "migration":
            data["migration"].append([t, event.get("sent", 0), event.get("received", 0),
                                      event.get("accepted", 0), event.get("dropped", 0)])
        elif kind == "config" and not data["config"]:
            data["config"] = {k: v for k, v in event.items() if k not in ("t", "event")}
        elif kind == "summary":
            data["summary"] = {k: v for k, v in event.items() if k not in ("t", "event")}
    return data


def _facts(data: dict[str, Any]) -> list[tuple[str, str]]:
    summary, config = data["summary"], data["config"]
    best = summary.get("best_fitness")
    facts = [("problem", summary.get("problem", "?")), ("run", summary.get("run_id", "?")),
             ("stopped by", summary.get("stopped_by", "still running or crashed")),
             ("elapsed", f"{summary.get('elapsed_s', 0):.1f} s"),
             ("best fitness", "none" if best is None else f"{best:.6g}")]
    if summary.get("hard_violations") is not None:
        facts.append(("hard / soft", f"{summary['hard_violations']} / {summary['soft_cost']}"))
    if summary.get("time_to_feasible_s") is not None:
        facts.append(("feasible after", f"{summary['time_to_feasible_s']:.1f} s"))
    budget = summary.get("budget_bytes", config.get("budget_bytes", 0))
    peak = summary.get("peak_memory_bytes", 0)
    facts += [("islands", str(summary.get("islands", config.get("islands", "?")))),
              ("generations / evaluations",
               f"{summary.get('generations', '?')} / {summary.get('evaluations', '?')}"),
              ("memory peak / budget", f"{format_bytes(peak)} / {format_bytes(budget)}"
               + (f" ({peak / budget:.0%})" if budget else "")),
              ("pressure actions", str(sum(1 for a in data["actions"]
                                           if a[1] in PRESSURE_ACTIONS))),
              ("started / ended", f"{summary.get('started_at', '?')} / "
                                  f"{summary.get('ended_at', '?')}"),
              ("host / version", f"{summary.get('host', '?')} / {summary.get('version', '?')}")]
    return facts


def html_table(rows: list[tuple[str, str]], css_class: str = "") -> str:
    body = "".join(f"<tr><td>{html.escape(str(a))}</td><td>{html.escape(str(b))}</td></tr>"
                   for a, b in rows)
    return f'<table class="{css_class}">{body}</table>'


def html_image(path: Path, title: str) -> str:
    """A heading and the SVG at `path` inline (its XML declaration dropped)."""
    svg = path.read_text(encoding="utf-8")
    return f"<h2>{html.escape(title)}</h2>\n{svg[svg.index('<svg'):]}"


def render_html(run_dir: Path, data: dict[str, Any], plots: list[tuple[Path, str]],
                extra_sections: list[str]) -> str:
    """report.html's text: facts, plots (embedded), memory actions, extra sections."""
    actions = [(f"{t:.1f} s", f"{what}" + ("" if island is None else f" island {island}")
                + ("" if not level else f" ({level})")) for t, what, island, level in data["actions"]]
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>islands report: "
             f"{html.escape(str(data['summary'].get('problem', run_dir.name)))}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>Run report: {html.escape(str(data['summary'].get('problem', run_dir)))}</h1>",
             html_table(_facts(data), "facts")]
    parts += [html_image(path, title) for path, title in plots]
    parts.append("<h2>Memory actions</h2>" + (html_table(actions) if actions else
                                              "<p class='empty'>none: memory stayed calm</p>"))
    parts += extra_sections
    parts.append(f"<p class='empty'>Rebuilt from {html.escape(str(run_dir / 'events.jsonl'))} "
                 f"with <code>islands report {html.escape(str(run_dir))}</code></p></body></html>")
    return "\n".join(parts)


def build_report(run_dir: str | Path, strict: bool = False) -> Path:
    """Write RUN_DIR/report.html and its SVGs from RUN_DIR/events.jsonl; returns the path."""
    from coordinator.report_plots import draw_plots

    run_dir = Path(run_dir)
    data = report_data(load_events(run_dir, strict=strict))
    plots = draw_plots(data, run_dir)
    extra: list[str] = []
    if data["summary"].get("hard_violations") is not None:
        from coordinator.timetable_report import timetable_sections

        extra = timetable_sections(data, run_dir)
    path = run_dir / REPORT_FILE
    atomic_write_bytes(path, render_html(run_dir, data, plots, extra).encode("utf-8"),
                       durable=False)
    return path


__all__ = ["PLOT_FILES", "REPORT_FILE", "build_report", "html_image", "html_table", "load_events",
           "render_html", "report_data"]

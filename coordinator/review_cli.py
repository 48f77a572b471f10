"""The review subcommands of the `islands` CLI: `report`, `history` and `export`.

Covers: `register_commands(subparsers)` (called by `coordinator.cli.build_parser`) and
the handlers: `islands report RUN_DIR` rebuilds report.html and its PNGs from
RUN_DIR/events.jsonl; `islands history [--problem X] [--last N] [--history FILE]
[--json]` lists past runs from the SQLite run history; `islands export RUN_DIR [-o
FILE.csv]` writes a timetable run's best solution as CSV (one row per lecture; `-o -`
prints it). Bad input (no run directory, no events.jsonl, a corrupt line, no history)
is an `InputError`: one `islands: error: ...` line and exit code 2.

Does not cover: building the report (`coordinator.report`), the history file
(`coordinator.history`), the timetable tables (`coordinator.timetable_report`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from islands.errors import InputError


def report_command(args: argparse.Namespace) -> int:
    from coordinator.report import build_report

    path = build_report(args.run_dir, strict=True)
    print(f"wrote {path}")
    return 0


def history_command(args: argparse.Namespace) -> int:
    from coordinator.history import HistoryError, format_runs, history_path, list_runs

    if args.last is not None and args.last < 1:
        raise InputError(f"history: --last must be at least 1, got {args.last}")
    path = history_path(args.history)
    try:
        rows = list_runs(path, problem=args.problem, last=args.last)
    except HistoryError as error:
        raise InputError(str(error)) from None
    if args.json:
        print(json.dumps([{k: v for k, v in row.items() if k != "config"} for row in rows]))
    elif rows:
        print(format_runs(rows))
    else:
        print(f"no runs{' of ' + args.problem if args.problem else ''} in {path}")
    return 0


def export_command(args: argparse.Namespace) -> int:
    from coordinator.report import load_events, report_data
    from coordinator.timetable_report import load_timetable, timetable_rows, write_csv

    run_dir = Path(args.run_dir)
    summary = report_data(load_events(run_dir, strict=False))["summary"]
    if not summary:
        raise InputError(f"{run_dir} has no finished run (no summary in events.jsonl)")
    if summary.get("hard_violations") is None:
        raise InputError(f"export: {summary.get('problem')} is not a timetable run")
    instance, entries = load_timetable(summary, run_dir)
    rows = timetable_rows(instance, entries)
    if args.output == "-":
        write_csv(rows, sys.stdout)
        return 0
    output = Path(args.output) if args.output else run_dir / "timetable.csv"
    try:
        with output.open("w", encoding="utf-8", newline="") as out:
            write_csv(rows, out)
    except OSError as error:
        raise InputError(f"cannot write {output}: {error.strerror or error}") from None
    print(f"wrote {output}: {len(rows)} lectures")
    return 0


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add `report`, `history` and `export` to a CLI's subparsers (each sets `func`)."""
    report = subparsers.add_parser(
        "report", help="(re)build a run's report.html and plots from its events.jsonl")
    report.add_argument("run_dir", metavar="RUN_DIR")
    report.set_defaults(func=report_command)

    history = subparsers.add_parser(
        "history", help="list past runs from the run history (SQLite)",
        description="Past runs, oldest first. The history file is --history FILE, else "
                    "$ISLANDS_HISTORY, else history.sqlite under the user's data directory.")
    history.add_argument("--problem", metavar="X", help="only runs whose problem contains X")
    history.add_argument("--last", type=int, metavar="N", help="only the last N runs")
    history.add_argument("--history", metavar="FILE", help="the run-history SQLite file")
    history.add_argument("--json", action="store_true", help="print one JSON list")
    history.set_defaults(func=history_command)

    export = subparsers.add_parser(
        "export", help="a timetable run's best solution as CSV (one row per lecture)")
    export.add_argument("run_dir", metavar="RUN_DIR")
    export.add_argument("-o", "--output", metavar="FILE.csv",
                        help="where to write (default RUN_DIR/timetable.csv; - for stdout)")
    export.set_defaults(func=export_command)


__all__ = ["register_commands"]

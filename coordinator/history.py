"""The run history: one SQLite row per finished run, and how a run compares.

Covers: `history_path(config_file)` (the file: `--history FILE`, else the environment
variable ISLANDS_HISTORY, else `history.sqlite` under the user's data directory from
platformdirs), `record_run(path, summary, config_text)` (one row: problem, instance
checksum, config, start, end, stop reason, best fitness / hard / soft, peak memory and
budget, run directory, version, host; returns the `comparison` line for a run on an
instance seen before: "soft 123, last run 130, best ever 118"), `list_runs(path,
problem, last)` and `format_runs(rows)` for `islands history`. Runs compare by instance
checksum when the problem reads a file, else by the problem text. A history that
cannot be read (not a database, locked, no such file) raises `HistoryError`; the run's
caller turns a failed write into a warning, never a failed run.

Does not cover: when a run is recorded (`coordinator.watch`), the command line
(`coordinator.review_cli`).
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
from pathlib import Path
from typing import Any

HISTORY_ENV = "ISLANDS_HISTORY"
LOCK_TIMEOUT_S = 5.0
COLUMNS = ("run_id", "problem", "instance_sha256", "config", "started_at", "ended_at",
           "stopped_by", "best_fitness", "hard_violations", "soft_cost", "peak_memory_bytes",
           "budget_bytes", "run_dir", "version", "host", "elapsed_s")
COLUMN_TYPES = {"best_fitness": "REAL", "elapsed_s": "REAL", "hard_violations": "INTEGER",
                "soft_cost": "INTEGER", "peak_memory_bytes": "INTEGER", "budget_bytes": "INTEGER"}
SCHEMA = f"""CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    {", ".join(f"{name} {COLUMN_TYPES.get(name, 'TEXT')}" for name in COLUMNS)}
)"""


class HistoryError(Exception):
    """The history file cannot be read or written (one line, naming the file)."""


def history_path(config_file: str | None = None) -> Path:
    """`config_file`, else $ISLANDS_HISTORY, else the default under the user's data dir."""
    if config_file:
        return Path(config_file).expanduser()
    if os.environ.get(HISTORY_ENV):
        return Path(os.environ[HISTORY_ENV]).expanduser()
    from platformdirs import user_data_path

    return user_data_path("islands", appauthor=False) / "history.sqlite"


def _connect(path: Path, create: bool) -> sqlite3.Connection:
    if not create and not path.is_file():
        raise HistoryError(f"no run history at {path}")
    try:
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, timeout=LOCK_TIMEOUT_S)
        connection.row_factory = sqlite3.Row
        if create:
            connection.execute(SCHEMA)
        connection.execute("SELECT count(*) FROM runs")
        return connection
    except (sqlite3.Error, OSError) as error:
        raise HistoryError(f"cannot use the run history {path}: {error}") from None


def _score(row: dict[str, Any] | sqlite3.Row) -> tuple[str, float | None]:
    """What runs are compared by: soft cost when the problem has one, else fitness."""
    if row["soft_cost"] is not None and row["hard_violations"] == 0:
        return "soft", float(row["soft_cost"])
    if row["best_fitness"] is not None:
        return "fitness", float(row["best_fitness"])
    return "fitness", None


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.6g}"


def record_run(path: Path, summary: dict[str, Any], config_text: str) -> str | None:
    """Add the run to the history; the comparison line if this instance ran before."""
    row = {name: summary.get(name) for name in COLUMNS}
    row["config"] = config_text
    for name in ("hard_violations", "soft_cost", "peak_memory_bytes", "budget_bytes"):
        row[name] = None if row[name] is None else int(row[name])
    key_column = "instance_sha256" if summary.get("instance_sha256") else "problem"
    connection = _connect(path, create=True)
    try:
        with connection:
            before = connection.execute(
                f"SELECT * FROM runs WHERE {key_column} = ? ORDER BY id",
                (row[key_column],)).fetchall()
            connection.execute(
                f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                tuple(row[name] for name in COLUMNS))
    except sqlite3.Error as error:
        raise HistoryError(f"cannot write the run history {path}: {error}") from None
    finally:
        connection.close()
    return compare(row, before)


def compare(row: dict[str, Any], before: list[Any]) -> str | None:
    """"soft 123, last run 130, best ever 118" (None when nothing comparable ran before)."""
    name, value = _score(row)
    earlier = [score for kind, score in map(_score, before) if kind == name and score is not None]
    if value is None or not earlier or (name == "fitness" and not math.isfinite(value)):
        return None
    return (f"{name} {_number(value)}, last run {_number(earlier[-1])}, "
            f"best ever {_number(min(earlier))}")


def list_runs(path: Path, problem: str | None = None, last: int | None = None) -> list[dict[str, Any]]:
    """Runs in the history, oldest first (the `last` N; `problem` matches a substring)."""
    connection = _connect(path, create=False)
    try:
        query, arguments = "SELECT * FROM runs", []
        if problem:
            query += " WHERE problem LIKE ?"
            arguments.append(f"%{problem}%")
        query += " ORDER BY id DESC"
        if last is not None:
            query += " LIMIT ?"
            arguments.append(int(last))
        rows = [dict(row) for row in connection.execute(query, arguments)]
    except sqlite3.Error as error:
        raise HistoryError(f"cannot read the run history {path}: {error}") from None
    finally:
        with contextlib.suppress(sqlite3.Error):
            connection.close()
    return rows[::-1]


def format_runs(rows: list[dict[str, Any]]) -> str:
    """A plain table of runs, one a line."""
    from memory.budget import format_bytes

    header = ("ended", "problem", "stopped by", "best", "hard", "soft", "peak / budget",
              "elapsed", "run dir")
    lines = [header]
    for row in rows:
        peak = format_bytes(int(row["peak_memory_bytes"] or 0))
        budget = format_bytes(int(row["budget_bytes"] or 0))
        best = row["best_fitness"]
        lines.append((str(row["ended_at"] or "-"), str(row["problem"]), str(row["stopped_by"]),
                      "-" if best is None else f"{best:.6g}",
                      "-" if row["hard_violations"] is None else str(row["hard_violations"]),
                      "-" if row["soft_cost"] is None else str(row["soft_cost"]),
                      f"{peak} / {budget}", f"{row['elapsed_s'] or 0:.1f}s",
                      str(row["run_dir"])))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
                     .rstrip() for line in lines)


__all__ = ["HISTORY_ENV", "HistoryError", "compare", "format_runs", "history_path",
           "list_runs", "record_run"]

"""The live view of a run on a terminal (rich): `LiveView` and `render_view`.

Covers: `render_view(view)`, a rich renderable of a `coordinator.view.RunView` (a header
with elapsed / limit, the global best with hard / soft and "feasible since", memory used
against the budget as a bar with the pressure level, then one row per island: state,
generation, best, population, memory against its slice, cache hit rate, migrants in /
out), and `LiveView`, which shows it on stderr while the run goes on: redrawn from the
coordinator's own thread (no refresh thread reads the view while it changes) at most
REFRESH_S apart, log lines printed above it, and the last frame left on screen.

Does not cover: when the live view is used instead of plain lines, and the run log
(`coordinator.watch`), keeping the view (`coordinator.view`).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from coordinator.view import IslandView, RunView
from memory.budget import format_bytes

REFRESH_S = 0.25
LEVEL_STYLES = {"normal": "green", "elevated": "yellow", "high": "dark_orange",
                "critical": "red", "emergency": "bold red"}
STATE_STYLES = {"running": "green", "shrunk": "yellow", "hibernated": "blue",
                "restarting": "magenta", "stuck": "red", "failed": "bold red", "done": "dim"}


def _memory_bar(used: int, total: int, level: str) -> Table:
    grid = Table.grid(padding=(0, 1))
    share = used / total if total else 0.0
    grid.add_row(ProgressBar(total=1.0, completed=min(share, 1.0), width=30,
                             complete_style=LEVEL_STYLES.get(level, "white")),
                 Text(f"{format_bytes(used)} of {format_bytes(total)} ({share:.0%})"),
                 Text(level, style=LEVEL_STYLES.get(level, "white")))
    return grid


def _island_row(view: IslandView) -> list[Any]:
    rate = view.cache_hit_rate
    slice_text = (f"{format_bytes(view.memory_bytes)} / {format_bytes(view.slice_bytes)}"
                  if view.slice_bytes else format_bytes(view.memory_bytes))
    return [str(view.island), Text(view.state, style=STATE_STYLES.get(view.state, "white")),
            str(view.generation), f"{view.best:.6g}" if math.isfinite(view.best) else "-",
            str(view.population), slice_text, "-" if rate is None else f"{rate:.0%}",
            f"{view.migrants_in} / {view.migrants_out}"]


def render_view(view: RunView) -> Group:
    """The header and the island table of `view`, as one rich renderable."""
    header = Table.grid(padding=(0, 2))
    feasible = ("" if view.feasible_at is None
                else f"  feasible since {view.feasible_at:.1f} s")
    header.add_row(Text("elapsed", style="bold"), Text(view.elapsed_text()))
    header.add_row(Text("best", style="bold"), Text(view.best_text() + feasible))
    header.add_row(Text("memory", style="bold"),
                   _memory_bar(view.used_bytes, view.budget_bytes, view.level))
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("island", "state", "gen", "best", "pop", "memory / slice", "cache hits",
                 "migrants in / out"):
        table.add_column(name, justify="left" if name == "state" else "right")
    for island in sorted(view.islands):
        table.add_row(*_island_row(view.islands[island]))
    return Group(header, table)


class LiveView:
    """`view` drawn on stderr while the run goes on; `__call__` is the bus subscriber."""

    def __init__(self, view: RunView, console: Console | None = None) -> None:
        self.view = view
        self.console = console if console is not None else Console(stderr=True)
        self.live: Live | None = None
        self.drawn_at = -math.inf
        self.handlers: list[tuple[logging.StreamHandler, Any]] = []

    def start(self) -> None:
        self.live = Live(render_view(self.view), console=self.console, auto_refresh=False,
                         redirect_stderr=True, redirect_stdout=False, transient=False)
        self.live.start(refresh=True)
        # The CLI's log handler keeps the stderr it was made with: point it at the proxy
        # rich put in place, so log lines are printed above the view, not through it.
        for handler in logging.getLogger("islands").handlers:
            if getattr(handler, "_islands_cli", False) and isinstance(handler, logging.StreamHandler):
                previous = handler.setStream(sys.stderr)
                if previous is not None:
                    self.handlers.append((handler, previous))

    def __call__(self, event: dict[str, Any]) -> None:
        if self.live is None:
            return
        now = time.monotonic()
        if now - self.drawn_at >= REFRESH_S or event["event"] in ("summary", "pressure"):
            self.drawn_at = now
            self.live.update(render_view(self.view), refresh=True)

    def stop(self) -> None:
        if self.live is None:
            return
        live, self.live = self.live, None
        try:
            live.update(render_view(self.view), refresh=True)
        finally:
            live.stop()
            for handler, stream in self.handlers:
                handler.setStream(stream)
            self.handlers.clear()


__all__ = ["REFRESH_S", "LiveView", "render_view"]

"""What a person watching a run sees, kept from the event stream: `RunView`.

Covers: `RunView`, a bus subscriber that keeps the latest state of the run (run time,
global best with hard / soft costs and when it became feasible, memory used against
the budget and the pressure level, and one `IslandView` per island: state, generation,
best, population, memory against its slice, cache hit rate, migrants in / out, and
"restarting" / "stuck" as the supervisor's events say), `snapshot()` (the per-island
part as plain data: the persisted `islands` event the report draws population sizes
and migrants from), and `progress_line()` (the one-line summary of the plain progress
mode).

Does not cover: drawing it on a terminal (`coordinator.live`), when lines are logged and
the run log (`coordinator.watch`), the report (`coordinator.report`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from coordinator.events import Event
from memory.budget import format_bytes

GONE_EVENTS = {"hibernated": "hibernated", "crash": "restarting", "stuck": "stuck",
               "island_failed": "failed", "restart_deferred": "waiting"}


@dataclass
class IslandView:
    """One island as the watcher sees it."""

    island: int
    state: str = "starting"
    generation: int = 0
    evaluations: int = 0
    best: float = math.inf
    population: int = 0
    memory_bytes: int = 0  # its USS in the latest memory sample
    slice_bytes: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    migrants_in: int = 0
    migrants_out: int = 0

    @property
    def cache_hit_rate(self) -> float | None:
        looked_up = self.cache_hits + self.cache_misses
        return self.cache_hits / looked_up if looked_up else None


@dataclass
class RunView:
    """The run as it stands, from its events (`__call__` is the subscriber)."""

    n_islands: int
    time_limit: float | None = None
    generations: int | None = None
    t: float = 0.0
    best: float = math.inf
    hard: int | None = None
    soft: int | None = None
    feasible_at: float | None = None
    used_bytes: int = 0
    budget_bytes: int = 0
    level: str = "normal"
    islands: dict[int, IslandView] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for island in range(self.n_islands):
            self.islands.setdefault(island, IslandView(island))

    def island(self, island: int) -> IslandView:
        return self.islands.setdefault(int(island), IslandView(int(island)))

    def __call__(self, event: Event) -> None:
        self.t = max(self.t, float(event.get("t", 0.0)))
        kind = event["event"]
        if kind == "telemetry":
            self._telemetry(event)
        elif kind == "improved" and event.get("global"):
            self.best = float(event["fitness"])
            self.hard, self.soft = event.get("hard_violations"), event.get("soft_cost")
        elif kind == "feasible" and self.feasible_at is None:
            self.feasible_at = float(event["t"])
        elif kind == "memory":
            self._memory(event)
        elif kind == "pressure":
            self.level = str(event["new"])
        elif kind == "config":
            self.budget_bytes = int(event.get("budget_bytes", self.budget_bytes))
        elif kind in GONE_EVENTS and "island" in event:
            self.island(event["island"]).state = GONE_EVENTS[kind]
        elif kind in ("island_done", "restart", "island_started") and "island" in event:
            view = self.island(event["island"])
            view.state = {"island_done": "done", "restart": "restarting"}.get(kind, "running")

    def _telemetry(self, event: Event) -> None:
        view = self.island(event["island"])
        view.state = str(event.get("state", view.state))
        view.generation = int(event.get("generation", view.generation))
        view.evaluations = int(event.get("evaluations", view.evaluations))
        view.best = float(event.get("best_fitness", view.best))
        view.population = int(event.get("population", view.population))
        view.cache_hits = int(event.get("cache_hits", 0) or 0)
        view.cache_misses = int(event.get("cache_misses", 0) or 0)
        migration = event.get("migration") or {}
        view.migrants_in = int(migration.get("accepted", migration.get("received", 0)) or 0)
        view.migrants_out = int(migration.get("sent", 0) or 0)

    def _memory(self, event: Event) -> None:
        self.used_bytes = int(event["used_bytes"])
        self.budget_bytes = int(event["budget_bytes"])
        self.level = str(event.get("level", self.level))
        for island, reading in (event.get("islands") or {}).items():
            view = self.island(int(island))
            view.memory_bytes = int(reading.get("uss", 0))
            view.slice_bytes = int(reading.get("slice", 0))

    # -- what is shown ---------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        states: dict[str, int] = {}
        for view in self.islands.values():
            states[view.state] = states.get(view.state, 0) + 1
        return states

    def generation(self) -> int:
        """The furthest island's generation."""
        return max((v.generation for v in self.islands.values()), default=0)

    def evaluations(self) -> int:
        return sum(v.evaluations for v in self.islands.values())

    def best_text(self) -> str:
        if not math.isfinite(self.best):
            return "none yet"
        text = f"{self.best:.6g}"
        if self.hard is not None and self.soft is not None:
            text += f" (hard {self.hard}, soft {self.soft})"
        return text

    def elapsed_text(self) -> str:
        limit = "" if self.time_limit is None else f"/{self.time_limit:.0f}s"
        return f"{self.t:.1f}s{limit}"

    def memory_text(self) -> str:
        share = self.used_bytes / self.budget_bytes if self.budget_bytes else 0.0
        return (f"{format_bytes(self.used_bytes)}/{format_bytes(self.budget_bytes)} "
                f"({share:.0%}, {self.level})")

    def progress_line(self) -> str:
        """The plain mode's one line for the whole run (not one per island)."""
        counts = self.counts()
        running = sum(counts.get(s, 0) for s in ("running", "shrunk", "starting"))
        hibernated = counts.get("hibernated", 0)
        others = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())
                           if s not in ("running", "shrunk", "starting", "hibernated"))
        generation = self.generation()
        limit = "" if self.generations is None else f"/{self.generations}"
        feasible = ("" if self.feasible_at is None
                    else f", feasible since {self.feasible_at:.1f}s")
        return (f"[GA] {self.elapsed_text()} gen {generation}{limit}: best {self.best_text()}"
                f"{feasible}; memory {self.memory_text()}; islands {running} running, "
                f"{hibernated} hibernated" + (f", {others}" if others else ""))

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per-island state as plain data (the persisted `islands` event)."""
        return {str(i): {"state": v.state, "generation": v.generation,
                         "best": v.best if math.isfinite(v.best) else None,
                         "population": v.population, "migrants_in": v.migrants_in,
                         "migrants_out": v.migrants_out,
                         "cache_hit_rate": None if v.cache_hit_rate is None
                         else round(v.cache_hit_rate, 4)}
                for i, v in sorted(self.islands.items())}


__all__ = ["IslandView", "RunView"]

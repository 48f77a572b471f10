"""The memory-pressure policy: a pure function from (level, island snapshot) to actions.

Covers: DESIGN.md's table, one level at a time:
- ELEVATED: every running island clears its cache, stops growing and declines
  immigrants (sent once, when the level is entered).
- HIGH: halve the population of the running island with the largest measured bytes
  (USS) that is still above the minimum, one island per call.
- CRITICAL: hibernate one running island, the largest by measured bytes, worst
  fitness breaking ties; never the holder of the global best while another island
  runs, and never the last running island (that one is shrunk instead).
- EMERGENCY: terminate the largest running island (the coordinator sends SIGTERM then
  SIGKILL and later restarts it from its checkpoint).
- NORMAL (a calm period): resume one hibernated island; when none is hibernated,
  regrow the smallest shrunk island below its target population, one step per call.
Given `islands` (a pressure domain's: one Ray node's), every action picks among those
only; the global best and "never the last running island" still look at the whole run.

Does not cover: pacing. The pressure controller (`coordinator.pressure`) calls `decide` on level
changes and on every tick, but only while no action is in flight (it waits for the
command ack plus one fresh memory sample) and, for NORMAL, once per calm period.
Sending commands and signals is `coordinator.pressure` / `coordinator.supervisor`; levels come
from `memory.monitor.MemoryMonitor`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from islands.protocol import IslandState
from memory.monitor import PressureLevel

# Islands in these states evolve and can be acted on.
ACTIVE_STATES = (IslandState.STARTING, IslandState.RUNNING, IslandState.SHRUNK)


class ActionKind(str, enum.Enum):
    CLEAR_CACHE = "clear_cache"
    PAUSE_GROWTH = "pause_growth"
    RESUME_GROWTH = "resume_growth"
    SHRINK = "shrink"
    GROW = "grow"
    HIBERNATE = "hibernate"
    TERMINATE = "terminate"
    RESUME = "resume"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Action:
    """One thing to do to one island; `arg` is the factor for SHRINK / GROW."""

    kind: ActionKind
    island: int
    arg: float = 0.0


def _active(snapshot: Sequence[Mapping[str, Any]]) -> list[int]:
    return [i for i, row in enumerate(snapshot) if int(row["state"]) in ACTIVE_STATES]


def _largest(snapshot: Sequence[Mapping[str, Any]], candidates: Sequence[int]) -> int:
    # Largest measured bytes; ties go to the worse (higher) fitness, then the lower id.
    def key(i: int) -> tuple[float, float, int]:
        fitness = float(snapshot[i]["best_fitness"])
        return (float(snapshot[i]["measured_bytes"]), fitness if math.isfinite(fitness) else math.inf, -i)

    return max(candidates, key=key)


def global_best_island(snapshot: Sequence[Mapping[str, Any]]) -> int | None:
    """The island whose snapshot row holds the lowest best fitness (None if none has one)."""
    best: int | None = None
    for i, row in enumerate(snapshot):
        fitness = float(row["best_fitness"])
        if math.isfinite(fitness) and (best is None or fitness < float(snapshot[best]["best_fitness"])):
            best = i
    return best


def decide(
    level: PressureLevel,
    snapshot: Sequence[Mapping[str, Any]],
    *,
    min_population: int,
    target_population: int | Sequence[int] | None = None,
    level_changed: bool = False,
    best_island: int | None = None,
    islands: Collection[int] | None = None,
) -> list[Action]:
    """Actions for `level` given the `snapshot` (one dict per island, by id: `Supervisor.snapshot()`).

    `target_population` (one value or one per island) is what NORMAL regrows towards;
    `level_changed` says the level was just entered (bulk ELEVATED actions and
    RESUME_GROWTH are sent only then); `best_island` overrides the global-best holder
    found in the snapshot; `islands` (None: all) are the ones the level is about, the
    only ones acted on.
    """
    level = PressureLevel(level)
    mine = range(len(snapshot)) if islands is None else set(islands)
    running = _active(snapshot)  # in the whole run
    active = [i for i in running if i in mine]
    actions: list[Action] = []
    if level >= PressureLevel.ELEVATED and level_changed:
        for i in active:
            actions.append(Action(ActionKind.CLEAR_CACHE, i))
            actions.append(Action(ActionKind.PAUSE_GROWTH, i))

    if level == PressureLevel.NORMAL:
        hibernated = [i for i, row in enumerate(snapshot)
                      if int(row["state"]) == IslandState.HIBERNATED and i in mine]
        if level_changed:
            actions.extend(Action(ActionKind.RESUME_GROWTH, i) for i in active)
        if hibernated:
            actions.append(Action(ActionKind.RESUME, hibernated[0]))
            return actions
        if target_population is not None:
            targets = (
                [int(target_population)] * len(snapshot)
                if isinstance(target_population, int)
                else [int(t) for t in target_population]
            )
            below = [
                i for i in active
                if int(snapshot[i]["state"]) == IslandState.SHRUNK
                and int(snapshot[i]["population"]) < targets[i]
            ]
            if below:
                smallest = min(below, key=lambda i: (int(snapshot[i]["population"]), i))
                actions.append(Action(ActionKind.GROW, smallest, 2.0))
        return actions

    if level == PressureLevel.HIGH:
        shrinkable = [i for i in active if int(snapshot[i]["population"]) > min_population]
        if shrinkable:
            actions.append(Action(ActionKind.SHRINK, _largest(snapshot, shrinkable), 0.5))
        return actions

    if level == PressureLevel.CRITICAL:
        holder = best_island if best_island is not None else global_best_island(snapshot)
        candidates = [i for i in active if i != holder]
        if len(running) <= 1 or not candidates:
            # Hibernating the last island would stop the search, the best holder's would
            # lose the best's line while another runs: shrink it instead.
            shrinkable = [i for i in active if int(snapshot[i]["population"]) > min_population]
            if shrinkable:
                actions.append(Action(ActionKind.SHRINK, shrinkable[0], 0.5))
            return actions
        actions.append(Action(ActionKind.HIBERNATE, _largest(snapshot, candidates)))
        return actions

    if level == PressureLevel.EMERGENCY and active:
        actions.append(Action(ActionKind.TERMINATE, _largest(snapshot, active)))
    return actions

"""Auto-configuration: island count, population and chunk size from budget and cores.

Covers: `plan_run(config, problem, budget_bytes, ...) -> HardwarePlan`. The global
budget (`memory.budget.compute_budget`) minus the coordinator's own memory and the
shared problem data is split into one slice per island
(`memory.budget.island_slice_bytes`). Each island needs its interpreter baseline
(`WORKER_BASE_BYTES`), its survivors' genomes, and room to evaluate at least one
individual (`problem.individual_bytes`); the streaming chunk size follows from what is
left (`islands.population.chunk_size_for`). Island count defaults to the usable cores
and is lowered until a slice fits; population defaults to the problem's
`preferred_population`, else `DEFAULT_POPULATION`. Every decision is logged as one
`[GA] Hardware config: ...` line. A budget too small for even one island raises
`memory.budget.BudgetError` (exit code 2 at the command line).

Does not cover: detecting the budget (`memory.budget`), enforcing it while the run goes
on (`memory.manager` + `coordinator.policy`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from islands.population import chunk_size_for
from memory.budget import BudgetError, format_bytes, island_slice_bytes

# What an idle island process costs before it holds any population: the interpreter,
# numpy and this package (measured PSS of a spawned worker is about 30-45 MB).
WORKER_BASE_BYTES = 48 * 2**20
DEFAULT_POPULATION = 50


@dataclass(frozen=True)
class HardwarePlan:
    islands: int
    population: int
    chunk_size: int
    streaming: bool
    budget_bytes: int
    slice_bytes: int
    cores: int
    reasons: tuple[str, ...]

    def log_line(self) -> str:
        return (
            f"[GA] Hardware config: islands={self.islands} ({self.cores} cores), "
            f"pop={self.population}, chunk={self.chunk_size}, streaming={self.streaming}, "
            f"budget={format_bytes(self.budget_bytes)}, slice={format_bytes(self.slice_bytes)}"
        )


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _island_need(problem: Any, population: int) -> int:
    """Least memory one island needs: baseline, survivors, one evaluation."""
    genome_bytes = int(getattr(problem, "genome_bytes", 0))
    return WORKER_BASE_BYTES + 2 * population * genome_bytes + int(problem.individual_bytes)


def plan_run(
    *,
    problem: Any,
    budget_bytes: int,
    coordinator_bytes: int,
    shared_bytes: int,
    islands: int | None = None,
    population: int | None = None,
    chunk_size: int | None = None,
    streaming: bool = True,
    cores: int | None = None,
) -> HardwarePlan:
    """Choose island count, population and chunk size; BudgetError if nothing fits."""
    cores = cores or usable_cores()
    reasons: list[str] = []
    preferred = getattr(problem, "preferred_population", None)
    if population is None:
        population = int(preferred) if preferred else DEFAULT_POPULATION
        reasons.append(
            f"population {population} from the problem's preferred population"
            if preferred else f"population {population} (default)"
        )
    need = _island_need(problem, population)
    if islands is not None:
        slice_bytes = island_slice_bytes(
            budget_bytes, islands, coordinator_bytes=coordinator_bytes, shared_bytes=shared_bytes
        )
        if slice_bytes < need:
            raise BudgetError(
                f"memory budget {format_bytes(budget_bytes)} is too small for {islands} "
                f"island(s): each gets {format_bytes(slice_bytes)} but needs at least "
                f"{format_bytes(need)} (one evaluation costs {format_bytes(problem.individual_bytes)})"
            )
        reasons.append(f"{islands} island(s) as asked")
    else:
        islands = cores
        while True:
            try:
                slice_bytes = island_slice_bytes(
                    budget_bytes, islands, coordinator_bytes=coordinator_bytes,
                    shared_bytes=shared_bytes,
                )
            except BudgetError:
                slice_bytes = 0
            if slice_bytes >= need:
                break
            if islands == 1:
                raise BudgetError(
                    f"memory budget {format_bytes(budget_bytes)} is too small for even one "
                    f"island: after the coordinator ({format_bytes(coordinator_bytes)}) and "
                    f"shared data ({format_bytes(shared_bytes)}) one island needs at least "
                    f"{format_bytes(need)}"
                )
            islands -= 1
        reasons.append(
            f"{islands} island(s): one per core" if islands == cores
            else f"{islands} island(s): the budget does not fit {cores}"
        )
    if chunk_size is None:
        room = slice_bytes - WORKER_BASE_BYTES
        chunk_size = chunk_size_for(
            room, int(problem.individual_bytes), int(getattr(problem, "genome_bytes", 0)), population
        )
        reasons.append(f"chunk {chunk_size} from a {format_bytes(room)} working slice")
    chunk_size = max(1, min(int(chunk_size), population))
    if not streaming:
        reasons.append("streaming off: every offspring of a generation is alive at once")
    return HardwarePlan(
        islands=islands, population=population, chunk_size=chunk_size, streaming=streaming,
        budget_bytes=budget_bytes, slice_bytes=slice_bytes, cores=cores, reasons=tuple(reasons),
    )

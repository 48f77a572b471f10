"""Auto-configuration: island count, population and chunk size from budget and cores.

Covers: `plan_run(config, problem, budget_bytes, ...) -> HardwarePlan`. The global
budget (`memory.budget.compute_budget`) minus the coordinator's own memory and the
shared problem data is split into one slice per island
(`memory.budget.island_slice_bytes`). What an island at population P costs
(`island_bytes`) follows `islands.population`'s accounting: its interpreter baseline
(`WORKER_BASE_BYTES`), then

- streaming: its survivors' genomes and one evaluated chunk; the chunk size follows from
  what is left (`islands.population.chunk_size_for`), so only the survivors grow with P,
  and holds at most `CHUNK_PHENOTYPE_BYTES` of phenotypes (more is slower, not faster);
- without streaming (`--no-streaming`): every offspring of a generation alive at once,
  i.e. the chunk is the whole population and must pass the same `chunk_size_for` bound.

Island count defaults to the usable cores and is lowered until a slice holds an island
at the smallest population the run allows (`min_population`). Population defaults to the
problem's `preferred_population`, else `DEFAULT_POPULATION`; a population that does not fit
its slice is shrunk, before any island is spawned, to the largest that fits, with one
`[GA] Population ... shrunk to ...` warning (the pressure policy would otherwise have to
claw the overshoot back mid-run, after the first generation already broke the budget).
Every decision is logged as one `[GA] Hardware config: ...` line. A budget too small for
even one island at the minimum population raises `memory.budget.BudgetError` (exit code
2 at the command line).

Does not cover: detecting the budget (`memory.budget`), enforcing it while the run goes
on (`memory.manager` + `coordinator.policy`), an explicit `chunk_size` too large for its
slice (taken as given; the pressure policy handles the rest).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.config_model import MemorySettings
from islands.population import CHUNK_USABLE_SHARE, child_bytes, chunk_size_for, survivor_bytes
from memory.budget import BudgetError, format_bytes, island_slice_bytes

logger = logging.getLogger("islands.run")

# What an idle island process costs before it holds any population: the interpreter,
# numpy and this package (measured PSS of a spawned worker is about 30-45 MB).
WORKER_BASE_BYTES = 48 * 2**20
DEFAULT_POPULATION = 50
# A default chunk holds at most this much phenotype memory. glibc serves larger blocks with
# a fresh mmap each time (32 MB is its highest mmap threshold), page-faulted in every
# generation, while smaller freed blocks are reused: on heavy:mb=20, 2 islands, chunk 50
# ran at a fifth of chunk 1's rate and chunk 3 at half; a bigger chunk buys nothing here.
CHUNK_PHENOTYPE_BYTES = 32 * 2**20
# The floor a population is shrunk to before the run gives up: the run's own default
# (`[memory] min_population`), the same floor the pressure policy shrinks to.
MIN_POPULATION = MemorySettings().min_population


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


def usable_cores(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """Cores this process may use: its CPU affinity, lowered by a cgroup CPU quota
    (v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`, rounded up)."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        cores = max(1, os.cpu_count() or 1)
    quota = _cpu_quota(cgroup_root)
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def _cpu_quota(root: Path) -> float | None:
    """The cgroup CPU quota in cores, or None where there is none (or it cannot be read)."""
    try:
        fields = (root / "cpu.max").read_text().split()
        if fields and fields[0] != "max":
            return int(fields[0]) / int(fields[1])
        if fields:
            return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def _genome_bytes(problem: Any) -> int:
    return int(getattr(problem, "genome_bytes", 0))


def _island_need(problem: Any, population: int) -> int:
    """Least memory one streaming island needs: baseline, survivors, one evaluation."""
    return WORKER_BASE_BYTES + 2 * population * _genome_bytes(problem) + int(problem.individual_bytes)


def _generation_bytes(problem: Any, population: int) -> int:
    """Working memory (slice less baseline) that a whole generation evaluated at once needs.

    The inverse of `chunk_size_for` with chunk == population: survivors plus `population`
    children, all of it inside the usable share of the slice.
    """
    genome = _genome_bytes(problem)
    per_individual = survivor_bytes(genome) + child_bytes(problem.individual_bytes, genome)
    return int(population * per_individual / CHUNK_USABLE_SHARE) + 1


def island_bytes(problem: Any, population: int, *, streaming: bool) -> int:
    """Least slice an island at `population` fits in (see the module docstring)."""
    need = _island_need(problem, population)
    if not streaming:
        need = max(need, WORKER_BASE_BYTES + _generation_bytes(problem, population))
    return need


def largest_population(problem: Any, slice_bytes: int, *, streaming: bool, limit: int) -> int:
    """The largest population <= `limit` whose island fits `slice_bytes`; 0 if none does."""
    # island_bytes is monotonic in the population: bisect instead of a closed form so the
    # two can never disagree.
    low, high = 0, int(limit)
    while low < high:
        middle = (low + high + 1) // 2
        if island_bytes(problem, middle, streaming=streaming) <= slice_bytes:
            low = middle
        else:
            high = middle - 1
    return low


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
    min_population: int = MIN_POPULATION,
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
    # A population asked below the floor is the floor (as for the pressure policy).
    floor = max(1, min(int(min_population), population))
    need = island_bytes(problem, floor, streaming=streaming)
    mode = "with streaming" if streaming else "without streaming"
    if islands is not None:
        slice_bytes = island_slice_bytes(
            budget_bytes, islands, coordinator_bytes=coordinator_bytes, shared_bytes=shared_bytes
        )
        if slice_bytes < need:
            raise BudgetError(
                f"memory budget {format_bytes(budget_bytes)} is too small for {islands} "
                f"island(s): each gets {format_bytes(slice_bytes)} but needs at least "
                f"{format_bytes(need)} for a population of {floor} {mode} "
                f"(one evaluation costs {format_bytes(problem.individual_bytes)})"
            )
        reasons.append(f"{islands} island(s) as asked")
        if islands > cores:
            logger.warning("[GA] %d islands on %d usable core(s): they share the cores and "
                           "each runs slower (affinity and cgroup CPU quota counted)",
                           islands, cores)
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
                    f"{format_bytes(need)} for a population of {floor} {mode}"
                )
            islands -= 1
        reasons.append(
            f"{islands} island(s): one per core" if islands == cores
            else f"{islands} island(s): the budget does not fit {cores}"
        )
    fitting = largest_population(problem, slice_bytes, streaming=streaming, limit=population)
    if fitting < population:
        # slice >= need guarantees fitting >= floor. Shrinking here, before spawning, keeps
        # the first generation inside the budget; the policy could only act after it.
        message = (
            f"Population {population} does not fit an island's {format_bytes(slice_bytes)} "
            f"slice {mode}; shrunk to {fitting}"
        )
        logger.warning("[GA] %s", message)
        reasons.append(message)
        population = fitting
    if chunk_size is None:
        room = slice_bytes - WORKER_BASE_BYTES
        chunk_size = chunk_size_for(room, int(problem.individual_bytes), _genome_bytes(problem), population)
        reasons.append(f"chunk {chunk_size} from a {format_bytes(room)} working slice")
        capped = max(1, CHUNK_PHENOTYPE_BYTES // max(1, int(problem.individual_bytes)))
        if streaming and capped < min(chunk_size, population):
            chunk_size = capped
            reasons.append(f"chunk {capped}: at most {format_bytes(CHUNK_PHENOTYPE_BYTES)} of "
                           "phenotypes at once (a bigger chunk only adds page faults)")
    chunk_size = max(1, min(int(chunk_size), population))
    if not streaming:
        reasons.append("streaming off: every offspring of a generation is alive at once")
    return HardwarePlan(
        islands=islands, population=population, chunk_size=chunk_size, streaming=streaming,
        budget_bytes=budget_bytes, slice_bytes=slice_bytes, cores=cores, reasons=tuple(reasons),
    )

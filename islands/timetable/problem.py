"""The `timetable` problem: ITC-2007 track 3 timetabling for the island search.

Covers: the Problem protocol for CB-CTT (genome: one int32 slot per lecture, lectures
ordered by course, `slot = period * n_rooms + room`), fitness
`HARD_WEIGHT * hard_violations + soft_cost` (the competition's cost, exact), randomised
greedy construction, mutation (move, swap, Kempe chain), course-preserving crossover with
clash repair, simulated-annealing local search with delta evaluation (`improve`), sharing
the instance through shared memory (`shared_arrays` / `attach`), `describe` and `write`.

Does not cover: the tuning parameters and the cross-call cooling schedule
(`islands.timetable.settings`), the compiled loops (`islands.timetable.kernels`), the
instance and its file formats (`model`, `instance`, `solution`), the reference evaluator
(`validate`) or the evolution around it (`islands.population`, `islands.island`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from islands.errors import InputError
from islands.timetable import kernels
from islands.timetable.instance import instance_arrays, instance_from_arrays, read_ctt
from islands.timetable.model import Instance
from islands.timetable.settings import (
    DEFAULT_ADOPT_BELOW,
    DEFAULT_REHEAT_AFTER,
    CoolingSchedule,
    Neighbourhoods,
    SearchSettings,
)
from islands.timetable.solution import genome_to_entries, write_sol
from islands.timetable.trajectory import Stall, Trajectories
from islands.timetable.warm import DEFAULT_STABILITY, WARM_T_START, WarmStart

logger = logging.getLogger(__name__)
DEFAULT_T_START = 3.0

HARD_WEIGHT = 10_000
# Construction's repair phase: hard violations only (see `random`).
REPAIR_HARD_WEIGHT = 1000.0
REPAIR_TEMPERATURES = (500.0, 30.0)

def _setting(name: str, doc: str = "") -> property:
    """A read-only view of one of the search settings (`problem.settings.NAME`)."""
    return property(lambda self: getattr(self.settings, name), doc=doc or f"`settings.{name}`")


class TimetableProblem:
    """CB-CTT as a Problem. Spec: `timetable:PATH.ctt[,ls_moves=N,...]` or `PATH.ctt`.

    The spec's tuning parameters (ls_moves, t_start, t_end, ls_hard_weight, period_only,
    room_only, mutate_changes, kempe_prob, population, anneal_s, repair_moves,
    crossover_share, adopt_below, reheat_after; course_room_prob, kempe_ls_prob, mwd_prob, compact_prob in
    `Neighbourhoods`) are described in `SearchSettings` and kept, validated, in `settings`; they read as attributes too (`problem.ls_moves`, ...). `cooling` is the
    annealing temperature successive `improve()` calls continue (`CoolingSchedule`).
    """

    name = "timetable"
    target_fitness = 0.0
    feasible_below = float(HARD_WEIGHT)
    solution_suffix = ".sol"
    genome_dtype = np.dtype(np.int32)
    # improve() continues one annealing per member across calls (islands.problem).
    trajectory = True
    # Said when warm_up() takes long: a cold numba cache (the first run after install).
    warm_up_note = "Compiling the timetable kernels, first run only, about a minute"

    def __init__(
        self,
        path: str = "",
        ls_moves: int = 200_000,
        t_start: float | None = None,
        t_end: float = 0.08,
        ls_hard_weight: float = 40.0,
        period_only: float = 0.35,
        room_only: float = 0.1,
        mutate_changes: int = 3,
        kempe_prob: float = 0.3,
        population: int = 1,
        anneal_s: float | None = None,
        repair_moves: int = 300_000,
        crossover_share: float = 0.2,
        adopt_below: float = DEFAULT_ADOPT_BELOW,
        reheat_after: float = DEFAULT_REHEAT_AFTER,
        course_room_prob: float = 0.0,
        kempe_ls_prob: float = 0.0,
        mwd_prob: float = 0.0,
        compact_prob: float = 0.0,
        initial: str = "",
        stability: int | None = None,
        *,
        instance: Instance | None = None,
        warm: WarmStart | None = None,
    ) -> None:
        if instance is None:
            if not path:
                raise InputError("timetable problem needs an instance: timetable:PATH.ctt")
            instance = read_ctt(path)
        if stability is not None and not (initial or warm):
            raise InputError("timetable: stability needs an initial timetable (initial=OLD.sol)")
        if warm is None and initial:
            warm = WarmStart.read(initial, instance, DEFAULT_STABILITY if stability is None else stability)
            for line in warm.carried.skipped:
                logger.warning("initial timetable: %s", line)
        if t_start is None:
            t_start = WARM_T_START if warm is not None else DEFAULT_T_START
        self.warm = warm
        self.initial = str(initial)
        self.settings = SearchSettings(
            ls_moves=ls_moves, t_start=t_start, t_end=t_end, ls_hard_weight=ls_hard_weight,
            period_only=period_only, room_only=room_only, mutate_changes=mutate_changes,
            kempe_prob=kempe_prob, population=population, anneal_s=anneal_s,
            repair_moves=repair_moves, crossover_share=crossover_share, adopt_below=adopt_below,
            reheat_after=reheat_after,
            neighbourhoods=Neighbourhoods(
                course_room_prob=course_room_prob, kempe_ls_prob=kempe_ls_prob,
                mwd_prob=mwd_prob, compact_prob=compact_prob),
        )
        self.path = str(path)
        self.instance = instance
        self.cooling = CoolingSchedule(self.settings.t_start, self.settings.t_end, anneal_s)
        self.data = (kernels.kernel_data(instance) if warm is None else kernels.kernel_data(
            instance, warm.previous_course, warm.previous_weight))
        self.genome_shape = (instance.n_lectures,)
        dims = self.data[0]
        evaluate_bytes = 4 * (
            instance.n_courses * instance.n_periods
            + (instance.n_rooms + instance.n_curricula) * instance.n_periods
        )
        # Working memory of one genome: the search state (the largest), or evaluation's.
        self.individual_bytes = int(
            max(kernels.state_nbytes(dims), evaluate_bytes) + 2 * 4 * instance.n_lectures
        )
        self.trajectories = Trajectories()
        self.stall = Stall(self.settings.reheat_after)
        self._state = None

    ls_moves = _setting("ls_moves")
    t_start = _setting("t_start")
    t_end = _setting("t_end")
    ls_hard_weight = _setting("ls_hard_weight")
    period_only = _setting("period_only")
    room_only = _setting("room_only")
    mutate_changes = _setting("mutate_changes")
    kempe_prob = _setting("kempe_prob")
    repair_moves = _setting("repair_moves")
    crossover_share = _setting("crossover_share")
    adopt_below = _setting("adopt_below")
    reheat_after = _setting("reheat_after")
    preferred_population = _setting("population", "The preferred population per island.")

    @property
    def anneal_s(self) -> float:
        """Seconds one cooling cycle of `improve()` lasts now (0: no schedule)."""
        return self.cooling.anneal_s

    # -- shared memory ---------------------------------------------------------------
    def shared_arrays(self) -> dict[str, np.ndarray]:
        """The instance as plain arrays; `attach` rebuilds the problem from them."""
        arrays = instance_arrays(self.instance)
        if self.warm is not None:
            arrays.update(self.warm.shared_arrays())
        return arrays

    @classmethod
    def attach(cls, arrays: dict[str, np.ndarray], **params: Any) -> TimetableProblem:
        """Rebuild from `shared_arrays()` (e.g. shared-memory views) without the file."""
        instance = instance_from_arrays(arrays)
        params = dict(params)
        path = params.pop("path", "")
        warm = WarmStart.from_arrays(instance, arrays)
        if warm is not None:  # carried in the arrays: the old file is not read again
            params.pop("initial", None)
            params.pop("stability", None)
        return cls(path=path, instance=instance, warm=warm, **params)

    # -- helpers -----------------------------------------------------------------------
    def _work_state(self) -> tuple:
        if self._state is None:
            self._state = kernels.new_state(self.data[0])
        return self._state

    def _seeds(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(0, 2**31 - 1, size=n)

    def breakdown(self, genomes: np.ndarray) -> np.ndarray:
        """Per-constraint costs [n, 8] (validator order) of a batch of genomes."""
        genomes = np.ascontiguousarray(np.asarray(genomes, dtype=np.int32).reshape(-1, self.genome_shape[0]))
        out = np.zeros((len(genomes), 8), dtype=np.int64)
        kernels.evaluate_batch(genomes, self.data, out)
        return out

    # -- protocol ----------------------------------------------------------------------
    def evaluate(self, genomes: np.ndarray) -> np.ndarray:
        parts = self.breakdown(genomes)
        fitness = HARD_WEIGHT * parts[:, :4].sum(axis=1) + parts[:, 4:].sum(axis=1)
        if self.warm is not None:
            fitness += self.warm.cost(genomes)  # the search minimises soft + stability
        return fitness.astype(np.float64)

    def valid(self, genomes: np.ndarray) -> np.ndarray:
        """Every slot inside the timetable (the kernels index with slots unchecked)."""
        genomes = np.asarray(genomes)
        slots = self.instance.n_periods * self.instance.n_rooms
        rows = genomes.reshape(len(genomes), int(np.prod(genomes.shape[1:])))
        return ((rows >= 0) & (rows < slots)).all(axis=1)

    def random(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Constructed timetables; with a warm start, last night's, repaired (its
        lectures without a place go to their cheapest free slot; conflicts are left to
        the annealing, which starts cool and keeps what it can)."""
        genomes = np.zeros((n, self.genome_shape[0]), dtype=np.int32)
        state = self._work_state()
        if self.warm is not None:
            start = self.warm.start_genome()
            for i in range(n):
                kernels.load_state(start, self.data, state)
                genomes[i] = state[1]
            return genomes
        for i, seed in enumerate(self._seeds(rng, n)):
            kernels.construct(genomes[i], int(seed), self.data, state)
        if self.settings.repair_moves > 0:
            # Greedy construction leaves a few conflicts on tight instances (comp05):
            # a short annealing on the hard constraints alone (soft costs are noise at
            # these temperatures) removes most of them.
            fitness = self.evaluate(genomes)
            infeasible = np.nonzero(fitness >= HARD_WEIGHT)[0]
            if len(infeasible):
                repaired, _, _ = self.improve_with_stats(
                    genomes[infeasible], fitness[infeasible], rng, self.settings.repair_moves,
                    t_range=REPAIR_TEMPERATURES, hard_weight=REPAIR_HARD_WEIGHT,
                )
                genomes[infeasible] = repaired
        return genomes

    def mutate(self, genomes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        children = np.array(genomes, dtype=np.int32, copy=True).reshape(-1, self.genome_shape[0])
        state = self._work_state()
        for i, seed in enumerate(self._seeds(rng, len(children))):
            changes = int(rng.integers(1, self.settings.mutate_changes + 1))
            kernels.mutate_one(
                children[i], int(seed), changes, self.settings.kempe_prob, self.data, state
            )
        return children

    def crossover(
        self, parents_a: np.ndarray, parents_b: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        a = np.asarray(parents_a, dtype=np.int32).reshape(-1, self.genome_shape[0])
        b = np.asarray(parents_b, dtype=np.int32).reshape(-1, self.genome_shape[0])
        children = np.empty_like(a)
        state = self._work_state()
        for i, seed in enumerate(self._seeds(rng, len(a))):
            kernels.crossover_courses(
                a[i], b[i], int(seed), self.settings.crossover_share, self.data, state, children[i]
            )
        return children

    def warm_up(self) -> None:
        """Compile (or load from numba's cache) every kernel once, in this process.

        The coordinator calls this before starting islands: workers started with a cold
        cache would each compile for tens of seconds."""
        rng = np.random.default_rng(0)
        genomes = self.random(rng, 2)
        fitness = self.evaluate(genomes)
        self.mutate(genomes, rng)
        self.crossover(genomes[:1], genomes[1:], rng)
        self.improve(genomes, fitness, rng, ls_moves=1000)

    def set_time_budget(self, seconds: float) -> None:
        """Pace one cooling over the island's remaining time, unless anneal_s was given."""
        self.cooling.set_time_budget(seconds)

    def improve(
        self,
        genomes: np.ndarray,
        fitness: np.ndarray,
        rng: np.random.Generator,
        ls_moves: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Simulated annealing on each genome; a result is never worse than its input.

        With `anneal_s > 0` and no explicit `ls_moves`, successive calls continue one
        cooling schedule (`CoolingSchedule`) and each member's annealing goes on from the
        state its last call ended in (`Trajectories`), or from its genome where that is
        better than the trajectory found (an immigrant) and the schedule is at or below
        `adopt_below` (or at once where the trajectory has found no feasible timetable
        and the genome is one); a search stalled for `reheat_after` of the cycle
        restarts from each member's genome (its best) with a reheat (`Stall`). Else each
        call is a full anneal from the given genomes."""
        if not self.cooling.active or ls_moves is not None:
            improved, improved_fitness, _ = self.improve_with_stats(genomes, fitness, rng, ls_moves)
            return improved, improved_fitness
        genomes = np.asarray(genomes, dtype=np.int32).reshape(-1, self.genome_shape[0])
        fitness = np.asarray(fitness, dtype=np.float64).reshape(-1)
        started = time.perf_counter()
        if self.stall.due(self.cooling.cycle_s, self.cooling.left_s):
            self.cooling.reheat(self.stall.start_reheat())
            self.trajectories.forget()
        high, low = self.cooling.next_range()
        adopt = high <= self.settings.adopt_below
        starts = self.trajectories.starts(genomes, fitness, adopt=adopt, feasible_below=HARD_WEIGHT)
        end_states = np.empty_like(starts)
        improved, improved_fitness, _ = self.improve_with_stats(
            starts, None, rng, None, t_range=(high, low), end_states=end_states
        )
        self.trajectories.advance(end_states, improved_fitness)
        self.stall.record(float(improved_fitness.min()), time.perf_counter() - started, high)
        worse = improved_fitness > fitness
        improved[worse] = genomes[worse]
        improved_fitness[worse] = fitness[worse]
        self.cooling.advance(low, time.perf_counter() - started)
        return improved, improved_fitness

    def improve_with_stats(
        self,
        genomes: np.ndarray,
        fitness: np.ndarray | None,
        rng: np.random.Generator,
        ls_moves: int | None = None,
        verify_every: int = 0,
        t_range: tuple[float, float] | None = None,
        hard_weight: float | None = None,
        end_states: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`improve` plus per-genome stats [n, 6]: hard, soft, move evaluations,
        accepted moves, bookkeeping mismatches, repair ok. `end_states` [n, lectures],
        when given, receives the state each annealing ended in."""
        genomes = np.asarray(genomes, dtype=np.int32).reshape(-1, self.genome_shape[0])
        current = self.evaluate(genomes)
        settings = self.settings
        moves = settings.ls_moves if ls_moves is None else int(ls_moves)
        out = genomes.copy()
        out_fitness = current.copy()
        stats = np.zeros((len(genomes), 6), dtype=np.int64)
        state = self._work_state()
        best = np.empty(self.genome_shape[0], dtype=np.int32)
        high, low = (settings.t_start, settings.t_end) if t_range is None else t_range
        weight = settings.ls_hard_weight if hard_weight is None else float(hard_weight)
        neighbours = settings.neighbourhoods
        for i, seed in enumerate(self._seeds(rng, len(genomes))):
            kernels.anneal(
                np.ascontiguousarray(genomes[i]), int(seed), moves, high, low, settings.t_start,
                weight, float(HARD_WEIGHT), settings.period_only, settings.room_only,
                neighbours.course_room_prob, neighbours.kempe_ls_prob, neighbours.mwd_prob,
                neighbours.compact_prob, int(verify_every), self.data, state, best, stats[i],
            )
            if end_states is not None:
                end_states[i] = state[1] if stats[i, 5] else genomes[i]
            if stats[i, 5] == 0:
                continue
            value = float(HARD_WEIGHT * stats[i, 0] + stats[i, 1])
            if value <= current[i]:
                out[i] = best
                out_fitness[i] = value
        return out, out_fitness, stats

    def describe(self, genome: np.ndarray) -> dict[str, Any]:
        b = self.breakdown(genome)[0]
        return {
            "hard_violations": int(b[:4].sum()),
            "soft_cost": int(b[4:].sum()),
            "lectures": int(b[0]),
            "conflicts": int(b[1]),
            "availability": int(b[2]),
            "room_occupancy": int(b[3]),
            "room_capacity": int(b[4]),
            "min_working_days": int(b[5]),
            "curriculum_compactness": int(b[6]),
            "room_stability": int(b[7]),
            **({} if self.warm is None else self.warm.describe(genome)),
        }

    def entries(self, genome: np.ndarray) -> np.ndarray:
        """Solution entries (course, room, period) of a genome, in lecture order."""
        return genome_to_entries(genome, self.instance)

    def write(self, genome: np.ndarray, stem: Path) -> Path:
        """Write `stem.sol` in the competition format; return its path."""
        path = Path(stem).with_suffix(".sol")
        return write_sol(self.entries(genome), self.instance, path)

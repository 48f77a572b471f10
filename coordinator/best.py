"""The best keeper: the run's best genome, held in memory and written atomically.

Covers: `BestKeeper`. `offer(Improved)` publishes every island improvement, keeps the
global best (genome, fitness, island, generation), writes `best.*` through the
problem's `write` to a temporary name and renames it (never half a file), notes the
time to the first feasible solution (problems with `feasible_below`) and the largest
generation at the last improvement (for the stagnation rule). A write that fails (disk
full, I/O error) leaves the best held in memory and `pending`: `retry()` (called every
tick of the run loop, cheap while nothing is pending) writes it again with a backoff
until it lands; one warning per failure streak, a `best_write_failed` event each time.
`solution_file` names a file only while it holds the current best. `state()` /
`restore()` are the best's part of the coordinator checkpoint; `adopt()` takes a
better best found elsewhere (an island checkpoint, on resume); both score a saved
best again against the problem as it is now and refuse one outside its domain.

Does not cover: when the coordinator checkpoint is written (`coordinator.state`),
what a genome means (the problem's `describe` and `write`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coordinator.events import EventBus
from islands.errors import InputError
from islands.protocol import Improved

logger = logging.getLogger("islands.run")

RETRY_FIRST_S = 0.25  # the first retry of a failed best write; doubled up to RETRY_MAX_S
RETRY_MAX_S = 4.0
WRITING_STEM = "best-writing"


@dataclass(frozen=True)
class Refused:
    """Why a saved best is not used; `fits` False: not even its shape fits the problem."""

    why: str
    fits: bool


class BestKeeper:
    def __init__(self, problem: Any, run_dir: Path, bus: EventBus,
                 clock: Callable[[], float]) -> None:
        self.problem = problem
        self.run_dir = run_dir
        self.bus = bus
        self.clock = clock
        self.fitness = math.inf
        self.genome: np.ndarray | None = None
        self.island: int | None = None
        self.generation: int | None = None
        self.solution_file: Path | None = None
        self.time_to_feasible: float | None = None
        self.feasible_below = getattr(problem, "feasible_below", None)
        self.generation_mark = 0  # the furthest island generation when the best last improved
        self.pending = False  # the best in memory is not (yet) the one in `best.*`
        self.failures = 0  # failed writes in the current streak
        self.retry_at = 0.0  # clock time of the next retry while pending

    def offer(self, message: Improved, generation_mark: int = 0) -> bool:
        """Take an island's improvement; True if it is a new global best."""
        improves = message.fitness < self.fitness
        fields: dict[str, Any] = {"island": message.island, "generation": message.generation,
                                  "fitness": message.fitness, "global": improves}
        if not improves:
            self.bus.publish("improved", **fields)
            return False
        try:
            genome = np.frombuffer(message.genome, dtype=np.dtype(message.dtype)).reshape(
                tuple(message.shape)).astype(self.problem.genome_dtype)
        except (TypeError, ValueError) as error:
            self.bus.publish("bad_message", island=message.island, error=f"best genome: {error}")
            return False
        if genome.shape != tuple(np.atleast_1d(self.problem.genome_shape)):
            self.bus.publish("bad_message", island=message.island, error="best genome shape")
            return False
        self.fitness, self.genome = message.fitness, genome.copy()
        self.island, self.generation = message.island, message.generation
        self.generation_mark = generation_mark
        self.bus.publish("improved", **fields, **self._costs())
        self.pending = True  # written now, or by `retry` once a failed write's backoff is over
        self.retry()
        if (self.feasible_below is not None and self.time_to_feasible is None
                and message.fitness < self.feasible_below):
            self.time_to_feasible = self.clock()
            logger.info("[GA] Feasible solution found after %.1fs (fitness=%.6g)",
                        self.time_to_feasible, message.fitness)
            self.bus.publish("feasible", island=message.island, fitness=message.fitness)
        return True

    def _costs(self) -> dict[str, Any]:
        """Hard and soft costs where the problem describes them (timetables)."""
        if self.genome is None or not hasattr(self.problem, "describe"):
            return {}
        try:
            described = self.problem.describe(self.genome)
        except Exception:  # an event without costs beats no event
            return {}
        return {key: described[key] for key in ("hard_violations", "soft_cost") if key in described}

    def write(self) -> bool:
        """`best.*` via `problem.write`, to a temp name then renamed: never half a file.

        True once the current best is on disk. A failure keeps it pending (see `retry`)
        and removes the half-written temp file; the previous `best.*` stays as it was.
        """
        if self.genome is None:
            return True
        self.pending = True
        try:
            written = Path(self.problem.write(self.genome, self.run_dir / WRITING_STEM))
            final = self.run_dir / f"best{written.suffix}"
            os.replace(written, final)
        except Exception as error:  # OSError from the disk; a problem's own write may wrap it
            self._failed(error)
            return False
        self.solution_file, self.pending = final, False
        if self.failures:
            logger.info("[GA] The best solution (fitness=%.6g) is written to %s after %d failed "
                        "attempt(s)", self.fitness, final, self.failures)
            self.bus.publish("best_written", file=str(final), fitness=self.fitness,
                             failures=self.failures)
        self.failures = 0
        return True

    def _failed(self, error: BaseException) -> None:
        for leftover in self.run_dir.glob(f"{WRITING_STEM}*"):
            with contextlib.suppress(OSError):
                leftover.unlink()
        self.failures += 1
        self.retry_at = self.clock() + min(RETRY_FIRST_S * 2 ** (self.failures - 1), RETRY_MAX_S)
        if self.failures == 1:  # once per failure streak in the log; every failure an event
            logger.warning("[GA] Could not write the best solution (%s); it is kept in memory "
                           "and written again until it lands", error)
        self.bus.publish("best_write_failed", error=str(error), failures=self.failures,
                         fitness=self.fitness)

    def retry(self, *, force: bool = False) -> bool:
        """Write a pending best again once its backoff is over (`force`: now); True if on disk."""
        if not self.pending:
            return True
        if not force and self.clock() < self.retry_at:
            return False
        return self.write()

    @property
    def found(self) -> bool:
        return self.genome is not None

    def describe(self) -> dict[str, Any]:
        if self.genome is None:
            return {}
        try:
            return dict(self.problem.describe(self.genome))
        except Exception as error:  # a summary without describe() beats no summary
            logger.warning("[GA] describe() failed: %s", error)
            return {}

    # -- checkpoint ------------------------------------------------------------------------
    def state(self) -> dict[str, Any] | None:
        if self.genome is None:
            return None
        genome = np.ascontiguousarray(self.genome)
        return {"genome": genome.tobytes(), "dtype": genome.dtype.str, "shape": list(genome.shape),
                "fitness": float(self.fitness), "island": self.island,
                "generation": self.generation}

    def restore(self, best: Any, source: Path, problem_text: str, *, rescore: bool = True) -> None:
        """Take the coordinator checkpoint's best, scored against the problem as it is now.

        InputError if it does not fit the problem (another instance: nothing of the run
        fits it); one outside the problem's domain (a damaged file) is left out with a
        warning: the island checkpoints may hold the best again.
        """
        if not best:
            return
        checked = self._checked(best, source, rescore)
        if isinstance(checked, Refused):
            if not checked.fits:
                raise InputError(f"checkpoint {source}: best solution {checked.why} "
                                 f"(problem {problem_text})")
            logger.warning("[GA] %s: best solution %s; not used", source, checked.why)
            return
        self._take(best, *checked)

    def adopt(self, best: dict[str, Any], source: Path, *, rescore: bool = True) -> bool:
        """Take `best` (a `state()` map, e.g. from an island checkpoint) if it is better.

        One that does not fit the problem is skipped with a warning: a resume must not be
        refused for an island's best when the coordinator checkpoint has its own.
        """
        checked = self._checked(best, source, rescore)
        if isinstance(checked, Refused):
            logger.warning("[GA] %s: best genome %s; not used", source, checked.why)
            return False
        if not checked[1] < self.fitness:
            return False
        self._take(best, *checked)
        return True

    def _checked(self, best: dict[str, Any], source: Path,
                 rescore: bool) -> tuple[np.ndarray, float] | Refused:
        """(genome, fitness now) from a saved best, or why it cannot be used.

        Re-evaluated, not trusted: the instance may have been edited since (the saved
        fitness would then be a lie in the summary) or the file damaged. `rescore=False`
        (a stop during the warm-up: evaluating would wait for the compile) trusts it.
        """
        try:
            genome = np.frombuffer(best["genome"], dtype=np.dtype(best["dtype"])).reshape(
                tuple(best["shape"])).astype(self.problem.genome_dtype)
            saved = float(best["fitness"])
        except (KeyError, TypeError, ValueError) as error:
            return Refused(f"is malformed ({error})", fits=False)
        if tuple(genome.shape) != tuple(np.atleast_1d(self.problem.genome_shape)):
            return Refused("does not fit the problem", fits=False)
        if not self.problem.valid(genome[None])[0]:
            return Refused("lies outside the problem's domain (damaged)", fits=True)
        fitness = float(self.problem.evaluate(genome[None])[0]) if rescore else saved
        if not math.isclose(fitness, saved, rel_tol=1e-9, abs_tol=1e-12):
            logger.warning("[GA] %s: the best solution saved with fitness %.6g scores %.6g now "
                           "(the instance changed since, or the file was altered); %.6g is used",
                           source, saved, fitness, fitness)
        return genome.copy(), fitness

    def _take(self, best: dict[str, Any], genome: np.ndarray, fitness: float) -> None:
        self.genome, self.fitness = genome, fitness
        self.island, self.generation = best.get("island"), best.get("generation")
        self.solution_file, self.pending = None, True  # `best.*` is rewritten from it at start


__all__ = ["BestKeeper"]

"""Island parameters: what travels from the config to the worker to the Island.

Covers: `WorkerSpec` (everything one island worker is given, picklable, sent once at
spawn), `MigrationSettings` (its migration part), `IslandParams` (population bounds, streaming and chunk size, fitness-cache
bounds, operator parameters), its range checks, and its form inside an island
checkpoint (`checkpoint_config()` / `from_checkpoint()`, the `config` map of
`Island.state()`, unchanged on disk).

Does not cover: choosing the values (the coordinator's config and auto-configuration),
using them (`islands.island.Island`, `islands.population.StreamingPopulation`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from islands.errors import InputError
from islands.targets import ProblemObject

OPERATOR_PARAMS = ("elite_count", "tournament_size", "crossover_rate", "improve_count")


@dataclass(frozen=True)
class IslandParams:
    """How one island evolves. `max_population` None means the initial population.

    `cache_entries=0` (or `cache_bytes=0`) turns the fitness cache off; both None means
    the island's default bound (an unbounded cache is what froze the old system).
    """

    population: int
    chunk_size: int | None = None
    streaming: bool = True
    min_population: int = 4
    max_population: int | None = None
    cache_entries: int | None = 10_000
    cache_bytes: int | None = None
    elite_count: int = 1
    tournament_size: int = 2
    crossover_rate: float = 0.9
    improve_count: int | None = None

    def __post_init__(self) -> None:
        if int(self.population) < 1:
            raise InputError(f"population size must be at least 1, got {self.population}")
        if int(self.min_population) < 1:
            raise InputError(f"min_population must be at least 1, got {self.min_population}")
        if self.max_population is not None and int(self.max_population) < min(
                int(self.min_population), int(self.population)):
            raise InputError(f"max_population {self.max_population} is below the minimum population")

    @property
    def population_cap(self) -> int:
        """The most this island may grow to."""
        return int(self.population if self.max_population is None else self.max_population)

    def operator_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in OPERATOR_PARAMS}

    def replace(self, **changes: Any) -> IslandParams:
        return dataclasses.replace(self, **changes)

    def checkpoint_config(self) -> dict[str, Any]:
        """The `config` map of an island checkpoint (its format predates this class)."""
        return {
            "streaming": bool(self.streaming),
            "cache_entries": self.cache_entries,
            "cache_bytes": self.cache_bytes,
            "min_population": int(self.min_population),
            "max_population": self.population_cap,
            "operator_params": self.operator_params(),
        }

    @classmethod
    def from_checkpoint(cls, config: dict[str, Any], *, population: int,
                        chunk_size: int | None) -> IslandParams:
        """Parameters saved by `checkpoint_config()`; KeyError/TypeError if malformed."""
        operators = dict(config["operator_params"])
        unknown = sorted(set(operators) - set(OPERATOR_PARAMS))
        if unknown:
            raise InputError(f"unknown island parameter {unknown[0]!r} in checkpoint")
        return cls(
            population=int(population),
            chunk_size=chunk_size,
            streaming=bool(config["streaming"]),
            min_population=int(config["min_population"]),
            max_population=int(config["max_population"]),
            cache_entries=config["cache_entries"],
            cache_bytes=config["cache_bytes"],
            **operators,
        )


@dataclass(frozen=True)
class MigrationSettings:
    """How an island migrates: to its topology's targets, `migrants` elites every `interval`
    generations; with `sync` it waits (up to `sync_timeout` s) for its sources in lockstep.
    Without `sync`, at most one migration per `period_s` seconds: messages per unit of
    time, not per generation (a cheap problem runs thousands of generations a second)."""

    topology: str = "ring"
    interval: int = 5
    migrants: int = 2
    sync: bool = False
    sync_timeout: float = 60.0
    period_s: float = 0.0


@dataclass
class WorkerSpec:
    """Everything one island needs (picklable; sent once at spawn)."""

    island_id: int
    n_islands: int
    run_id: str
    problem_spec: str | ProblemObject  # a spec, or a class/instance from the Python API
    params: IslandParams
    checkpoint_path: str
    run_seed: int = 0
    migration: MigrationSettings = field(default_factory=MigrationSettings)
    max_generations: int | None = None
    checkpoint_interval: float = 10.0  # seconds between periodic checkpoints
    resume_from: str | None = None
    # When the run's time limit ends, as time.time(): the island paces its search by it
    # from when it starts (spawning and imports are not its time).
    time_limit_at: float | None = None
    # source -> last generation it sent migrants of while this island was away (no wait for them)
    sync_floor: dict[int, int] = field(default_factory=dict)
    telemetry_s: float = 0.25  # at most one Telemetry per this many seconds (plus forced ones)
    best_report_s: float = 0.25


__all__ = ["OPERATOR_PARAMS", "IslandParams", "MigrationSettings", "WorkerSpec"]

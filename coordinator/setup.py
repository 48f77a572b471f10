"""Putting a run together: from a resolved config to a `Run` whose parts all exist.

Covers: `RunClock` (run time: starts after the problem's one-time warm-up, and counts
the time a resumed run had already spent), `RunContext` (what every part may read:
config, plan, problem, run id, resume state) and `build_run`: build the problem, plan
islands inside the budget (a budget that fits nothing fails before anything is
created), open and lock the run directory, start the event stream, warm the problem
up (in a helper thread, so that a signal's stop request ends the wait at once: the
warm-up is left to finish in the background and no island starts), share its arrays
through the backend, and wire the MemoryManager, supervisor, router, pressure controller, best keeper and checkpoint writer. What was made is
undone if a later step fails.

Does not cover: running it (`coordinator.run`), the parts themselves (their modules).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from coordinator.autoconfig import HardwarePlan, plan_run
from coordinator.backend import Backend
from coordinator.best import BestKeeper
from coordinator.config import RunConfig, to_builtins, to_toml, with_flat
from coordinator.events import EventBus, EventLog
from coordinator.local import LocalBackend
from coordinator.observers import SummaryRecorder
from coordinator.pressure import PressureController
from coordinator.router import MigrantRouter
from coordinator.state import (
    CheckpointWriter,
    RunDirectory,
    check_island_checkpoints,
    default_run_dir,
)
from coordinator.supervisor import Supervisor
from coordinator.watch import RunWatch
from islands.errors import InputError
from islands.params import IslandParams, MigrationSettings, WorkerSpec
from islands.problem import build_problem, parse_spec
from islands.targets import ProblemObject
from islands.topology import Topology
from memory import MemoryManager, Thresholds
from memory.budget import compute_budget
from memory.probe import MemoryProbe, own_memory

logger = logging.getLogger("islands.run")
WARM_UP_QUIET_S = 1.0  # one-time work longer than this is announced before it goes on


class RunClock:
    """Seconds of run time; a resumed run starts at the time it had already spent."""

    def __init__(self, prior_elapsed: float = 0.0) -> None:
        self.started = time.monotonic() - prior_elapsed

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def skip(self, seconds: float) -> None:
        """Leave `seconds` out of the run time (one-time work such as compiling kernels)."""
        self.started += seconds


@dataclass
class RunContext:
    config: RunConfig
    plan: HardwarePlan
    problem: Any
    problem_text: str
    run_id: str
    clock: RunClock
    resume_state: dict[str, Any] | None = None
    stop: dict[str, Any] = field(default_factory=dict)  # stop_requested / stopped_by / stopped_at
    started_at: float = field(default_factory=time.time)  # wall clock, for the summary
    problem_object: ProblemObject | None = None  # a class or instance from the Python API


@dataclass
class Parts:
    """The coordinator's parts of one run, wired."""

    directory: RunDirectory
    bus: EventBus
    event_log: EventLog
    backend: Backend
    manager: MemoryManager
    supervisor: Supervisor
    router: MigrantRouter
    pressure: PressureController
    best: BestKeeper
    checkpoints: CheckpointWriter
    recorder: SummaryRecorder
    watch: RunWatch | None = None  # run.log, progress or the live view, report, history

    def close_records(self, summary: dict[str, Any] | None = None) -> None:
        """Close events.jsonl, then (with the run's summary) build the report and record
        the history; run.log is closed last."""
        self.event_log.close()
        if self.watch is not None:
            if summary is None:
                self.watch.close_log()
            else:
                self.watch.finish(summary)


def plan(config: RunConfig, problem: Any, arrays: dict[str, Any], cores: int | None) -> HardwarePlan:
    shared_bytes = sum(int(np.asarray(a).nbytes) for a in arrays.values())
    return plan_run(
        problem=problem, budget_bytes=compute_budget(config.memory.budget),
        coordinator_bytes=own_memory().pss, shared_bytes=shared_bytes, islands=config.islands,
        population=config.search.population, chunk_size=config.memory.chunk_size, streaming=config.memory.streaming,
        min_population=config.memory.min_population,
        cores=cores)


def build_run(config: RunConfig, *, probe: MemoryProbe | None = None,
              backend: Backend | None = None, cores: int | None = None,
              resume_state: dict[str, Any] | None = None,
              stop: dict[str, Any] | None = None,
              require_limit: bool = False,
              problem_object: ProblemObject | None = None) -> tuple[RunContext, Parts]:
    """Everything a run needs, created in order (see the module docstring); `stop` is the
    run's stop map (a `GracefulStop` writes into it); `require_limit` refuses a config with
    no stop criterion (after the spec and the budget were checked: their errors first);
    `problem_object` (the Python API) is the problem instead of `config.problem`'s spec."""
    if problem_object is not None:
        config.problem = problem_object.text()
        problem, problem_text = build_problem(problem_object), config.problem
    else:
        problem = build_problem(config.problem)
        problem_text = str(parse_spec(config.problem))
    if resume_state:
        check_island_checkpoints(problem, Path(config.out or ".") / "checkpoint")
    arrays = problem.shared_arrays()
    hardware = plan(config, problem, arrays, cores)
    if require_limit:
        check_stop_criterion(config)
    try:
        thresholds = Thresholds(**config.memory.thresholds) if config.memory.thresholds else None
    except (TypeError, ValueError) as error:
        raise InputError(f"bad thresholds: {error}") from None
    run_id = str(resume_state["run_id"]) if resume_state else uuid.uuid4().hex[:12]
    clock = RunClock(float(resume_state.get("elapsed_s", 0.0)) if resume_state else 0.0)
    context = RunContext(config, hardware, problem, problem_text, run_id, clock, resume_state,
                         {} if stop is None else stop, problem_object=problem_object)
    if resume_state is None:
        config.workdir = os.getcwd()
    directory = RunDirectory(Path(config.out or default_run_dir(problem_text)))
    directory.open(to_toml(resolved_config(config, hardware)), fresh=resume_state is None,
                   overwrite=config.overwrite)
    bus = EventBus(clock.elapsed)
    event_log = EventLog(directory.path / "events.jsonl")
    bus.subscribe(event_log)
    watch = RunWatch(config, directory.path, bus, hardware.islands)
    if backend is None and config.backend == "ray":
        from coordinator.ray_backend import RayBackend  # lazily: local runs never import ray
        backend = RayBackend(address=config.address, slice_bytes=hardware.slice_bytes,
                             budget=config.memory.budget,
                             cpus=hardware.islands)
    backend = backend if backend is not None else LocalBackend(probe, config.start_method)
    try:
        logger.info(hardware.log_line())
        for reason in hardware.reasons:
            logger.debug("[GA] %s", reason)
        _warm_up(problem, clock, context.stop)
        backend.share(arrays)
        del arrays
        parts = _wire(context, directory, bus, event_log, backend, thresholds)
        parts.watch = watch
    except BaseException:
        backend.close()
        event_log.close()
        watch.close_log()
        directory.close()
        raise
    return context, parts


def resolved_config(config: RunConfig, hardware: HardwarePlan) -> RunConfig:
    """The config with what auto-configuration chose written in, for RUN_DIR/config.toml:
    `--config RUN_DIR/config.toml` repeats the run (give another `--out`)."""
    return with_flat(config, islands=hardware.islands, population=hardware.population,
                     chunk_size=hardware.chunk_size, streaming=hardware.streaming,
                     memory_budget=str(hardware.budget_bytes), overwrite=False)


def check_stop_criterion(config: RunConfig) -> None:
    """InputError if nothing but a signal would end the run (an unattended job would hang)."""
    limits = (config.stop.generations, config.stop.time_limit, config.stop.evaluations, config.stop.stagnation)
    if all(limit is None for limit in limits):
        raise InputError("no stop criterion: give --time-limit S, --generations G, "
                         "--evaluations E or --stagnation G (a target alone may never be "
                         "reached; a nightly job wants --time-limit)")


def _warm_up(problem: Any, clock: RunClock, stop: dict[str, Any]) -> None:
    started = time.monotonic()
    failure: list[BaseException] = []

    def warm() -> None:
        try:
            problem.warm_up()
        except BaseException as error:  # raised again in the coordinator's thread
            failure.append(error)

    # A cold compile takes a minute and cannot be interrupted; a stop must not wait for it.
    worker = threading.Thread(target=warm, name="warm-up", daemon=True)
    worker.start()
    worker.join(WARM_UP_QUIET_S)  # a warm kernel cache loads in well under a second
    if worker.is_alive() and not stop.get("stop_requested"):
        logger.info("[GA] %s (the time limit starts after it)",
                    getattr(getattr(problem, "inner", problem), "warm_up_note", None)
                    or "Warming the problem up")
    while worker.is_alive() and not stop.get("stop_requested"):
        worker.join(0.1)
    if failure:
        raise failure[0]
    if worker.is_alive():
        logger.info("[GA] Stopped during the warm-up; no island was started")
    warm_up_s = time.monotonic() - started
    # A one-time compilation (first run after install) must not eat the search's time limit.
    clock.skip(warm_up_s)
    if warm_up_s > 1.0:
        logger.info("[GA] Problem warmed up in %.1fs (compiled kernels are cached for the "
                    "islands and later runs; the time limit starts now)", warm_up_s)


def _wire(context: RunContext, directory: RunDirectory, bus: EventBus, event_log: EventLog,
          backend: Backend, thresholds: Thresholds | None) -> Parts:
    config, hardware = context.config, context.plan
    manager = MemoryManager(hardware.budget_bytes, n_islands=hardware.islands,
                            interval=config.memory.monitor_interval, thresholds=thresholds)
    for island in range(hardware.islands):
        manager.set_slice(island, hardware.slice_bytes)
    # The closures below read `parts`, assigned before any of them is called.
    supervisor = Supervisor(backend, bus, hardware.islands,
                            lambda island, resume: worker_spec(context, parts, island, resume),
                            time.monotonic)
    router = MigrantRouter(Topology(config.search.topology, hardware.islands, config.seed), backend, bus,
                           lambda island: supervisor.records[island].live, time.monotonic)
    supervisor.on_gone.append(router.source_gone)
    best = BestKeeper(context.problem, directory.path, bus, context.clock.elapsed)
    pressure = PressureController(
        manager, backend, supervisor, bus, time.monotonic, interval=config.memory.monitor_interval,
        min_population=min(config.memory.min_population, hardware.population),
        target_population=hardware.population, best_island=lambda: best.island)
    supervisor.on_gone.append(lambda island, _generation: pressure.commands.forget(island))
    supervisor.defer_restart = pressure.defer_restart
    recorder = SummaryRecorder(hardware.islands, time.monotonic)
    bus.subscribe(recorder)
    parts = Parts(directory, bus, event_log, backend, manager, supervisor, router, pressure, best,
                  CheckpointWriter(directory.checkpoint_path, config.checkpoint_interval, bus,
                                   lambda: checkpoint_state(context, parts), time.monotonic),
                  recorder)
    return parts


def worker_spec(context: RunContext, parts: Parts, island: int, resume: bool) -> WorkerSpec:
    """What island `island` needs to start (from its checkpoint when `resume` and one exists)."""
    config, hardware = context.config, context.plan
    checkpoint = parts.directory.island_checkpoint(island)
    return WorkerSpec(
        island_id=island, n_islands=hardware.islands, run_id=context.run_id,
        problem_spec=context.problem_object or config.problem or "",
        params=IslandParams(population=hardware.population, chunk_size=hardware.chunk_size,
                            streaming=hardware.streaming,
                            min_population=min(config.memory.min_population, hardware.population),
                            max_population=hardware.population,
                            cache_entries=config.memory.cache_entries,
                            tournament_size=config.search.tournament_size,
                            crossover_rate=config.search.crossover_rate,
                            elite_count=config.search.elite_count),
        checkpoint_path=str(checkpoint), run_seed=config.seed,
        migration=MigrationSettings(config.search.topology, config.search.migration_interval, config.search.migrants,
                                    config.search.sync, config.search.sync_timeout,
                                    config.search.migration_period),
        max_generations=config.stop.generations,
        checkpoint_interval=config.checkpoint_interval,
        resume_from=str(checkpoint) if resume and checkpoint.exists() else None,
        time_limit_at=(None if config.stop.time_limit is None else time.time()
                       + max(config.stop.time_limit - context.clock.elapsed(), 0.0)),
        sync_floor=parts.router.sync_floor(island) if resume else {},
    )


def checkpoint_state(context: RunContext, parts: Parts) -> dict[str, Any]:
    """The coordinator checkpoint: what `islands resume` needs, as msgpack-able values."""
    records = parts.supervisor.records.values()
    hardware = context.plan
    return {
        "kind": "coordinator",
        "run_id": context.run_id,
        "config": to_builtins(context.config),
        "plan": {"islands": hardware.islands, "population": hardware.population,
                 "chunk_size": hardware.chunk_size, "streaming": hardware.streaming},
        "best": parts.best.state(),
        "islands": [{"island": r.island, "state": str(r.state), "generation": r.generation,
                     "evaluations": r.evaluations, "failures": r.failures,
                     "finished": r.finished} for r in records],
        "failed_islands": sorted(parts.supervisor.failed_islands),
        "elapsed_s": round(context.clock.elapsed(), 3),
        "evaluations": sum(r.evaluations for r in records),
        "events_offset": parts.event_log.offset(),
        "stopped_by": context.stop.get("stopped_by"),
        "written_at": time.time(),
    }


__all__ = ["Parts", "RunClock", "RunContext", "build_run", "checkpoint_state", "worker_spec"]

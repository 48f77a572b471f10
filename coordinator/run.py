"""The run loop: one `islands run` from resolved config to summary.

Covers: `execute_run(config) -> dict` (the summary) and the `Run` object behind it.
It creates the run directory (`config.toml`, `events.jsonl`, `checkpoint/`, `best.*`,
`summary.json`), sweeps shared-memory segments of dead runs, puts the problem's
read-only arrays into shared memory, starts the MemoryManager and its monitor thread,
plans islands (`coordinator.autoconfig`), spawns them (`coordinator.local`), routes
migrants along the topology, applies the pressure policy (`coordinator.policy`) one
action at a time (an action is in flight until its ack and one fresh memory sample),
restarts hibernated or terminated islands when pressure allows, notices dead workers
through their process sentinels and restarts them from their last checkpoint (after
MAX_FAILURES crashes of one island the run goes on without it), writes the best
solution the moment it improves (to a temp name, then renamed), keeps the coordinator
checkpoint (`checkpoint/coordinator.msgpack`: config, run id, plan, best, per-island
counts, elapsed time; at start, on each new best, every `checkpoint_interval` seconds,
on hibernation and at the end), and stops on generations, time limit, evaluations,
target fitness, stagnation or a signal. Cleanup (workers stopped, shared memory
unlinked) happens on every way out. `load_resume()` + `execute_run(resume_state=...)`
continue a stopped or crashed run (`islands resume`); docs/reliability.md tells what
each fault does.

Does not cover: the command line (`coordinator.cli`), config resolution
(`coordinator.config`), evolution and the worker loop (`islands`), measuring memory
and the ledger (`memory`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import queue
import re
import signal
import threading
import time
import uuid
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from coordinator.autoconfig import HardwarePlan, plan_run
from coordinator.config import RunConfig
from coordinator.local import LocalBackend, WorkerHandle
from coordinator.policy import ACTIVE_STATES, Action, ActionKind, decide
from islands import checkpoint as checkpoint_io
from islands.errors import InputError
from islands.migration import neighbours
from islands.problem import build_problem, parse_spec
from islands.worker import WorkerSpec
from memory import MemoryManager, PressureLevel, Thresholds
from memory.budget import compute_budget, format_bytes
from memory.shared import Command, IslandState, SharedArray, sweep_dead_segments

logger = logging.getLogger("islands.run")

COMMAND_OF_ACTION = {
    ActionKind.CLEAR_CACHE: Command.CLEAR_CACHE,
    ActionKind.PAUSE_GROWTH: Command.PAUSE_GROWTH,
    ActionKind.RESUME_GROWTH: Command.RESUME_GROWTH,
    ActionKind.SHRINK: Command.SHRINK,
    ActionKind.GROW: Command.GROW,
    ActionKind.HIBERNATE: Command.HIBERNATE,
}
TICK_S = 0.1
PROGRESS_LOG_S = 1.0
STOP_GRACE_S = 4.0  # a graceful stop (Ctrl-C, SIGTERM) must end within about 5 s
COMMAND_TIMEOUT_S = 120.0
MIGRATION_EVENT_S = 5.0
MAX_FAILURES = 3  # crashes of one island before the run goes on without it
COORDINATOR_CHECKPOINT = "coordinator.msgpack"
# Stop reasons after which `islands resume` has nothing left to do (unless given a new limit).
FINISHED_REASONS = ("generations", "finished", "target", "evaluations", "stagnation",
                    "time_limit", "failed")


def default_run_dir(problem_text: str, root: str | Path = "runs") -> Path:
    """`runs/<timestamp>-<problem>`, made unique if that exists."""
    name = re.sub(r"[^A-Za-z0-9_.=-]+", "-", problem_text.split(":")[0].split("/")[-1]) or "run"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{stamp}-{name}"
    candidate, counter = base, 1
    while candidate.exists():
        counter += 1
        candidate = Path(f"{base}-{counter}")
    return candidate


class Run:
    """State of one run; `execute()` does it all and returns the summary."""

    def __init__(
        self,
        config: RunConfig,
        *,
        probe: Any = None,
        run_dir: Path | None = None,
        cores: int | None = None,
        resume_state: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.probe = probe
        self.cores = cores
        self.problem = build_problem(config.problem)
        self.problem_text = str(parse_spec(config.problem))
        self.run_dir = Path(run_dir or config.out or default_run_dir(self.problem_text))
        self.resume_state = resume_state
        self.run_id = str(resume_state["run_id"]) if resume_state else uuid.uuid4().hex[:12]
        self.backend = LocalBackend()
        self.handles: dict[int, WorkerHandle] = {}
        self.shared: dict[str, SharedArray] = {}
        self.manager: MemoryManager | None = None
        self.plan: HardwarePlan | None = None
        self.started = time.monotonic()
        self.events_file: Any = None
        self.pressure_events: list[dict[str, Any]] = []
        self.level_changes: queue.Queue = queue.Queue()
        self.policy_level = PressureLevel.NORMAL
        self.command_queues: dict[int, deque[Action]] = {}
        self.outstanding: dict[int, tuple[int, Action, float]] = {}
        self.sample_mark = -1
        self.shrink_on_restart: set[int] = set()
        self.last_migration_event = time.monotonic()
        self.last_migration_totals: dict[str, int] = {}
        self.last_action_at = 0.0
        self.best_fitness = math.inf
        self.best_island: int | None = None
        self.best_generation_mark = 0
        self.solution_file: Path | None = None
        self.time_to_feasible: float | None = None
        self.feasible_below = getattr(self.problem, "feasible_below", None)
        self.failed_islands: list[int] = []
        self.migration_totals: dict[int, dict[str, int]] = {}
        self.routed = 0
        self.unroutable = 0
        self.stop_requested: str | None = None
        self.last_progress: dict[int, tuple[float, int]] = {}
        self.target = config.target if config.target is not None else getattr(
            self.problem, "target_fitness", None)
        self.failures: dict[int, int] = {}
        self.error_texts: set[str] = set()
        self.best_genome: np.ndarray | None = None
        self.best_generation: int | None = None
        self.checkpoint_path = self.run_dir / "checkpoint" / COORDINATOR_CHECKPOINT
        self.last_checkpoint = time.monotonic()
        self.checkpoint_failures = 0
        self.stopped_by: str | None = None
        self.evolving_islands: set[int] = set()
        self.evolving_since: float | None = None
        self.stopped_at: float | None = None
        self.memory_of: dict[int, tuple[int, int]] = {}
        self.peak_population_bytes = 0
        self.peak_cache_bytes = 0
        self.prior_elapsed = 0.0
        if resume_state:
            self.prior_elapsed = float(resume_state.get("elapsed_s", 0.0))
            # The time limit counts the time already spent.
            self.started = time.monotonic() - self.prior_elapsed
            self._restore_best(resume_state.get("best"))

    # -- events -------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def event(self, kind: str, **fields: Any) -> None:
        record = {"t": round(self.elapsed(), 3), "event": kind, **fields}
        if self.events_file is not None:
            try:
                self.events_file.write(json.dumps(record, default=str) + "\n")
                self.events_file.flush()
            except OSError as error:  # a full disk must not stop the run
                logger.debug("[GA] Could not write event %s: %s", kind, error)

    def pressure_event(self, level: PressureLevel, action: str, island: int | None) -> None:
        self.pressure_events.append(
            {"t": round(self.elapsed(), 3), "level": str(level), "action": action, "island": island}
        )

    # -- checkpoints --------------------------------------------------------------
    def _restore_best(self, best: Any) -> None:
        if not best:
            return
        try:
            genome = np.frombuffer(best["genome"], dtype=np.dtype(best["dtype"])).reshape(
                tuple(best["shape"])).astype(self.problem.genome_dtype)
            fitness = float(best["fitness"])
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(f"checkpoint {self.checkpoint_path}: best solution is malformed "
                             f"({error})") from None
        if tuple(genome.shape) != tuple(np.atleast_1d(self.problem.genome_shape)):
            raise InputError(f"checkpoint {self.checkpoint_path}: best solution does not fit "
                             f"problem {self.problem_text}")
        self.best_genome = genome.copy()
        self.best_fitness = fitness
        self.best_island = best.get("island")
        self.best_generation = best.get("generation")

    def coordinator_state(self) -> dict[str, Any]:
        """What `islands resume` needs, as msgpack-able values."""
        rows = self.manager.ledger.snapshot() if self.manager is not None else []
        islands = []
        for island, row in enumerate(rows):
            handle = self.handles.get(island)
            islands.append({
                "island": island,
                "state": IslandState(int(row["state"])).name.lower(),
                "generation": int(row["generation"]),
                "evaluations": int(row["evaluations"]),
                "failures": self.failures.get(island, 0),
                "finished": None if handle is None else handle.finished,
            })
        best = None
        if self.best_genome is not None:
            genome = np.ascontiguousarray(self.best_genome)
            best = {"genome": genome.tobytes(), "dtype": genome.dtype.str,
                    "shape": list(genome.shape), "fitness": float(self.best_fitness),
                    "island": self.best_island, "generation": self.best_generation}
        plan = None if self.plan is None else {
            "islands": self.plan.islands, "population": self.plan.population,
            "chunk_size": self.plan.chunk_size, "streaming": self.plan.streaming}
        return {
            "kind": "coordinator",
            "run_id": self.run_id,
            "config": dataclasses.asdict(self.config),
            "plan": plan,
            "best": best,
            "islands": islands,
            "failed_islands": sorted(self.failed_islands),
            "elapsed_s": round(self.elapsed(), 3),
            "evaluations": sum(int(row["evaluations"]) for row in rows),
            "events_offset": self.events_file.tell() if self.events_file is not None else 0,
            "stopped_by": self.stopped_by,
            "written_at": time.time(),
            # Who writes this run: `islands resume` refuses while that process lives.
            "pid": os.getpid(),
            "pid_started": _process_started(os.getpid()),
        }

    def write_checkpoint(self, *, durable: bool = True) -> bool:
        """Save the coordinator's state atomically; a failed write keeps the previous file.

        `durable=False` (each new best) skips the fsync: it survives a killed process,
        and the periodic durable write follows within `checkpoint_interval` seconds.
        """
        if durable:
            self.last_checkpoint = time.monotonic()
        try:
            checkpoint_io.save_state(self.checkpoint_path, self.coordinator_state(),
                                     durable=durable)
        except OSError as error:
            self.checkpoint_failures += 1
            # Once per failure streak in the log; every failure in events.jsonl.
            if self.checkpoint_failures == 1:
                logger.warning("[GA] Could not write the checkpoint %s (%s); the previous one "
                               "is kept and the run goes on", self.checkpoint_path, error)
            self.event("checkpoint_failed", file=str(self.checkpoint_path), error=str(error))
            return False
        self.checkpoint_failures = 0
        return True

    def maybe_checkpoint(self) -> None:
        if time.monotonic() - self.last_checkpoint >= self.config.checkpoint_interval:
            self.write_checkpoint()

    # -- set-up -------------------------------------------------------------------
    def _set_up(self) -> None:
        config = self.config
        # Plan first: a budget that fits nothing fails before anything is created.
        arrays = self.problem.shared_arrays()
        shared_bytes = sum(int(np.asarray(a).nbytes) for a in arrays.values())
        budget = compute_budget(config.memory_budget)
        self.plan = plan_run(
            problem=self.problem, budget_bytes=budget, coordinator_bytes=_own_pss(),
            shared_bytes=shared_bytes, islands=config.islands, population=config.population,
            chunk_size=config.chunk_size, streaming=config.streaming, cores=self.cores,
        )
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "checkpoint").mkdir(exist_ok=True)
            (self.run_dir / "config.toml").write_text(config.to_toml())
        except OSError as error:
            raise InputError(f"cannot use run directory {self.run_dir}: {error.strerror}") from None
        self.events_file = open(self.run_dir / "events.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        logger.info(self.plan.log_line())
        warm_up_started = time.monotonic()
        self.problem.warm_up()
        warm_up_s = time.monotonic() - warm_up_started
        # A one-time compilation (first run after install) must not eat the search's time
        # limit: the clock of the run starts again after it.
        self.started += warm_up_s
        if warm_up_s > 1.0:
            logger.info("[GA] Problem warmed up in %.1fs (compiled kernels are cached for the "
                        "islands and later runs; the time limit starts now)", warm_up_s)
        for reason in self.plan.reasons:
            logger.debug("[GA] %s", reason)
        removed = sweep_dead_segments()
        if removed:
            logger.info("[GA] Removed %d shared-memory segment(s) left by dead runs", len(removed))
        for index, (name, array) in enumerate(arrays.items()):
            # Segment tags are short alphanumerics; the name travels in the handle map.
            self.shared[name] = SharedArray.from_array(np.ascontiguousarray(array), tag=f"p{index}")
        del arrays
        if self.resume_state:
            self.event("resumed", run_id=self.run_id, elapsed_s=self.prior_elapsed,
                       best_fitness=self.best_fitness if self.best_genome is not None else None,
                       events_offset=self.resume_state.get("events_offset"),
                       previous_stop=self.resume_state.get("stopped_by"))
            logger.info("[GA] Resuming run %s after %.1fs (best so far %s)", self.run_id,
                        self.prior_elapsed,
                        f"{self.best_fitness:.6g}" if self.best_genome is not None else "none")
        self.event("config", **{k: v for k, v in vars(self.plan).items() if k != "reasons"})
        try:
            thresholds = Thresholds(**config.thresholds) if config.thresholds else None
        except (TypeError, ValueError) as error:
            raise InputError(f"bad thresholds: {error}") from None
        self.manager = MemoryManager(
            budget, n_islands=self.plan.islands, probe=self.probe,
            interval=config.monitor_interval, thresholds=thresholds,
        )
        self.manager.monitor.subscribe(
            lambda old, new, sample: self.level_changes.put((old, new, sample))
        )
        for island in range(self.plan.islands):
            self.manager.set_slice(island, self.plan.slice_bytes)
            self.command_queues[island] = deque()
        self.manager.start()

    def worker_spec(self, island: int, *, resume: bool = False) -> WorkerSpec:
        assert self.plan is not None and self.manager is not None
        config = self.config
        checkpoint = self.run_dir / "checkpoint" / f"island-{island}.msgpack"
        return WorkerSpec(
            island_id=island,
            n_islands=self.plan.islands,
            run_id=self.run_id,
            problem_spec=config.problem or "",
            ledger_handle=self.manager.ledger.handle,
            checkpoint_path=str(checkpoint),
            population=self.plan.population,
            run_seed=config.seed,
            shared_handles={name: array.handle for name, array in self.shared.items()},
            chunk_size=self.plan.chunk_size,
            streaming=self.plan.streaming,
            min_population=min(config.min_population, self.plan.population),
            max_population=self.plan.population,
            topology=config.topology,
            migration_interval=config.migration_interval,
            migrants=config.migrants,
            sync=config.sync,
            sync_timeout=config.sync_timeout,
            max_generations=config.generations,
            checkpoint_interval=config.checkpoint_interval,
            cache_entries=config.cache_entries,
            resume_from=str(checkpoint) if resume and checkpoint.exists() else None,
            time_budget_s=(
                None if config.time_limit is None
                else max(config.time_limit - self.elapsed(), 0.0)
            ),
            parent_pid=os.getpid(),
        )

    def spawn(self, island: int, *, resume: bool = False) -> WorkerHandle:
        assert self.manager is not None
        old = self.handles.get(island)
        if old is not None:
            self.backend.close(old)
        spec = self.worker_spec(island, resume=resume)
        self.manager.ledger.update(island, state=int(IslandState.STARTING))
        handle = self.backend.start(spec)
        self.handles[island] = handle
        self.manager.register_pid(island, handle.pid)
        return handle

    # -- messages -----------------------------------------------------------------
    def handle_message(self, handle: WorkerHandle, message: Any) -> None:
        kind = message[0]
        island = handle.island_id
        if kind == "best":
            _, _, generation, fitness, genome_bytes = message
            self.note_evolving(island)
            self.on_best(island, generation, float(fitness), genome_bytes)
        elif kind == "migrants":
            _, source, generation, payload = message
            self.route(source, generation, payload)
        elif kind == "stats":
            self.migration_totals[island] = dict(message[2])
        elif kind == "ack":
            _, _, command, seq, info = message
            self.event("ack", island=island, command=command, seq=seq, **info)
        elif kind == "hibernated":
            logger.info("[GA] Island %d hibernated (checkpoint %s)", island, message[2])
            self.event("hibernated", island=island, checkpoint=message[2])
            self.memory_of.pop(island, None)  # its memory goes with its process
            self.write_checkpoint()
        elif kind == "memory":
            self.on_memory(island, int(message[2]), int(message[3]))
        elif kind == "checkpoint_failed":
            logger.warning("[GA] Island %d could not write its checkpoint (%s); its previous "
                           "one is kept", island, message[2])
            self.event("checkpoint_failed", island=island, error=message[2])
        elif kind == "done":
            handle.finished = handle.finished or f"done:{message[2]}"
            self.event("island_done", island=island, reason=message[2])
        elif kind == "error":
            text = str(message[2])
            # A bug in the problem code fails every restart the same way: one traceback.
            if text in self.error_texts:
                logger.error("[GA] Island %d failed again with the same error", island)
                self.event("island_error", island=island, error="same as before", repeated=True)
            else:
                self.error_texts.add(text)
                logger.error("[GA] Island %d failed:\n%s", island, text.rstrip())
                self.event("island_error", island=island, error=text)
        elif kind == "started":
            self.event("island_started", island=island, pid=message[2])

    def route(self, source: int, generation: int, payload: bytes) -> None:
        assert self.plan is not None
        targets = neighbours(self.config.topology, source, self.plan.islands,
                             generation=generation, seed=self.config.seed)
        for target in targets:
            handle = self.handles.get(target)
            if handle is not None and handle.finished is None and self.backend.send(
                handle, ("migrants", source, generation, payload)
            ):
                self.routed += 1
            else:
                self.unroutable += 1

    def note_evolving(self, island: int) -> None:
        """`evolution_s` starts once every island has reported a best (start-up excluded)."""
        if self.evolving_since is not None or self.plan is None:
            return
        self.evolving_islands.add(island)
        if len(self.evolving_islands) >= self.plan.islands:
            self.evolving_since = time.monotonic()

    def on_memory(self, island: int, population_bytes: int, cache_bytes: int) -> None:
        self.memory_of[island] = (population_bytes, cache_bytes)
        self.peak_population_bytes = max(self.peak_population_bytes,
                                         sum(p for p, _ in self.memory_of.values()))
        self.peak_cache_bytes = max(self.peak_cache_bytes,
                                    sum(c for _, c in self.memory_of.values()))

    def on_best(self, island: int, generation: int, fitness: float, genome_bytes: bytes) -> None:
        if not fitness < self.best_fitness:
            return
        self.best_fitness = fitness
        self.best_island = island
        self.best_generation = int(generation)
        self.best_generation_mark = self.max_generation()
        genome = np.frombuffer(genome_bytes, dtype=self.problem.genome_dtype).reshape(
            self.problem.genome_shape).copy()
        self.best_genome = genome
        self.write_best()
        if (self.feasible_below is not None and self.time_to_feasible is None
                and fitness < self.feasible_below):
            self.time_to_feasible = self.elapsed()
            logger.info("[GA] Feasible solution found after %.1fs (fitness=%.6g)",
                        self.time_to_feasible, fitness)
            self.event("feasible", island=island, fitness=fitness)
        # The checkpoint holds the best too, so a resumed run never starts below it.
        self.write_checkpoint(durable=False)

    def write_best(self) -> None:
        """`best.*` via `problem.write`, to a temp name then renamed: never half a file."""
        if self.best_genome is None:
            return
        try:
            written = Path(self.problem.write(self.best_genome, self.run_dir / "best-writing"))
            final = self.run_dir / f"best{written.suffix}"
            os.replace(written, final)
            self.solution_file = final
        except OSError as error:
            logger.warning("[GA] Could not write the best solution: %s", error)

    def drain(self, timeout: float) -> None:
        ready = self.backend.wait(self.handles.values(), timeout)
        if not ready:
            return
        for handle in list(self.handles.values()):
            for message in self.backend.receive(handle):
                try:
                    self.handle_message(handle, message)
                except (TypeError, ValueError) as error:
                    self.event("bad_message", island=handle.island_id, error=str(error))

    # -- workers ending -----------------------------------------------------------
    def check_exits(self) -> None:
        assert self.manager is not None
        for island, handle in self.handles.items():
            if handle.reaped or handle.alive():
                continue
            # Read what it said last before judging how it ended.
            for message in self.backend.receive(handle):
                self.handle_message(handle, message)
            handle.reaped = True
            self.manager.unregister_pid(island)
            if handle.finished is not None:
                continue
            handle.finished = "crashed"
            self.memory_of.pop(island, None)
            self.manager.ledger.update(island, state=int(IslandState.FAILED))
            code = handle.process.exitcode
            self.failures[island] = failures = self.failures.get(island, 0) + 1
            self.event("crash", island=island, exitcode=code, failures=failures)
            self.outstanding.pop(island, None)
            self.command_queues[island].clear()
            ledger = self.manager.ledger
            # Nothing the dead process was asked may reach its successor.
            ledger.ack_command(island, int(ledger.row(island)["command_seq"]))
            if failures >= MAX_FAILURES or self.stop_requested:
                self.failed_islands.append(island)
                logger.warning("[GA] Island %d died (exit code %s, failure %d of %d); the run "
                               "goes on without it", island, code, failures, MAX_FAILURES)
                self.event("island_failed", island=island, failures=failures)
                continue
            checkpoint = Path(self.worker_spec(island).checkpoint_path)
            source = "its last checkpoint" if checkpoint.exists() else "a fresh start"
            logger.warning("[GA] Island %d died (exit code %s, failure %d of %d); restarting "
                           "from %s", island, code, failures, MAX_FAILURES, source)
            self.spawn(island, resume=True)
            self.event("restart", island=island, reason="crash",
                       from_checkpoint=checkpoint.exists())

    # -- pressure -----------------------------------------------------------------
    def note_level_changes(self) -> None:
        assert self.manager is not None
        while True:
            try:
                old, new, sample = self.level_changes.get_nowait()
            except queue.Empty:
                return
            used = getattr(sample, "pss_total", 0) if sample is not None else 0
            # MemoryMonitor logs the change itself; here it becomes an event and a cleanup.
            self.event("pressure", old=str(old), new=str(new), used_bytes=int(used))
            self.pressure_event(PressureLevel(new), "level_change", None)
            if new > old:
                self.manager.cleanup("aggressive" if new >= PressureLevel.HIGH else "normal")

    def in_flight(self) -> bool:
        """True while a command waits for its ack or the memory was not re-measured."""
        assert self.manager is not None
        ledger = self.manager.ledger
        now = time.monotonic()
        for island, (seq, action, sent_at) in list(self.outstanding.items()):
            handle = self.handles.get(island)
            acked = int(ledger.row(island)["command_ack"]) >= seq
            gone = handle is None or handle.finished is not None or not handle.alive()
            if action.kind == ActionKind.HIBERNATE and acked and handle is not None and handle.alive():
                continue  # its memory is freed when it exits
            if acked or gone or now - sent_at > COMMAND_TIMEOUT_S:
                del self.outstanding[island]
                self.sample_mark = self.manager.monitor.samples_taken
        for island, commands in self.command_queues.items():
            if island in self.outstanding or not commands:
                continue
            self.send_action(commands.popleft())
        if self.outstanding or any(self.command_queues.values()):
            return True
        return self.manager.monitor.samples_taken <= self.sample_mark

    def send_action(self, action: Action) -> None:
        assert self.manager is not None
        handle = self.handles.get(action.island)
        if handle is None or handle.finished is not None:
            return
        seq = self.manager.ledger.send_command(
            action.island, COMMAND_OF_ACTION[action.kind], action.arg)
        self.outstanding[action.island] = (seq, action, time.monotonic())

    def apply_policy(self) -> None:
        assert self.manager is not None and self.plan is not None
        if self.in_flight():
            return
        level = self.manager.level
        level_changed = level != self.policy_level
        if level_changed:
            self.last_action_at = time.monotonic()
        calm_s = 3 * self.config.monitor_interval
        if (level == PressureLevel.NORMAL and not level_changed
                and time.monotonic() - self.last_action_at < calm_s):
            return
        snapshot = self.manager.ledger.snapshot()
        # The monitor's own USS reading (same sample as the level) beats the islands'
        # self-reported bytes when it has one.
        for island, uss in self.manager.island_uss().items():
            snapshot[island]["measured_bytes"] = int(uss)
        for island, handle in self.handles.items():
            # A dead process's row may still say RUNNING: the policy must not pick it.
            if handle.finished is not None and int(snapshot[island]["state"]) in ACTIVE_STATES:
                snapshot[island]["state"] = int(IslandState.FAILED)
        actions = decide(
            level, snapshot, min_population=min(self.config.min_population, self.plan.population),
            target_population=self.plan.population, level_changed=level_changed,
            best_island=self.best_island,
        )
        self.policy_level = level
        for action in actions:
            self.perform(level, action)

    def perform(self, level: PressureLevel, action: Action) -> None:
        assert self.manager is not None
        island = action.island
        if action.kind in (ActionKind.SHRINK, ActionKind.HIBERNATE, ActionKind.TERMINATE,
                           ActionKind.RESUME, ActionKind.GROW):
            (logger.warning if level >= PressureLevel.HIGH else logger.info)(
                "[GA] Memory %s: %s island %d", level, action.kind, island)
            self.pressure_event(level, str(action.kind), island)
            self.last_action_at = time.monotonic()
        self.event("action", level=str(level), action=str(action.kind), island=island,
                   arg=action.arg)
        if action.kind == ActionKind.TERMINATE:
            handle = self.handles[island]
            handle.finished = "terminated"
            self.backend.terminate(handle)
            self.memory_of.pop(island, None)
            handle.reaped = True
            self.manager.unregister_pid(island)
            ledger = self.manager.ledger
            # The island is gone: no command of the old process may reach its successor.
            ledger.ack_command(island, int(ledger.row(island)["command_seq"]))
            ledger.update(island, state=int(IslandState.HIBERNATED))
            self.outstanding.pop(island, None)
            self.command_queues[island].clear()
            # It comes back at half size, else it would rebuild the same peak at once.
            self.shrink_on_restart.add(island)
            self.sample_mark = self.manager.monitor.samples_taken
        elif action.kind == ActionKind.RESUME:
            self.spawn(island, resume=True)
            self.event("restart", island=island)
            if island in self.shrink_on_restart:
                self.shrink_on_restart.discard(island)
                # Written before the island's first generation, so it runs shrunk from the start.
                self.command_queues[island].append(Action(ActionKind.SHRINK, island, 0.5))
            self.sample_mark = self.manager.monitor.samples_taken
        else:
            self.command_queues[island].append(action)

    # -- stopping -----------------------------------------------------------------
    def max_generation(self) -> int:
        if self.manager is None:
            return 0
        return max((int(row["generation"]) for row in self.manager.ledger.snapshot()), default=0)

    def stop_reason(self) -> str | None:
        assert self.manager is not None
        config = self.config
        if self.stop_requested:
            return self.stop_requested
        if self.target is not None and self.best_fitness <= self.target:
            return "target"
        if config.time_limit is not None and self.elapsed() >= config.time_limit:
            return "time_limit"
        snapshot = self.manager.ledger.snapshot()
        if config.evaluations is not None and sum(
                int(row["evaluations"]) for row in snapshot) >= config.evaluations:
            return "evaluations"
        if config.stagnation is not None and math.isfinite(self.best_fitness) and (
                self.max_generation() - self.best_generation_mark >= config.stagnation):
            return "stagnation"
        states = [int(row["state"]) for row in snapshot]
        waiting = [i for i, s in enumerate(states) if s == IslandState.HIBERNATED]
        running = [h for h in self.handles.values() if h.finished is None]
        if not running and not waiting:
            if all(h.finished == "crashed" for h in self.handles.values()):
                return "failed"
            return "generations" if config.generations is not None else "finished"
        return None

    def shut_down_workers(self) -> None:
        assert self.manager is not None
        ledger = self.manager.ledger
        live = [h for h in self.handles.values() if h.finished is None and h.alive()]
        for handle in live:
            ledger.send_command(handle.island_id, Command.STOP)
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and any(h.alive() for h in live):
            self.drain(TICK_S)
        for handle in self.handles.values():
            for message in self.backend.receive(handle):
                self.handle_message(handle, message)
            if handle.alive():
                self.backend.terminate(handle)
            self.backend.close(handle)

    # -- the whole run ------------------------------------------------------------
    def loop(self) -> str:
        assert self.plan is not None
        for island in range(self.plan.islands):
            self.spawn(island, resume=self.resume_state is not None)
        # A checkpoint from the start: a coordinator killed at once is still resumable.
        self.write_checkpoint()
        generations = self.config.generations
        while True:
            self.drain(TICK_S)
            self.check_exits()
            self.note_level_changes()
            self.apply_policy()
            self.log_progress(generations)
            self.note_migrations()
            self.maybe_checkpoint()
            reason = self.stop_reason()
            if reason is not None:
                return reason

    def migration_counts(self) -> dict[str, int]:
        totals = dict.fromkeys(("sent", "received", "accepted", "dropped", "declined"), 0)
        for island_stats in self.migration_totals.values():
            for key in totals:
                totals[key] += int(island_stats.get(key, 0))
        totals["routed"] = self.routed
        totals["unroutable"] = self.unroutable
        return totals

    def note_migrations(self) -> None:
        """A `migration` event with the running totals, at most every MIGRATION_EVENT_S."""
        now = time.monotonic()
        if now - self.last_migration_event < MIGRATION_EVENT_S:
            return
        self.last_migration_event = now
        totals = self.migration_counts()
        if totals != self.last_migration_totals:
            self.last_migration_totals = totals
            self.event("migration", **totals)

    def log_progress(self, generations: int | None) -> None:
        assert self.manager is not None
        now = time.monotonic()
        for island, row in enumerate(self.manager.ledger.snapshot()):
            generation = int(row["generation"])
            last_time, last_generation = self.last_progress.get(island, (0.0, 0))
            if generation != last_generation and now - last_time >= PROGRESS_LOG_S:
                self.last_progress[island] = (now, generation)
                logger.info("[GA] Gen %d/%s island %d: best=%.6g", generation,
                            generations if generations is not None else "-", island,
                            float(row["best_fitness"]))

    def execute(self) -> dict[str, Any]:
        stopped_by = "error"
        try:
            self._set_up()
            stopped_by = self.loop()
        except KeyboardInterrupt:
            stopped_by = "interrupted"
            raise
        finally:
            try:
                if self.manager is not None:
                    self.stopped_at = time.monotonic()
                    self.shut_down_workers()
                    self.stopped_by = stopped_by
                    self.summary = self.make_summary(stopped_by)
                    # Written last: it says how the run stopped and holds the final best.
                    self.write_checkpoint()
            finally:
                self.clean_up()
        return self.summary

    def make_summary(self, stopped_by: str) -> dict[str, Any]:
        assert self.manager is not None and self.plan is not None
        snapshot = self.manager.ledger.snapshot()
        stats = self.manager.stats()
        totals = self.migration_counts()
        self.event("migration", **totals)
        summary: dict[str, Any] = {
            "problem": self.problem_text,
            "best_fitness": self.best_fitness if math.isfinite(self.best_fitness) else None,
            "islands": self.plan.islands,
            "generations": max((int(r["generation"]) for r in snapshot), default=0),
            "evaluations": sum(int(r["evaluations"]) for r in snapshot),
            "elapsed_s": round(self.elapsed(), 3),
            "budget_bytes": int(self.plan.budget_bytes),
            "peak_memory_bytes": int(stats.get("peak_bytes", 0)),
            "pressure_events": self.pressure_events,
            "run_dir": str(self.run_dir),
            "stopped_by": stopped_by,
            "time_to_feasible_s": None if self.time_to_feasible is None
            else round(self.time_to_feasible, 3),
            "cleanups": int(stats.get("cleanups", 0)),
            "bytes_freed": int(stats.get("bytes_freed", 0)),
            "migrants": totals,
            "failed_islands": sorted(self.failed_islands),
            "population": self.plan.population,
            "chunk_size": self.plan.chunk_size,
            "streaming": self.plan.streaming,
            "seed": self.config.seed,
            "solution_file": str(self.solution_file) if self.solution_file else None,
            "evolution_s": self.evolution_seconds(),
            "population_bytes": int(self.peak_population_bytes),
            "cache_bytes": int(self.peak_cache_bytes),
            "run_id": self.run_id,
            "resumed": self.resume_state is not None,
            "island_failures": {str(i): n for i, n in sorted(self.failures.items())},
        }
        genome = self.best_genome
        if genome is not None:
            try:
                summary.update(self.problem.describe(genome))
            except Exception as error:  # a summary without describe() beats no summary
                logger.warning("[GA] describe() failed: %s", error)
        try:
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        except OSError as error:  # the summary is still returned (and printed with --json)
            logger.warning("[GA] Could not write summary.json: %s", error)
        self.event("summary", stopped_by=stopped_by, best_fitness=summary["best_fitness"])
        fitness_text = f"{self.best_fitness:.6g}" if math.isfinite(self.best_fitness) else "none"
        logger.info("[GA] Complete: fitness=%s, cleanups=%d, freed=%s (stopped by %s, run dir %s)",
                    fitness_text, summary["cleanups"],
                    format_bytes(summary["bytes_freed"]), stopped_by, self.run_dir)
        if self.solution_file is not None:
            logger.info("[GA] Best solution: %s", self.solution_file)
        return summary

    def evolution_seconds(self) -> float | None:
        """Seconds from all islands evolving to the stop (None if they never all did)."""
        if self.evolving_since is None:
            return None
        end = self.stopped_at if self.stopped_at is not None else time.monotonic()
        return round(max(end - self.evolving_since, 0.0), 3)

    def clean_up(self) -> None:
        for handle in self.handles.values():
            try:
                if handle.process.is_alive():
                    self.backend.terminate(handle, grace_s=1.0)
            except ValueError:
                pass
        if self.manager is not None:
            self.manager.stop()
        for segment in self.shared.values():
            try:
                segment.close()
            except BufferError:
                pass  # a numpy view is still alive somewhere; unlinking frees the name anyway
            finally:
                segment.unlink()
        self.shared.clear()
        if self.events_file is not None:
            self.events_file.close()
            self.events_file = None


def _process_started(pid: int) -> float | None:
    """Start time of process `pid` (None if there is none): a pid plus this is one process."""
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError):
        return None


def _own_pss() -> int:
    process = psutil.Process()
    try:
        info = process.memory_full_info()
        return int(getattr(info, "pss", 0) or info.rss)
    except (psutil.Error, OSError):
        return int(process.memory_info().rss)


class _GracefulStop:
    """First Ctrl-C / SIGTERM asks the run to stop; a second one stops at once."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.previous[signum] = signal.signal(signum, self.handle)
        return self

    def handle(self, signum: int, frame: Any) -> None:
        if self.run.stop_requested:
            raise KeyboardInterrupt
        self.run.stop_requested = "interrupted" if signum == signal.SIGINT else "terminated"
        logger.warning("[GA] Stopping: finishing islands and writing the best solution "
                       "(press Ctrl-C again to stop at once)")

    def __exit__(self, *exc: Any) -> None:
        for signum, previous in self.previous.items():
            signal.signal(signum, previous)


def execute_run(config: RunConfig, *, probe: Any = None, cores: int | None = None,
                resume_state: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run `config` to the end and return the summary (also in RUN_DIR/summary.json).

    With `resume_state` (from `load_resume`), the run goes on from its checkpoints.
    """
    run = Run(config, probe=probe, cores=cores, resume_state=resume_state)
    with _GracefulStop(run):
        return run.execute()


def load_resume(
    run_dir: str | Path, *, generations: int | None = None, time_limit: float | None = None
) -> tuple[RunConfig, dict[str, Any]]:
    """The config and coordinator state to resume `run_dir`; InputError if there is none.

    `generations` / `time_limit`, when given, replace the run's own limits (the time
    limit counts the time already spent).
    """
    run_dir = Path(run_dir)
    path = run_dir / "checkpoint" / COORDINATOR_CHECKPOINT
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such run directory")
    if not path.exists():
        raise InputError(f"{run_dir}: no checkpoint to resume from ({path} is missing)")
    state = checkpoint_io.load_state(path)
    if state.get("kind") != "coordinator" or not isinstance(state.get("config"), dict):
        raise InputError("not a coordinator checkpoint", path=path)
    try:
        config = RunConfig(**state["config"])
        plan = state.get("plan") or {}
        # The same islands as before: their checkpoints are per island.
        for key in ("islands", "population", "chunk_size", "streaming"):
            if plan.get(key) is not None:
                setattr(config, key, plan[key])
        str(state["run_id"])
        float(state.get("elapsed_s", 0.0))
    except (TypeError, ValueError, KeyError) as error:
        raise InputError(f"checkpoint is malformed ({error})", path=path) from None
    if state.get("stopped_by") is None and state.get("pid") is not None and (
            _process_started(int(state["pid"])) == state.get("pid_started")):
        raise InputError(f"{run_dir}: the run is still going (coordinator pid {state['pid']}); "
                         "stop it first (Ctrl-C or SIGTERM)")
    # Islands resume from their own files: a damaged one is reported now, not 3 crashes later.
    for island_file in sorted((run_dir / "checkpoint").glob("island-*.msgpack")):
        checkpoint_io.load_state(island_file)
    config.out = str(run_dir)
    if generations is not None:
        config.generations = generations
    if time_limit is not None:
        config.time_limit = time_limit
    config.validate(str(path))
    return config, state


def already_finished(state: dict[str, Any]) -> str | None:
    """The stop reason if the checkpointed run finished (nothing left to resume)."""
    reason = state.get("stopped_by")
    return reason if reason in FINISHED_REASONS else None

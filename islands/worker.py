"""The island worker loop: one Island evolving inside its own process.

Covers: the process entry point `run_island(spec, inbox, outbox)`. It ignores SIGINT
(the coordinator turns Ctrl-C into a graceful stop), exits within about a second when
its parent dies (watchdog thread) or its pipe to the coordinator breaks, attaches the
ledger and the problem's shared arrays, builds its Island (or restores it from a
checkpoint), then loops generations. Between generations it executes ledger commands
(shrink, grow, clear cache, pause/resume growth, hibernate, stop), writes telemetry
into its ledger row, reports its best when it improves, and exchanges migrants.

Checkpoints (`islands.checkpoint.save_state` of `Island.state()`) are written after the
first generation, then every `checkpoint_interval` seconds, on hibernate, on stop and
at the generation limit; a failed periodic write keeps the previous file and the
island evolving. An exception (in the user's problem code or here) is sent once as a
formatted traceback (`error`), then the process exits with code 1; the coordinator
decides whether to restart it from its checkpoint.

Messages (tuples, first item the kind) go to the coordinator through `outbox`, a
one-way pipe end (`send`): `started`, `best`, `migrants`, `stats`, `memory`
(population and cache bytes), `ack`, `hibernated`, `checkpoint_failed`, `done`,
`error`; the coordinator puts `("migrants", from, gen, bytes)`
into `inbox` (a queue). In `sync` mode every island migrates at the same generations
and waits for the migrants of that generation from every live source island, then
takes them in source order, so a run is reproducible from its seed.

Does not cover: evolution itself (`islands.island.Island`), the migrant codec and
topologies (`islands.migration`), routing, policy and process management
(`coordinator`), the ledger and shared arrays (`memory.shared`).
"""

from __future__ import annotations

import gc
import os
import queue
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from islands.checkpoint import load_state, save_state
from islands.island import Island
from islands.migration import (
    MigrationStats,
    decode_migrants,
    encode_migrants,
    neighbours,
    should_migrate,
)
from islands.problem import attach_problem
from memory import release_memory
from memory.shared import Command, IslandState, Ledger, SharedArray

EVOLVING_STATES = (IslandState.STARTING, IslandState.RUNNING, IslandState.SHRUNK)
MEMORY_REPORT_S = 0.25
EXIT_ERROR = 1  # the worker reported an exception (see the `error` message)


@dataclass
class WorkerSpec:
    """Everything one island process needs (picklable; sent once at spawn)."""

    island_id: int
    n_islands: int
    run_id: str
    problem_spec: str
    ledger_handle: Any
    checkpoint_path: str
    population: int
    run_seed: int = 0
    shared_handles: dict[str, Any] = field(default_factory=dict)
    chunk_size: int | None = None
    streaming: bool = True
    min_population: int = 4
    max_population: int | None = None
    cache_entries: int | None = 10_000
    cache_bytes: int | None = None
    topology: str = "ring"
    migration_interval: int = 5
    migrants: int = 2
    sync: bool = False
    sync_timeout: float = 60.0
    max_generations: int | None = None
    checkpoint_interval: float = 10.0  # seconds between periodic checkpoints
    resume_from: str | None = None
    time_budget_s: float | None = None  # seconds this island has left under the time limit
    parent_pid: int | None = None
    best_report_seconds: float = 0.25
    telemetry_seconds: float = 0.1
    operator_params: dict[str, Any] = field(default_factory=dict)


class CoordinatorGone(Exception):
    """The coordinator's end of the pipe is closed or its process is gone."""


def own_memory_bytes() -> int:
    """This process's unique memory (USS from smaps_rollup), else its RSS; cheap."""
    try:
        with open("/proc/self/smaps_rollup", "rb") as handle:
            private = 0
            for line in handle:
                if line.startswith((b"Private_Clean:", b"Private_Dirty:")):
                    private += int(line.split()[1]) * 1024
            if private:
                return private
    except OSError:
        pass
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _watch_parent(parent_pid: int, interval: float = 0.5) -> None:
    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(0)
            time.sleep(interval)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def migration_sources(spec: WorkerSpec, generation: int) -> list[int]:
    """Islands that send migrants to `spec.island_id` at `generation` (sorted)."""
    return sorted(
        source
        for source in range(spec.n_islands)
        if source != spec.island_id
        and spec.island_id
        in neighbours(spec.topology, source, spec.n_islands, generation=generation, seed=spec.run_seed)
    )


class IslandLoop:
    """The generation loop of one island around an `Island` object."""

    def __init__(self, spec: WorkerSpec, problem: Any, ledger: Ledger, inbox: Any, outbox: Any):
        self.spec = spec
        self.problem = problem
        self.ledger = ledger
        self.inbox = inbox
        self.outbox = outbox
        self.island_id = spec.island_id
        if spec.resume_from and Path(spec.resume_from).exists():
            self.island = Island.from_state(problem, load_state(Path(spec.resume_from)))
            # A restarted island starts free to grow; the coordinator pauses it again if needed.
            self.island.growth_paused = False
        else:
            self.island = Island(
                problem,
                island_id=spec.island_id,
                seed=spec.run_seed,  # Island derives its own stream from (seed, id)
                population_size=spec.population,
                chunk_size=spec.chunk_size,
                streaming=spec.streaming,
                cache_entries=spec.cache_entries,
                cache_bytes=spec.cache_bytes,
                min_population=spec.min_population,
                max_population=spec.max_population,
                **spec.operator_params,
            )
        self.restored = bool(spec.resume_from and Path(spec.resume_from).exists())
        self.stats = MigrationStats()
        self.declined = 0
        self.decline_immigrants = False
        # generation -> source island -> payload (sync mode buffers early arrivals).
        self.buffered: dict[int, dict[int, bytes]] = {}
        self.reported_best = float("inf")
        self.best_unreported = False
        self.last_best_report = 0.0
        self.last_telemetry = 0.0
        self.last_checkpoint = time.monotonic()
        self.last_checkpoint_generation = -1
        self.last_memory_report = 0.0
        self.reported_memory = (-1, -1)

    # -- messages -----------------------------------------------------------------
    def send(self, *message: Any) -> None:
        try:
            self.outbox.send(message)
        except (BrokenPipeError, EOFError, ConnectionResetError, OSError) as error:
            raise CoordinatorGone(str(error)) from error

    def report_best(self, *, force: bool = False) -> None:
        if not self.island.best_fitness < self.reported_best:
            self.best_unreported = False
            return
        now = time.monotonic()
        if not force and now - self.last_best_report < self.spec.best_report_seconds:
            self.best_unreported = True
            return
        genome, fitness = self.island.best()
        self.send("best", self.island_id, self.island.generation, float(fitness),
                  genome.tobytes())
        self.reported_best = float(fitness)
        self.best_unreported = False
        self.last_best_report = now

    def report_stats(self) -> None:
        self.send("stats", self.island_id, {**self.stats.as_dict(), "declined": self.declined})

    def telemetry(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_telemetry < self.spec.telemetry_seconds:
            # Generation and best are cheap: always current; memory is sampled less often.
            self.ledger.update(
                self.island_id, generation=self.island.generation,
                best_fitness=float(self.island.best_fitness),
                evaluations=self.island.evaluations, population=self.island.population_size,
                heartbeat=time.time(),
            )
            return
        self.last_telemetry = now
        self.ledger.update(
            self.island_id,
            generation=self.island.generation,
            best_fitness=float(self.island.best_fitness),
            evaluations=self.island.evaluations,
            population=self.island.population_size,
            measured_bytes=own_memory_bytes(),
            heartbeat=time.time(),
        )
        self.report_memory()

    def report_memory(self) -> None:
        """Population and cache bytes to the coordinator when they change (summary peaks)."""
        now = time.monotonic()
        if now - self.last_memory_report < MEMORY_REPORT_S:
            return
        sizes = (int(self.island.population_bytes), int(self.island.cache_bytes))
        if sizes != self.reported_memory:
            self.send("memory", self.island_id, *sizes)
            self.reported_memory = sizes
        self.last_memory_report = now

    def evolving_state(self) -> IslandState:
        """SHRUNK while below the configured population (the policy regrows those)."""
        if self.island.population_size < self.spec.population:
            return IslandState.SHRUNK
        return IslandState.RUNNING

    # -- commands -----------------------------------------------------------------
    def handle_commands(self) -> str | None:
        """Execute a pending ledger command; return an exit reason or None to go on."""
        pending = self.ledger.pending_command(self.island_id)
        if pending is None:
            return None
        command, arg, seq = pending
        command = Command(command)
        island = self.island
        exit_reason: str | None = None
        if command == Command.SHRINK:
            island.shrink(arg if 0.0 < arg < 1.0 else 0.5)
            self.ledger.update(self.island_id, state=int(self.evolving_state()))
        elif command == Command.GROW:
            island.grow(arg if arg > 1.0 else 2.0)
            self.ledger.update(self.island_id, state=int(self.evolving_state()))
        elif command == Command.CLEAR_CACHE:
            island.clear_cache()
            release_memory()
        elif command == Command.PAUSE_GROWTH:
            island.growth_paused = True
            self.decline_immigrants = True
        elif command == Command.RESUME_GROWTH:
            island.growth_paused = False
            self.decline_immigrants = False
        elif command == Command.HIBERNATE:
            self.checkpoint()
            self.ledger.update(self.island_id, state=int(IslandState.HIBERNATED))
            exit_reason = "hibernated"
        elif command == Command.STOP:
            try:
                self.checkpoint()  # a stopped run can be resumed from here
            except OSError as error:  # the previous checkpoint is still there
                self.send("checkpoint_failed", self.island_id, str(error))
            self.ledger.update(self.island_id, state=int(IslandState.STOPPED))
            exit_reason = "stopped"
        self.telemetry(force=True)
        self.ledger.ack_command(self.island_id, seq)
        self.send("ack", self.island_id, command.name.lower(), seq,
                  {"population": island.population_size, "generation": island.generation})
        if exit_reason == "hibernated":
            self.send("hibernated", self.island_id, self.spec.checkpoint_path)
        return exit_reason

    def checkpoint(self) -> None:
        path = Path(self.spec.checkpoint_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_state(path, self.island.state())
        self.last_checkpoint = time.monotonic()
        self.last_checkpoint_generation = self.island.generation

    def maybe_checkpoint(self) -> None:
        """Save every `checkpoint_interval` seconds; the first generation always.

        The first one is always saved, so a terminated or killed island has something
        to resume. A failed write (disk full) keeps the previous file and the island
        evolving: it is reported and tried again at the next interval.
        """
        if (self.last_checkpoint_generation >= 0
                and time.monotonic() - self.last_checkpoint < self.spec.checkpoint_interval):
            return
        try:
            self.checkpoint()
        except OSError as error:
            self.last_checkpoint = time.monotonic()
            self.send("checkpoint_failed", self.island_id, str(error))

    # -- migration ----------------------------------------------------------------
    def emigrate(self, generation: int) -> None:
        if self.spec.migrants <= 0 or self.spec.n_islands < 2:
            return
        genomes, fitness = self.island.emigrants(self.spec.migrants)
        payload = encode_migrants(self.spec.run_id, self.island_id, generation, genomes, fitness)
        self.send("migrants", self.island_id, generation, payload)
        self.stats.sent += len(fitness)

    def incorporate(self, payloads: list[tuple[int, bytes]]) -> None:
        """Take migrant messages in source order (deterministic); bad ones are counted."""
        for _source, payload in sorted(payloads, key=lambda item: item[0]):
            # decode_migrants counts a received or dropped message (with its reason).
            migrants = decode_migrants(
                payload, run_id=self.spec.run_id,
                genome_shape=self.problem.genome_shape, genome_dtype=self.problem.genome_dtype,
                stats=self.stats,
            )
            if migrants is None:
                continue
            if self.decline_immigrants:
                self.declined += len(migrants.fitness)
                continue
            self.stats.accepted += self.island.accept_immigrants(migrants.genomes, migrants.fitness)

    def _read_inbox(self, timeout: float | None) -> tuple[int, int, bytes] | None:
        try:
            message = self.inbox.get(timeout=timeout) if timeout else self.inbox.get_nowait()
        except queue.Empty:
            return None
        except (EOFError, OSError) as error:
            raise CoordinatorGone(str(error)) from error
        if not (isinstance(message, tuple) and len(message) == 4 and message[0] == "migrants"):
            self.stats.drop("bad message")
            return None
        _, source, generation, payload = message
        if not isinstance(payload, (bytes, bytearray)):
            self.stats.drop("bad message")
            return None
        try:
            return int(source), int(generation), bytes(payload)
        except (TypeError, ValueError):
            self.stats.drop("bad message")
            return None

    def take_async(self) -> None:
        arrived: list[tuple[int, bytes]] = []
        while True:
            item = self._read_inbox(None)
            if item is None:
                break
            arrived.append((item[0], item[2]))
        if arrived:
            self.incorporate(arrived)

    def take_sync(self, generation: int) -> str | None:
        """Wait for this generation's migrants from every live source; return exit reason."""
        sources = migration_sources(self.spec, generation)
        deadline = time.monotonic() + self.spec.sync_timeout
        while True:
            waiting = self.buffered.get(generation, {})
            missing = [s for s in sources if s not in waiting and self._expect_from(s, generation)]
            if not missing or time.monotonic() > deadline:
                break
            if self.spec.parent_pid is not None and os.getppid() != self.spec.parent_pid:
                raise CoordinatorGone("parent changed")
            # Commands (stop, hibernate) must not wait behind a slow neighbour.
            reason = self.handle_commands()
            if reason is not None:
                return reason
            item = self._read_inbox(0.05)
            if item is not None:
                source, item_generation, payload = item
                if item_generation < generation:
                    self.incorporate([(source, payload)])  # late: take it now
                else:
                    self.buffered.setdefault(item_generation, {})[source] = payload
        arrived = self.buffered.pop(generation, {})
        self.incorporate(sorted(arrived.items()))
        return None

    def _expect_from(self, source: int, generation: int) -> bool:
        """Whether `source`'s migrants of `generation` are sent or still to come."""
        row = self.ledger.row(source)
        state, source_generation = int(row["state"]), int(row["generation"])
        # A restored island is behind its neighbours: what they sent at this generation
        # went out while it was away. (Reproducibility is only promised without pressure
        # actions, and a restore is one.)
        if self.restored and source_generation > generation:
            return False
        if state in EVOLVING_STATES:
            return True
        # An island that finished or hibernated at or after this generation sent its
        # migrants of this generation first: they are on their way.
        return state in (IslandState.DONE, IslandState.HIBERNATED) and source_generation >= generation

    # -- main loop ----------------------------------------------------------------
    def run(self) -> str:
        spec = self.spec
        self.ledger.update(self.island_id, pid=os.getpid(), state=int(self.evolving_state()),
                           population=self.island.population_size, heartbeat=time.time())
        self.send("started", self.island_id, os.getpid())
        reason: str | None = None
        while reason is None:
            reason = self.handle_commands()
            if reason is not None:
                break
            if spec.max_generations is not None and self.island.generation >= spec.max_generations:
                reason = "generations"
                break
            self.island.step()
            generation = self.island.generation
            self.telemetry()
            if spec.n_islands > 1 and should_migrate(generation, spec.migration_interval):
                self.emigrate(generation)
                if spec.sync:
                    reason = self.take_sync(generation)
                self.report_stats()
            if not spec.sync:
                self.take_async()
            # Immigrants can improve the best too, so this checks every generation (cheap).
            self.report_best()
            self.maybe_checkpoint()
        self.report_best(force=True)
        self.report_stats()
        if reason == "generations":
            self.checkpoint()
            self.ledger.update(self.island_id, state=int(IslandState.DONE))
        self.telemetry(force=True)
        self.send("done", self.island_id, reason)
        return reason


def run_island(spec: WorkerSpec, inbox: Any, outbox: Any) -> None:
    """Process entry point of one island (see the module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if spec.parent_pid is not None:
        _watch_parent(spec.parent_pid)
    ledger = Ledger.attach(spec.ledger_handle)
    shared = {name: SharedArray.attach(handle) for name, handle in spec.shared_handles.items()}
    loop: IslandLoop | None = None
    failed = False
    try:
        problem = attach_problem(spec.problem_spec, {name: s.array for name, s in shared.items()})
        if spec.time_budget_s:
            problem.set_time_budget(spec.time_budget_s)
        loop = IslandLoop(spec, problem, ledger, inbox, outbox)
        del problem
        loop.run()
    except CoordinatorGone:
        pass
    except BaseException:  # report anything, then exit: the coordinator decides what next
        failed = True
        ledger.update(spec.island_id, state=int(IslandState.FAILED))
        try:
            outbox.send(("error", spec.island_id, traceback.format_exc(limit=8)))
        except (OSError, EOFError):
            pass
    finally:
        # Views into shared segments must be gone before the segments close.
        loop = None
        gc.collect()
        for segment in shared.values():
            try:
                segment.close()
            except BufferError:
                pass
        ledger.close()
        try:
            outbox.close()
        except OSError:
            pass
    if failed:
        sys.exit(EXIT_ERROR)

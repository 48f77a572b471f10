"""The island worker loop: one Island evolving behind a channel of typed messages.

Covers: `serve_island(spec, channel, arrays)` (the spec, `islands.params.WorkerSpec`, is
all one island needs): build the problem, build or restore the Island,
run `IslandLoop` until the generation limit, a stop or hibernate command, or the end of
the coordinator's side of the channel; return the exit code (1 after an exception,
which is first sent once as `Failed`). Each generation the loop handles what came in
without waiting (`Command` -> `Ack`, `Deliver`, `SourceGone` / `SourceBack`; a malformed
message is dropped and counted as `bad_messages`), steps the island, sends `Migrants`
every `migration_interval` generations, reports `Improved` and `Telemetry` (throttled)
and checkpoints `Island.state()`: after the first generation, every
`checkpoint_interval` seconds, on hibernate, stop and the generation limit (a failed
write sends `CheckpointFailed`; the island evolves on). In `sync` (lockstep) mode it
waits at each migration for the migrants of every source it expects (`LockstepInbox`),
handling commands meanwhile, and takes them in source order: a run repeats from its seed.
When `stop_requested()` turns true (the backend's SIGTERM/SIGHUP handler) the island stops
as if told to: checkpoint, then `Done("terminated")`. Temp files a killed predecessor left
beside its checkpoint are removed at start.

Does not cover: signal handlers, watchdogs, pids, shared-memory segments (the coordinator's
backends, which then call `serve_island`), evolution (`islands.island`), messages and
their encoding (`islands.protocol`), transports (`islands.channel`), the migrant codec
(`islands.migration`), topologies (`islands.topology`), routing and policy (`coordinator`).
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from islands import protocol
from islands.channel import Channel, CoordinatorGone
from islands.checkpoint import load_state, save_state, sweep_temp_files
from islands.island import Island
from islands.migration import MigrationStats, decode_migrants, encode_migrants, should_migrate
from islands.params import MigrationSettings, WorkerSpec
from islands.problem import attach_problem
from islands.protocol import CommandKind, IslandState
from islands.topology import Topology
from memory import release_memory

EXIT_OK = 0
EXIT_ERROR = 1  # the worker reported an exception (see `Failed`)
SYNC_POLL_S = 0.05  # how long one wait for a message lasts while in lockstep
FINAL_STATES = {"generations": IslandState.DONE, "stopped": IslandState.STOPPED,
                "terminated": IslandState.STOPPED, "hibernated": IslandState.HIBERNATED}


class MigrantExchange:
    """Migrants out (encoded) and in (decoded, counted, declined or offered to the island)."""

    def __init__(self, island: Island, run_id: str, count: int) -> None:
        self.island = island
        self.run_id = run_id
        self.count = count
        self.stats = MigrationStats()
        self.declined = 0
        self.declining = False  # while growth is paused, immigrants are declined
        self.waiting: list[Any] = []  # taken before the island had a population to offer them to

    def emigrants(self, generation: int) -> bytes:
        genomes, fitness = self.island.emigrants(self.count)
        self.stats.sent += len(fitness)
        return encode_migrants(self.run_id, self.island.island_id, generation, genomes, fitness)

    def take(self, payloads: Iterable[bytes]) -> None:
        """Decode each payload (a bad one is dropped and counted) and offer its migrants."""
        problem = self.island.problem
        for payload in payloads:
            migrants = decode_migrants(payload, run_id=self.run_id, genome_shape=problem.genome_shape,
                                       genome_dtype=problem.genome_dtype, stats=self.stats)
            if migrants is not None and self.declining:
                self.declined += migrants.count
            elif migrants is not None:
                self.waiting.append(migrants)
        self.settle()

    def settle(self) -> None:
        """Offer the migrants taken so far, once the island has a population (first step)."""
        if not self.island.initialised:
            return
        for migrants in self.waiting:
            self.stats.accepted += self.island.accept_immigrants(migrants.genomes, migrants.fitness)
        self.waiting.clear()


class LockstepInbox:
    """Sync mode: which sources to wait for at a generation, and migrants that came early.

    A source is expected at generation g unless it went away before g (`SourceGone` with
    an earlier generation, and no `SourceBack` since) or g is at or below its sync floor
    (it sent g's migrants while this island was away).
    """

    def __init__(self, topology: Topology, island_id: int, sync_floor: Mapping[int, int]) -> None:
        self.topology = topology
        self.island_id = island_id
        self.floor = {int(source): int(g) for source, g in sync_floor.items()}
        self.gone: dict[int, int] = {}  # source -> the last generation it sends (SourceGone)
        self.early: dict[int, dict[int, bytes]] = {}  # generation -> source -> payload
        self.taken_through = -1

    def expected(self, source: int, generation: int) -> bool:
        gone_after = self.gone.get(source, math.inf)  # the last generation it sends
        return self.floor.get(source, -1) < generation <= gone_after

    def missing(self, generation: int) -> list[int]:
        arrived = self.early.get(generation, {})
        return [s for s in self.topology.sources(self.island_id, generation)
                if s not in arrived and self.expected(s, generation)]

    def is_late(self, generation: int, current: int) -> bool:
        return generation < current or generation <= self.taken_through

    def hold(self, source: int, generation: int, payload: bytes) -> None:
        self.early.setdefault(generation, {})[source] = payload

    def take(self, generation: int) -> list[bytes]:
        """Everything held up to `generation`, by generation then source (deterministic)."""
        payloads = []
        for held in sorted(g for g in self.early if g <= generation):
            payloads += [payload for _, payload in sorted(self.early.pop(held).items())]
        self.taken_through = max(self.taken_through, generation)
        return payloads


class Reporter:
    """Throttled reports: `Telemetry` and `Improved` at most once per interval unless forced."""

    def __init__(self, spec: WorkerSpec, send: Callable[[Any], None]) -> None:
        self.spec = spec
        self.send = send
        self.reported_best = math.inf
        self.last_best = self.last_telemetry = -math.inf

    def best(self, island: Island, *, force: bool = False) -> None:
        """`Improved` when the island's best beat the last one reported."""
        if not island.best_fitness < self.reported_best:
            return
        now = time.monotonic()
        if not force and now - self.last_best < self.spec.best_report_s:
            return  # reported at a later call
        genome, fitness = island.best()
        self.send(protocol.Improved(self.spec.island_id, island.generation, fitness,
                                    genome.tobytes(), genome.dtype.str, list(genome.shape)))
        self.reported_best = fitness
        self.last_best = now

    def telemetry(self, build: Callable[[], protocol.Telemetry], *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last_telemetry >= self.spec.telemetry_s:
            self.send(build())
            self.last_telemetry = now


class IslandLoop:
    """The generation loop of one island around an `Island`, over a `Channel`."""

    def __init__(self, spec: WorkerSpec, problem: Any, channel: Channel,
                 stop_requested: Callable[[], bool] = lambda: False) -> None:
        self.spec = spec
        self.channel = channel
        self.stop_requested = stop_requested
        checkpoint = Path(spec.checkpoint_path)
        sweep_temp_files(checkpoint.parent, checkpoint.name)  # only this island writes them
        self.restored = bool(spec.resume_from and Path(spec.resume_from).exists())
        self.island = self._build_island(problem)
        self.protocol_stats = protocol.ProtocolStats()
        self.exchange = MigrantExchange(self.island, spec.run_id, spec.migration.migrants)
        topology = Topology(spec.migration.topology, spec.n_islands, spec.run_seed)
        self.lockstep = LockstepInbox(topology, spec.island_id, spec.sync_floor)
        self.reporter = Reporter(spec, self.send)
        self.last_checkpoint = -math.inf  # the first generation is always saved
        self.last_migration = -math.inf

    def _build_island(self, problem: Any) -> Island:
        spec = self.spec
        if not self.restored:
            # Island derives its own stream from (run seed, island id).
            return Island(problem, island_id=spec.island_id, seed=spec.run_seed, params=spec.params)
        island = Island.from_state(problem, load_state(Path(spec.resume_from)))
        island.refresh()  # the instance may have been edited since: fitness as it is now
        # A restored island starts free to grow; the coordinator pauses it again if needed.
        island.growth_paused = False
        return island

    # -- messages -----------------------------------------------------------------
    def send(self, message: Any) -> None:
        self.channel.send(protocol.encode(message))

    def drain(self) -> str | None:
        """Handle every message waiting, without waiting; an exit reason ends it early."""
        while (data := self.channel.receive(0)) is not None:
            reason = self.handle(data)
            if reason is not None:
                return reason
        return self.signalled()

    def signalled(self) -> str | None:
        """After SIGTERM/SIGHUP to this process: checkpoint and end ("terminated")."""
        if not self.stop_requested():
            return None
        self.checkpoint()
        return "terminated"

    def handle(self, data: bytes) -> str | None:
        message = protocol.decode(data, self.protocol_stats, expect=protocol.TO_ISLAND)
        if isinstance(message, protocol.Command):
            return self.execute(message)
        if isinstance(message, protocol.Deliver):
            self.deliver(message)
        elif isinstance(message, protocol.SourceGone):
            self.lockstep.gone[message.source] = message.generation
        elif isinstance(message, protocol.SourceBack):
            self.lockstep.gone.pop(message.source, None)
        return None

    def deliver(self, message: protocol.Deliver) -> None:
        if self.spec.migration.sync and not self.lockstep.is_late(message.generation, self.island.generation):
            self.lockstep.hold(message.source, message.generation, message.payload)
        else:
            self.exchange.take([message.payload])

    # -- reports --------------------------------------------------------------------
    def state(self, reason: str | None = None) -> IslandState:
        """SHRUNK while below the configured population (the policy regrows those)."""
        if reason is not None:
            return FINAL_STATES[reason]
        shrunk = self.island.population_size < self.spec.params.population
        return IslandState.SHRUNK if shrunk else IslandState.RUNNING

    def telemetry(self, *, force: bool = False, reason: str | None = None) -> None:
        self.reporter.telemetry(lambda: self.telemetry_message(reason), force=force)

    def telemetry_message(self, reason: str | None) -> protocol.Telemetry:
        island = self.island
        cache = island.cache_stats
        return protocol.Telemetry(
            self.spec.island_id, self.state(reason), island.generation, island.evaluations,
            island.best_fitness, island.population_size, int(island.population_bytes),
            island.cache_bytes, cache.hits if cache else 0, cache.misses if cache else 0,
            {**self.exchange.stats.as_dict(), "declined": self.exchange.declined,
             "bad_messages": self.protocol_stats.dropped}, island.cache_switched_off)

    # -- commands and checkpoints -------------------------------------------------------
    def execute(self, command: protocol.Command) -> str | None:
        """Carry out a command, report, answer with Ack; return an exit reason or None."""
        reason = self.apply(command.kind, command.arg)
        self.telemetry(force=True, reason=reason)
        island = self.island
        self.send(protocol.Ack(self.spec.island_id, command.kind, command.seq,
                               island.population_size, island.generation))
        return reason

    def apply(self, kind: CommandKind, arg: float) -> str | None:
        island = self.island
        if kind == CommandKind.SHRINK:
            island.shrink(arg if 0.0 < arg < 1.0 else 0.5)
        elif kind == CommandKind.GROW:
            island.grow(arg if arg > 1.0 else 2.0)
        elif kind == CommandKind.CLEAR_CACHE:
            island.clear_cache()
            release_memory()
        elif kind in (CommandKind.PAUSE_GROWTH, CommandKind.RESUME_GROWTH):
            paused = kind == CommandKind.PAUSE_GROWTH
            island.growth_paused = paused
            self.exchange.declining = paused  # a paused island also declines immigrants
        elif kind == CommandKind.HIBERNATE:
            self.save()  # no checkpoint, no hibernation: an error ends the island
            return "hibernated"
        elif kind == CommandKind.STOP:
            self.checkpoint()  # a stopped run can be resumed from here
            return "stopped"
        return None

    def save(self) -> None:
        """Write the island's state atomically; OSError if it failed (the old file stays)."""
        self.last_checkpoint = time.monotonic()  # a failed write is tried again after the interval
        path = Path(self.spec.checkpoint_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_state(path, self.island.state())

    def checkpoint(self) -> None:
        """Save now; a failed write is reported and the previous file is kept."""
        try:
            self.save()
        except OSError as error:
            self.send(protocol.CheckpointFailed(self.spec.island_id, str(error)))

    # -- migration ------------------------------------------------------------------
    def migrate(self, generation: int) -> str | None:
        """Send emigrants at migration generations; in sync mode, wait for the sources'."""
        spec = self.spec
        migration = spec.migration
        if (spec.n_islands < 2 or migration.migrants <= 0
                or not should_migrate(generation, migration.interval)):
            return None
        if not migration.sync and migration.period_s > 0:  # lockstep must not skip one
            now = time.monotonic()
            if now - self.last_migration < migration.period_s:
                return None
            self.last_migration = now
        self.send(protocol.Migrants(spec.island_id, generation, self.exchange.emigrants(generation)))
        return self.wait_for_sources(generation) if migration.sync else None

    def wait_for_sources(self, generation: int) -> str | None:
        """Lockstep: wait (up to `sync_timeout`) for every expected source, then take them."""
        deadline = time.monotonic() + self.spec.migration.sync_timeout
        while self.lockstep.missing(generation) and time.monotonic() < deadline:
            self.telemetry()  # throttled: shows the island waits, not hangs
            # Commands (stop, hibernate) must not wait behind a slow neighbour.
            data = self.channel.receive(SYNC_POLL_S)
            reason = self.signalled() if data is None else self.handle(data)
            if reason is not None:
                return reason
        self.exchange.take(self.lockstep.take(generation))
        return None

    # -- main loop ------------------------------------------------------------------
    def run(self) -> str:
        island = self.island
        self.send(protocol.Started(self.spec.island_id, island.generation,
                                   island.population_size, self.restored))
        reason: str | None = None
        while reason is None:
            reason = self.drain() or self.generation()
        self.finish(reason)
        return reason

    def generation(self) -> str | None:
        """One generation and what follows it; "generations" at the limit instead."""
        limit = self.spec.max_generations
        if limit is not None and self.island.generation >= limit:
            return "generations"
        self.island.step()
        self.exchange.settle()
        reason = self.migrate(self.island.generation)
        if reason is None:
            # Immigrants can improve the best too, so this checks every generation (cheap).
            self.reporter.best(self.island)
            self.telemetry()
            if time.monotonic() - self.last_checkpoint >= self.spec.checkpoint_interval:
                self.checkpoint()
        return reason

    def finish(self, reason: str) -> None:
        if reason == "generations":
            self.checkpoint()
        self.reporter.best(self.island, force=True)
        self.telemetry(force=True, reason=reason)
        self.send(protocol.Done(self.spec.island_id, reason, self.island.generation))


def serve_island(spec: WorkerSpec, channel: Channel, arrays: Mapping[str, np.ndarray],
                 stop_requested: Callable[[], bool] = lambda: False) -> int:
    """Build the problem (from `arrays`: shared-memory views in a process) and the island, run
    the loop, return the exit code. Once it returned (and after a `gc.collect()` for cycles),
    nothing refers to `arrays`: the caller may close its segments. SystemExit and
    KeyboardInterrupt pass through: signal handlers are the caller's business."""
    try:
        problem = attach_problem(spec.problem_spec, arrays)
        if spec.time_limit_at is not None and spec.time_limit_at > time.time():
            problem.set_time_budget(spec.time_limit_at - time.time())
        IslandLoop(spec, problem, channel, stop_requested).run()
    except CoordinatorGone:
        pass
    except Exception:  # report it, then exit: the coordinator decides what next
        try:
            channel.send(protocol.encode(protocol.Failed(spec.island_id, traceback.format_exc(limit=8))))
        except Exception:  # best effort: the channel may be what failed
            pass
        return EXIT_ERROR
    return EXIT_OK


__all__ = ["EXIT_ERROR", "EXIT_OK", "IslandLoop", "MigrationSettings", "WorkerSpec", "serve_island"]

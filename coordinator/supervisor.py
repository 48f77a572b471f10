"""The supervisor: starts islands, keeps the coordinator's view of each, restarts the fallen.

Covers: `IslandRecord` (what the coordinator knows of one island: state, progress,
memory bytes it reported, failures, why it finished, when it last spoke) and
`Supervisor`: `start` (spawn, fresh or from the island's checkpoint), `note` (every
message from an island updates its record and its heartbeat), `on_exit` (called
exactly once per worker exit, like dask's `on_exit`: an expected end is recorded, a
crash is restarted from the checkpoint until MAX_FAILURES, then the run goes on
without the island; one that `defer_restart(island, exitcode)` claims, an island the
kernel killed while memory was tight, waits like a terminated one instead),
`terminate` (an emergency end; the pressure controller restarts it later), `check_liveness` (an island silent past its heartbeat deadline is stuck:
recorded, killed, and restarted like a crash), `stop_all` (ask, wait, kill).

Does not cover: building worker specs (handed in as `spec_for(island, resume)`), what
a message means beyond the record (router, best keeper, pressure controller), process
objects (the backend).
"""

from __future__ import annotations

import logging
import math
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from coordinator.backend import Backend, Exited
from coordinator.events import EventBus
from islands.params import WorkerSpec
from islands.protocol import (
    EVOLVING_STATES,
    Ack,
    Command,
    CommandKind,
    Done,
    Failed,
    IslandState,
    Started,
    Telemetry,
    ToCoordinator,
)

logger = logging.getLogger("islands.run")

MAX_FAILURES = 3  # crashes of one island before the run goes on without it
HEARTBEAT_FLOOR_S = 10.0  # an evolving island silent this long is stuck
HEARTBEAT_FACTOR = 10.0  # ... or this many times its slowest gap so far, if longer
STARTUP_DEADLINE_S = 300.0  # building the problem and the first generation may be slow
DONE_STATES = {"generations": IslandState.DONE, "stopped": IslandState.STOPPED,
               "terminated": IslandState.STOPPED, "hibernated": IslandState.HIBERNATED}


class SpawnFailed(Exception):
    """The backend could not start an island (one line, with the cause)."""


@dataclass
class IslandRecord:
    """The coordinator's view of one island, kept from its messages."""

    island: int
    state: IslandState = IslandState.STARTING
    generation: int = 0
    evaluations: int = 0
    best_fitness: float = math.inf
    population: int = 0
    population_bytes: int = 0
    cache_bytes: int = 0
    measured_bytes: int = 0  # USS from the last memory sample
    migration: dict[str, Any] = field(default_factory=dict)
    failures: int = 0
    finished: str | None = "not started"  # why its worker ended; None while one runs
    last_seen: float = 0.0
    slowest_gap: float = 0.0  # longest silence seen between two messages once evolving

    @property
    def live(self) -> bool:
        return self.finished is None

    def policy_row(self) -> dict[str, Any]:
        return {"island": self.island, "state": self.state, "population": self.population,
                "best_fitness": self.best_fitness, "measured_bytes": self.measured_bytes}


class Supervisor:
    """Start, watch, restart and stop the islands of one run through a Backend."""

    def __init__(self, backend: Backend, bus: EventBus, n_islands: int,
                 spec_for: Callable[[int, bool], WorkerSpec], clock: Callable[[], float], *,
                 max_failures: int = MAX_FAILURES, heartbeat_floor_s: float = HEARTBEAT_FLOOR_S,
                 startup_deadline_s: float = STARTUP_DEADLINE_S) -> None:
        self.backend = backend
        self.bus = bus
        self.spec_for = spec_for
        self.clock = clock
        self.max_failures = max_failures
        self.heartbeat_floor_s = heartbeat_floor_s
        self.startup_deadline_s = startup_deadline_s
        self.records = {island: IslandRecord(island) for island in range(n_islands)}
        self.failed_islands: list[int] = []
        self.error_texts: set[str] = set()
        self.stopping = False
        self.on_gone: list[Callable[[int, int], None]] = []  # (island, last generation)
        # (island, exit code) -> True if its restart waits for room (the pressure controller)
        self.defer_restart: Callable[[int, int | None], bool] = lambda island, exitcode: False

    # -- starting --------------------------------------------------------------------------
    def start(self, island: int, *, resume: bool = False) -> bool:
        """Spawn `island`; True if it starts from its checkpoint (else from scratch).

        SpawnFailed if the backend cannot start it (e.g. /dev/shm is full).
        """
        record = self.records[island]
        spec = self.spec_for(island, resume)
        try:
            self.backend.spawn(spec)
        except OSError as error:
            raise SpawnFailed(f"cannot start island {island}: {error.strerror or error} "
                              "(is /dev/shm full?)") from error
        record.finished = None
        record.state = IslandState.STARTING
        record.last_seen = self.clock()
        record.slowest_gap = 0.0
        return spec.resume_from is not None

    # -- what islands say ------------------------------------------------------------------
    def note(self, message: ToCoordinator) -> None:
        record = self.records.get(message.island)
        if record is None:
            return
        now = self.clock()
        if record.state in EVOLVING_STATES and record.generation > 0:
            record.slowest_gap = max(record.slowest_gap, now - record.last_seen)
        record.last_seen = now
        if isinstance(message, Telemetry):
            self._note_telemetry(record, message)
        elif isinstance(message, Started):
            record.state, record.generation = IslandState.RUNNING, message.generation
            record.population = message.population
            self.bus.publish("island_started", island=message.island, restored=message.restored,
                             generation=message.generation)
        elif isinstance(message, Ack):
            record.population, record.generation = message.population, message.generation
            if message.command == CommandKind.HIBERNATE:
                record.state = IslandState.HIBERNATED
        elif isinstance(message, Done):
            record.generation = max(record.generation, message.generation)
            self.bus.publish("island_done", island=message.island, reason=message.reason)
            if not record.live:
                return  # its end was decided here first (terminated, stuck, killed at stop)
            record.state = DONE_STATES.get(message.reason, IslandState.DONE)
            record.finished = f"done:{message.reason}"
            if message.reason == "terminated" and not self.stopping:
                logger.warning("[GA] Island %d was sent SIGTERM or SIGHUP: it wrote its checkpoint "
                               "and stopped; the run goes on without it (`islands resume` "
                               "restarts it)", message.island)
            if message.reason == "hibernated":
                logger.info("[GA] Island %d hibernated", message.island)
                self.bus.publish("hibernated", island=message.island)
        elif isinstance(message, Failed):
            self._note_error(message)

    def _note_telemetry(self, record: IslandRecord, message: Telemetry) -> None:
        # A Telemetry still queued when the island was terminated arrives afterwards: once the
        # worker's end is decided its state is the supervisor's (else it is never resumed).
        if record.live:
            record.state = IslandState(message.state)
        record.generation, record.evaluations = message.generation, message.evaluations
        record.best_fitness, record.population = message.best_fitness, message.population
        record.population_bytes, record.cache_bytes = message.population_bytes, message.cache_bytes
        record.migration = dict(message.migration)
        self.bus.publish("telemetry", island=record.island, state=str(record.state),
                         generation=message.generation, evaluations=message.evaluations,
                         best_fitness=message.best_fitness, population=message.population,
                         population_bytes=message.population_bytes,
                         cache_bytes=message.cache_bytes, cache_hits=message.cache_hits,
                         cache_misses=message.cache_misses, cache_off=message.cache_off,
                         migration=record.migration)

    def _note_error(self, message: Failed) -> None:
        # A bug in the problem code fails every restart the same way: one traceback.
        if message.error in self.error_texts:
            logger.error("[GA] Island %d failed again with the same error", message.island)
            self.bus.publish("island_error", island=message.island, error="same as before",
                             repeated=True)
            return
        self.error_texts.add(message.error)
        logger.error("[GA] Island %d failed:\n%s", message.island, message.error.rstrip())
        self.bus.publish("island_error", island=message.island, error=message.error)

    # -- ends ------------------------------------------------------------------------------
    def on_exit(self, exited: Exited) -> None:
        """A worker ended (reported once by the backend): record, restart or give up."""
        record = self.records.get(exited.worker)
        if record is None:
            return
        if record.finished == "crashed":
            # check_liveness already told on_gone when it killed this worker: once per exit.
            return
        for callback in self.on_gone:
            callback(record.island, record.generation)
        if record.finished is not None:
            return  # it said why it ended (done, hibernated, terminated, stuck and handled)
        self._crashed(record, exited.exitcode, "crash")

    def _crashed(self, record: IslandRecord, exitcode: int | None, why: str) -> None:
        island = record.island
        record.measured_bytes = 0
        if self.stopping:
            # Ending while the run stops (a signal to the whole process group, the stop
            # grace) is no failure: its last checkpoint is what resume starts from.
            record.finished, record.state = "ended at stop", IslandState.STOPPED
            logger.info("[GA] Island %d ended during the stop (exit code %s)", island, exitcode)
            self.bus.publish("island_done", island=island, reason="ended at stop",
                             exitcode=exitcode)
            return
        record.finished, record.state = "crashed", IslandState.FAILED
        record.failures += 1
        self.bus.publish("crash", island=island, exitcode=exitcode, failures=record.failures,
                         reason=why)
        if record.failures >= self.max_failures:
            self.failed_islands.append(island)
            logger.warning("[GA] Island %d %s (exit code %s, failure %d of %d); the run goes on "
                           "without it", island, _died(why, exitcode), exitcode, record.failures,
                           self.max_failures)
            self.bus.publish("island_failed", island=island, failures=record.failures)
            return
        if self.defer_restart(island, exitcode):
            # Restarting at once would rebuild the peak the kernel just killed it for.
            record.finished, record.state = "terminated", IslandState.HIBERNATED
            logger.warning("[GA] Island %d %s (failure %d of %d); it comes back, shrunk, once "
                           "its slice fits", island, _died(why, exitcode), record.failures,
                           self.max_failures)
            self.bus.publish("restart_deferred", island=island, reason="memory")
            return
        from_checkpoint = self.restart(island)
        if from_checkpoint is None:
            return
        logger.warning("[GA] Island %d %s (exit code %s, failure %d of %d); restarted from %s",
                       island, _died(why, exitcode), exitcode, record.failures, self.max_failures,
                       "its last checkpoint" if from_checkpoint else "a fresh start")
        self.bus.publish("restart", island=island, reason=why, from_checkpoint=from_checkpoint)

    def restart(self, island: int) -> bool | None:
        """Start `island` again from its checkpoint; None if it cannot be started: the run
        goes on without it (a full /dev/shm at a restart must not end the run)."""
        try:
            return self.start(island, resume=True)
        except SpawnFailed as error:
            record = self.records[island]
            record.finished, record.state = "crashed", IslandState.FAILED
            self.failed_islands.append(island)
            logger.warning("[GA] %s; the run goes on without it", error)
            self.bus.publish("island_failed", island=island, failures=record.failures,
                             error=str(error))
            return None

    def terminate(self, island: int, grace: float = 0.0) -> None:
        """End `island` now (memory emergency); it is not a failure and is restarted later."""
        record = self.records[island]
        # HIBERNATED to the policy: its checkpoint waits for a calm period, like a hibernation.
        record.finished, record.state, record.measured_bytes = "terminated", IslandState.HIBERNATED, 0
        self.backend.kill(island, grace)

    def check_liveness(self) -> list[int]:
        """Islands found stuck now: silent past their deadline. Each is killed and restarted."""
        now = self.clock()
        stuck = []
        for record in self.records.values():
            if not record.live or record.state not in EVOLVING_STATES:
                continue
            deadline = self.deadline(record)
            if now - record.last_seen > deadline:
                stuck.append(record.island)
                logger.warning("[GA] Island %d sent nothing for %.0fs (deadline %.0fs): stuck",
                               record.island, now - record.last_seen, deadline)
                self.bus.publish("stuck", island=record.island, silent_s=round(now - record.last_seen, 3),
                                 deadline_s=round(deadline, 3))
                # No grace: its SIGTERM handler only acts between generations, never reached.
                self.backend.kill(record.island, 0.0)
                # The restart below replaces the worker before the backend reports its exit:
                # tell on_gone now (SourceGone to neighbours, its queued commands dropped).
                for callback in self.on_gone:
                    callback(record.island, record.generation)
                self._crashed(record, None, "stuck")
        return stuck

    def deadline(self, record: IslandRecord) -> float:
        if record.generation == 0 or record.state == IslandState.STARTING:
            return self.startup_deadline_s
        return max(self.heartbeat_floor_s, HEARTBEAT_FACTOR * record.slowest_gap)

    def stop_all(self, grace: float, dispatch: Callable[[Any], None]) -> None:
        """Ask every live island to stop, pass on what they say, kill what is left at `grace`."""
        self.stopping = True
        live = [r.island for r in self.records.values() if r.live]
        for island in live:
            self.send_command(island, CommandKind.STOP, 0.0, seq=-1)
        for island in live:
            record = self.records[island]
            silent = self.clock() - record.last_seen
            # Already silent far past its usual gap: it will not answer, so no grace for it.
            if record.generation > 0 and silent > max(2.0, 4 * record.slowest_gap):
                record.finished = "killed at stop"
                self.backend.kill(island, 0.0)
        deadline = self.clock() + grace
        while self.clock() < deadline and any(self.records[i].live for i in live):
            for item in self.backend.receive(0.1):
                dispatch(item)
        for island in live:
            if self.records[island].live:
                self.records[island].finished = "killed at stop"
                self.backend.kill(island, 0.0)  # it was asked `grace` seconds ago
        for item in self.backend.receive(0.0):
            dispatch(item)

    def send_command(self, island: int, kind: CommandKind, arg: float, *, seq: int) -> bool:
        return self.backend.send(island, Command(kind, float(arg), seq))

    # -- views -----------------------------------------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        """One policy row per island; a dead worker never reads as evolving."""
        rows = []
        for record in self.records.values():
            row = record.policy_row()
            if not record.live and row["state"] in EVOLVING_STATES:
                row["state"] = IslandState.FAILED
            rows.append(row)
        return rows

    def live_islands(self) -> list[int]:
        return [r.island for r in self.records.values() if r.live]

    def waiting_islands(self) -> list[int]:
        """Hibernated or terminated islands that the pressure controller will bring back."""
        return [r.island for r in self.records.values()
                if not r.live and r.finished in ("done:hibernated", "terminated")]


def _died(why: str, exitcode: int | None) -> str:
    if why == "stuck":
        return "was stuck and was killed"
    if exitcode == -signal.SIGKILL:  # we did not send it: the kernel's OOM killer, most likely
        return "was killed by the kernel (SIGKILL), probably out of memory,"
    return "died"


__all__ = ["MAX_FAILURES", "IslandRecord", "SpawnFailed", "Supervisor"]

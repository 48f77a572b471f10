"""The supervisor (coordinator.supervisor) over the in-thread backend: real worker loops,
real encoding, real checkpoint files; only the supervisor's clock is a fake one.

Islands evolve the built-in `sphere:dim=8`; the stuck-island tests use `Gated`, a sphere
whose evaluate blocks on a `threading.Event` once the test arms it (registered as the
problem `gated` for the test's duration; the in-thread worker builds it from its spec).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from threaded_parts import WAIT_S, FakeClock, Gate

from coordinator.backend import Exited, InThreadBackend
from coordinator.events import EventBus
from coordinator.supervisor import MAX_FAILURES, Supervisor
from islands.params import IslandParams
from islands.protocol import CommandKind, Done, IslandState, Started, Telemetry
from islands.worker import MigrationSettings, WorkerSpec


# --- building the parts by hand ------------------------------------------------------------------
class Harness:
    """Backend, bus (with a list subscriber) and supervisor; `pump` feeds messages through."""

    def __init__(self, tmp_path, n_islands: int, *, problems=None, clock=None, **supervisor_args):
        self.tmp_path = tmp_path
        self.problems = problems or {}
        self.clock = clock if clock is not None else FakeClock()
        self.backend = InThreadBackend()
        self.events: list[dict] = []
        self.bus = EventBus(self.clock)
        self.bus.subscribe(self.events.append)
        self.messages: list = []
        self.specs: list[WorkerSpec] = []
        self.supervisor = Supervisor(self.backend, self.bus, n_islands, self.spec_for, self.clock,
                                     **supervisor_args)

    def checkpoint(self, island: int):
        return self.tmp_path / f"island-{island}.msgpack"

    def spec_for(self, island: int, resume: bool) -> WorkerSpec:
        checkpoint = self.checkpoint(island)
        spec = WorkerSpec(
            island_id=island, n_islands=len(self.supervisor.records), run_id="test-run",
            problem_spec=self.problems.get(island, "sphere:dim=8"),
            params=IslandParams(population=8), checkpoint_path=str(checkpoint), run_seed=11,
            migration=MigrationSettings(migrants=0), telemetry_s=0.02, best_report_s=0.02,
            resume_from=str(checkpoint) if resume and checkpoint.exists() else None)
        self.specs.append(spec)
        return spec

    def dispatch(self, item) -> None:
        self.messages.append(item)
        if isinstance(item, Exited):
            self.supervisor.on_exit(item)
        else:
            self.supervisor.note(item)

    def pump(self, until, what: str = "condition") -> None:
        deadline = time.monotonic() + WAIT_S
        while not until():
            if time.monotonic() > deadline:
                kinds = [e["event"] for e in self.events[-12:]]
                raise AssertionError(f"timed out waiting for {what}; last events: {kinds}")
            for item in self.backend.receive(0.05):
                self.dispatch(item)

    def drain(self) -> None:
        for item in self.backend.receive(0.0):
            self.dispatch(item)

    def pump_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for item in self.backend.receive(0.05):
                self.dispatch(item)

    def evolving(self, *islands: int) -> bool:
        records = self.supervisor.records
        return all(records[i].state == IslandState.RUNNING and records[i].generation > 0
                   for i in islands)

    def of(self, kind: str, island: int | None = None) -> list[dict]:
        return [e for e in self.events
                if e["event"] == kind and (island is None or e.get("island") == island)]

    def started(self, island: int) -> list[Started]:
        return [m for m in self.messages if isinstance(m, Started) and m.island == island]

    def close(self) -> None:
        self.backend.close()


@pytest.fixture
def harness(tmp_path):
    made = []

    def make(n_islands, **kwargs):
        made.append(Harness(tmp_path, n_islands, **kwargs))
        return made[-1]

    yield make
    for h in made:
        h.close()


# --- tests ----------------------------------------------------------------------------------------
def test_islands_start_and_report(harness):
    h = harness(2)
    for island in (0, 1):
        h.supervisor.start(island)
    assert all(r.state == IslandState.STARTING for r in h.supervisor.records.values())
    h.pump(lambda: h.evolving(0, 1), "both islands evolving")
    for island in (0, 1):
        record = h.supervisor.records[island]
        assert record.live and record.finished is None
        assert record.population == 8
        assert record.evaluations > 0
        assert np.isfinite(record.best_fitness)
        assert [e["restored"] for e in h.of("island_started", island)] == [False]
        telemetry = h.of("telemetry", island)
        assert telemetry and telemetry[-1]["generation"] > 0
    assert h.supervisor.live_islands() == [0, 1]
    assert h.supervisor.failed_islands == []
    assert not h.of("crash")


def test_killed_island_is_restarted_from_its_checkpoint(harness):
    h = harness(2)
    h.supervisor.start(0)
    h.supervisor.start(1)
    h.pump(lambda: h.evolving(0, 1) and h.checkpoint(0).exists(), "island 0's first checkpoint")
    h.backend.kill(0, 5.0)  # no Done: a crash
    h.pump(lambda: h.of("restart", 0), "the restart")
    kinds = [e["event"] for e in h.events if e.get("island") == 0 and e["event"] in (
        "crash", "restart", "island_failed")]
    assert kinds == ["crash", "restart"]
    assert h.of("crash", 0)[0]["failures"] == 1
    assert h.of("crash", 0)[0]["reason"] == "crash"
    assert h.supervisor.records[0].failures == 1
    assert h.specs[-1].island_id == 0 and h.specs[-1].resume_from == str(h.checkpoint(0))
    assert h.of("restart", 0)[0]["from_checkpoint"] is True
    h.pump(lambda: len(h.started(0)) == 2, "the restarted island's Started")
    restarted = h.started(0)[1]
    assert restarted.restored is True
    assert restarted.generation > 0  # it goes on from its checkpoint, not from scratch
    h.pump(lambda: h.supervisor.records[0].generation > restarted.generation, "evolving again")
    assert h.supervisor.records[0].live
    # The other island was not touched.
    assert h.supervisor.records[1].failures == 0 and len(h.started(1)) == 1
    assert h.supervisor.failed_islands == []


def test_island_is_given_up_after_max_failures(harness):
    h = harness(2)
    h.supervisor.start(0)
    h.supervisor.start(1)
    for crash in range(1, MAX_FAILURES + 1):
        h.pump(lambda crash=crash: len(h.started(0)) == crash and h.evolving(0),
               f"start {crash} of island 0")
        h.backend.kill(0, 5.0)
        h.pump(lambda crash=crash: len(h.of("crash", 0)) == crash, f"crash {crash}")
    assert [e["failures"] for e in h.of("crash", 0)] == [1, 2, 3]
    assert len(h.of("restart", 0)) == MAX_FAILURES - 1
    assert [e["failures"] for e in h.of("island_failed", 0)] == [MAX_FAILURES]
    assert h.supervisor.failed_islands == [0]
    record = h.supervisor.records[0]
    assert not record.live and record.state == IslandState.FAILED
    assert h.supervisor.live_islands() == [1]
    assert 0 not in h.supervisor.waiting_islands()
    row = next(r for r in h.supervisor.snapshot() if r["island"] == 0)
    assert row["state"] == IslandState.FAILED
    # No more restarts: island 0 stays gone while island 1 goes on.
    generation = h.supervisor.records[1].generation
    h.pump(lambda: h.supervisor.records[1].generation > generation + 5, "island 1 evolving")
    assert len(h.started(0)) == MAX_FAILURES
    assert len(h.of("restart", 0)) == MAX_FAILURES - 1


def test_on_gone_fires_once_per_exit(harness):
    h = harness(2)
    gone: list[tuple[int, int]] = []
    h.supervisor.on_gone.append(lambda island, generation: gone.append((island, generation)))
    h.supervisor.start(0)
    h.supervisor.start(1)
    h.pump(lambda: h.evolving(0, 1), "both islands evolving")
    # A crash: one call, with the last generation the supervisor knew.
    h.backend.kill(0, 5.0)
    h.pump(lambda: h.of("restart", 0), "the restart")
    exit_at = next(i for i, m in enumerate(h.messages) if isinstance(m, Exited))
    last_generation = max(m.generation for m in h.messages[:exit_at]
                          if isinstance(m, Telemetry) and m.island == 0)
    assert last_generation > 0
    assert gone == [(0, last_generation)]
    h.pump(lambda: len(h.started(0)) == 2 and h.evolving(0), "island 0 back")
    # A stop: one call after its Done.
    assert h.supervisor.send_command(1, CommandKind.STOP, 0.0, seq=1)
    h.pump(lambda: any(isinstance(m, Exited) and m.worker == 1 for m in h.messages), "exit of 1")
    done = next(m for m in h.messages if isinstance(m, Done) and m.island == 1)
    assert gone[1:] == [(1, done.generation)]
    assert h.supervisor.records[1].finished == "done:stopped"
    # Nothing more comes for exits already reported, and a worker not of this run is ignored.
    h.pump_for(0.3)
    h.supervisor.on_exit(Exited(7, 0))
    assert len(gone) == 2
    assert [m.worker for m in h.messages if isinstance(m, Exited)] == [0, 1]


def _arm_and_wait(h: Harness, gate: Gate) -> None:
    """Block the gated island inside evaluate, and take in everything it sent before that."""
    gate.armed.set()
    assert gate.entered.wait(WAIT_S), "the gated island never evaluated again"
    h.drain()


def test_stuck_island_is_detected_and_restarted(harness, gate):
    clock = FakeClock()
    h = harness(2, problems={0: gate.spec}, clock=clock, heartbeat_floor_s=1.0,
                startup_deadline_s=5.0)
    gone: list[tuple[int, int]] = []
    h.supervisor.on_gone.append(lambda island, generation: gone.append((island, generation)))
    h.supervisor.start(0)
    h.supervisor.start(1)
    h.pump(lambda: h.evolving(0, 1) and h.checkpoint(0).exists(), "both islands evolving")
    assert h.supervisor.check_liveness() == []  # nobody silent yet (the fake clock stands still)
    _arm_and_wait(h, gate)
    silent_from = h.supervisor.records[0].last_seen
    clock.advance(2.0)  # past the heartbeat floor, not past the start-up deadline
    # Island 1 speaks after the jump: only island 0 is silent.
    h.pump(lambda: h.supervisor.records[1].last_seen == clock.now, "island 1 after the jump")
    assert h.supervisor.check_liveness() == [0]
    stuck = h.of("stuck", 0)
    assert len(stuck) == 1
    assert stuck[0]["silent_s"] == pytest.approx(clock.now - silent_from)
    assert stuck[0]["deadline_s"] == pytest.approx(1.0)
    assert [e["reason"] for e in h.of("crash", 0)] == ["stuck"]
    assert [(e["reason"], e["from_checkpoint"]) for e in h.of("restart", 0)] == [("stuck", True)]
    assert h.supervisor.records[0].failures == 1
    assert h.supervisor.records[1].failures == 0 and not h.of("stuck", 1)
    # Its neighbours hear that it is gone (router.source_gone, pressure.commands.forget).
    assert [island for island, _ in gone] == [0]
    # The restarted island comes back from its checkpoint and evolves (the gate is spent).
    h.pump(lambda: len(h.started(0)) == 2, "the restarted island's Started")
    assert h.started(0)[1].restored is True
    back = h.started(0)[1].generation
    h.pump(lambda: h.evolving(0) and h.supervisor.records[0].generation > back,
           "island 0 evolving again")
    assert h.supervisor.check_liveness() == []  # it spoke at the current (fake) time


def test_stuck_island_given_up_is_gone_once(harness, gate):
    clock = FakeClock()
    h = harness(1, problems={0: gate.spec}, clock=clock, heartbeat_floor_s=1.0,
                startup_deadline_s=5.0, max_failures=1)
    gone: list[tuple[int, int]] = []
    h.supervisor.on_gone.append(lambda island, generation: gone.append((island, generation)))
    h.supervisor.start(0)
    h.pump(lambda: h.evolving(0), "island 0 evolving")
    _arm_and_wait(h, gate)
    clock.advance(2.0)
    assert h.supervisor.check_liveness() == [0]
    assert h.supervisor.failed_islands == [0]
    assert not h.of("restart")
    # Its exit is reported after the supervisor gave it up: on_gone is not told twice.
    h.pump(lambda: any(isinstance(m, Exited) for m in h.messages), "the exit of island 0")
    assert gone == [(0, h.supervisor.records[0].generation)]
    assert h.supervisor.check_liveness() == []  # a given-up island is not watched any more


def test_island_silent_at_startup_gets_the_startup_deadline(harness, gate):
    clock = FakeClock()
    gate.armed.set()  # blocks at its very first evaluate: building the initial population
    h = harness(1, problems={0: gate.spec}, clock=clock, heartbeat_floor_s=1.0,
                startup_deadline_s=5.0)
    h.supervisor.start(0)
    assert gate.entered.wait(WAIT_S)
    h.drain()
    assert h.supervisor.records[0].generation == 0
    clock.advance(4.0)  # past the heartbeat floor, within the start-up deadline
    assert h.supervisor.check_liveness() == []
    clock.advance(2.0)
    assert h.supervisor.check_liveness() == [0]
    assert h.of("stuck", 0)[0]["deadline_s"] == pytest.approx(5.0)


def test_stop_all_asks_waits_and_ends_every_island_with_its_done(harness):
    h = harness(3, clock=time.monotonic)
    for island in range(3):
        h.supervisor.start(island)
    h.pump(lambda: h.evolving(0, 1, 2), "three islands evolving")
    h.supervisor.stop_all(WAIT_S, h.dispatch)
    dones = {m.island: m for m in h.messages if isinstance(m, Done)}
    assert sorted(dones) == [0, 1, 2]
    assert {m.reason for m in dones.values()} == {"stopped"}
    for island in range(3):
        record = h.supervisor.records[island]
        assert record.finished == "done:stopped"
        assert record.state == IslandState.STOPPED
        assert h.checkpoint(island).exists()  # a stopped island saves, so the run can resume
    assert sorted(m.worker for m in h.messages if isinstance(m, Exited)) == [0, 1, 2]
    assert all(m.exitcode == 0 for m in h.messages if isinstance(m, Exited))
    assert h.supervisor.live_islands() == []
    assert not h.of("crash") and not h.of("restart")
    assert h.supervisor.failed_islands == []


def test_stop_all_kills_an_island_that_does_not_answer(harness, gate):
    h = harness(2, problems={0: gate.spec}, clock=time.monotonic)
    h.supervisor.start(0)
    h.supervisor.start(1)
    h.pump(lambda: h.evolving(0, 1), "both islands evolving")
    _arm_and_wait(h, gate)
    h.supervisor.stop_all(2.0, h.dispatch)
    assert h.supervisor.records[0].finished == "killed at stop"
    assert h.supervisor.records[1].finished == "done:stopped"
    assert [m.island for m in h.messages if isinstance(m, Done)] == [1]
    assert h.supervisor.live_islands() == []
    assert not h.of("restart")  # stopping: nothing comes back

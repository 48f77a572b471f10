"""The pressure controller (coordinator.pressure) on the in-thread backend.

Islands are real (worker loops in threads, real encoding, real checkpoint files); the one
fake is the memory reading (`InThreadBackend(memory_reader=...)` replays a script: a
pressure spike cannot be produced on demand) and the clock of the controller, supervisor
and bus, which a test step advances by one monitor interval.
"""

from __future__ import annotations

import time

import pytest
from threaded_parts import WAIT_S, FakeClock

import coordinator.pressure as pressure_module
from coordinator.backend import Exited, InThreadBackend, MemoryReading
from coordinator.events import EventBus
from coordinator.policy import ActionKind
from coordinator.pressure import PressureController
from coordinator.supervisor import Supervisor
from islands.params import IslandParams
from islands.protocol import Ack, CommandKind, Done, IslandState, Started
from islands.worker import MigrationSettings, WorkerSpec
from memory import MemoryManager, PressureLevel
from memory.probe import ProcessMemory

MIB = 2**20
BUDGET = 100 * MIB
SLICE = 40 * MIB
INTERVAL = 0.1  # fake seconds per monitor interval (one test step)
NO_DEADLINE = 1e9  # command deadline where a test is not about deadlines (a busy machine is slow)



class MemoryScript:
    """The memory reader: per island (pss, uss) in MiB, for the islands that are live now."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.own_mib = 1
        self.islands: dict[int, tuple[int, int]] = {}
        self.default = (10, 5)
        self.own_domain = "local"  # where the coordinator runs (several domains: a node's name)
        self.readings: list[MemoryReading] = []

    def __call__(self, live: list[int]) -> MemoryReading:
        workers = {}
        for island in live:
            pss, uss = self.islands.get(island, self.default)
            workers[island] = ProcessMemory(pss * MIB, uss * MIB, pss * MIB)
        own = ProcessMemory(self.own_mib * MIB, self.own_mib * MIB, self.own_mib * MIB)
        reading = MemoryReading(self.clock(), own, workers, host_available_bytes=1 << 40,
                                own_domain=self.own_domain)
        self.readings.append(reading)
        return reading


# --- a problem that blocks on demand (an island that never answers) -------------------------------


# --- the parts, wired as coordinator.setup wires them ---------------------------------------------
class Harness:
    def __init__(self, tmp_path, n_islands: int = 2, *, problems=None, best_island=None,
                 min_population: int = 4, command_deadline_s: float = NO_DEADLINE,
                 domains=None, placement=None) -> None:
        self.tmp_path = tmp_path
        self.n = n_islands
        self.problems = problems or {}
        self.clock = FakeClock()
        self.script = MemoryScript(self.clock)
        # `domains` + `placement`: islands on several nodes, each with its own budget.
        self.backend = InThreadBackend(memory_reader=self.script, placement=placement,
                                       **({"domains": domains} if domains else {}))
        self.events: list[dict] = []
        self.bus = EventBus(self.clock)
        self.bus.subscribe(self.events.append)
        self.messages: list = []
        self.acks: list[dict] = []  # each Ack with the island's flight before and after it
        self.manager = MemoryManager(BUDGET, n_islands=n_islands, interval=INTERVAL,
                                     reserve_bytes=0)
        for island in range(n_islands):
            self.manager.set_slice(island, SLICE)
        self.supervisor = Supervisor(self.backend, self.bus, n_islands, self.spec_for, self.clock)
        self.pressure = PressureController(
            self.manager, self.backend, self.supervisor, self.bus, self.clock, interval=INTERVAL,
            min_population=min_population, target_population=8,
            best_island=best_island or (lambda: None), command_deadline_s=command_deadline_s)
        self.supervisor.on_gone.append(lambda island, _g: self.pressure.commands.forget(island))
        self.supervisor.defer_restart = self.pressure.defer_restart

    def checkpoint(self, island: int):
        return self.tmp_path / f"island-{island}.msgpack"

    def spec_for(self, island: int, resume: bool) -> WorkerSpec:
        checkpoint = self.checkpoint(island)
        return WorkerSpec(
            island_id=island, n_islands=self.n, run_id="pressure-test",
            problem_spec=self.problems.get(island, "sphere:dim=8"),
            params=IslandParams(population=8, min_population=4), checkpoint_path=str(checkpoint),
            run_seed=2, migration=MigrationSettings(migrants=0), telemetry_s=0.02,
            resume_from=str(checkpoint) if resume and checkpoint.exists() else None)

    def start(self) -> None:
        for island in range(self.n):
            self.supervisor.start(island)

    def dispatch(self, item) -> None:
        self.messages.append(item)
        if isinstance(item, Exited):
            self.supervisor.on_exit(item)
            return
        self.supervisor.note(item)
        if isinstance(item, Ack):
            flights = self.pressure.commands.in_flight
            before = flights.get(item.island)
            self.pressure.on_ack(item)
            self.acks.append({"ack": item, "before": before, "after": flights.get(item.island),
                              "populations": {i: r.population
                                              for i, r in self.supervisor.records.items()}})

    def step(self, receive_s: float = 0.02) -> None:
        """One monitor interval: fake time moves on, messages are handled, the controller polls."""
        self.clock.advance(INTERVAL)
        for item in self.backend.receive(receive_s):
            self.dispatch(item)
        self.pressure.poll()

    def run_until(self, until, what: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while not until():
            if time.monotonic() > deadline:
                tail = [(e["event"], e.get("island"), e.get("action") or e.get("command"))
                        for e in self.events if e["event"] not in ("telemetry", "memory")][-12:]
                raise AssertionError(f"timed out waiting for {what}; last events: {tail}")
            self.step()

    def evolving(self) -> bool:
        return all(r.state in (IslandState.RUNNING, IslandState.SHRUNK) and r.generation > 0
                   for r in self.supervisor.records.values())

    def of(self, kind: str, **match) -> list[dict]:
        return [e for e in self.events
                if e["event"] == kind and all(e.get(k) == v for k, v in match.items())]

    def started(self, island: int) -> list[Started]:
        return [m for m in self.messages if isinstance(m, Started) and m.island == island]

    def exited(self, island: int) -> bool:
        return any(isinstance(m, Exited) and m.worker == island for m in self.messages)

    def index(self, event: dict) -> int:
        return next(i for i, e in enumerate(self.events) if e is event)

    def close(self) -> None:
        self.backend.close()


@pytest.fixture
def harness(tmp_path):
    made = []

    def make(*args, **kwargs):
        made.append(Harness(tmp_path, *args, **kwargs))
        return made[-1]

    yield make
    for h in made:
        h.close()


def _calm_start(h: Harness) -> None:
    h.start()
    h.run_until(h.evolving, "both islands evolving")
    assert h.pressure.level == PressureLevel.NORMAL
    assert not h.of("action")


# --- HIGH: shrink the largest, one at a time ------------------------------------------------------
def test_high_shrinks_the_island_with_the_largest_uss_and_its_ack_settles_the_flight(harness):
    h = harness()
    _calm_start(h)
    h.script.islands = {0: (45, 30), 1: (34, 10)}  # 80 % of the budget; island 0 the largest USS
    h.run_until(lambda: h.of("ack", command="shrink", island=0), "island 0's shrink ack")
    assert [(e["old"], e["new"]) for e in h.of("pressure")] == [("normal", "high")]
    first = h.of("action", action="shrink")[0]
    assert (first["island"], first["arg"], first["level"]) == (0, 0.5, "high")
    # The Ack settled the island's flight: the SHRINK was in flight before it, nothing after.
    entry = next(a for a in h.acks if a["ack"].command == CommandKind.SHRINK)
    assert entry["ack"].island == 0
    assert entry["before"] is not None and entry["before"].action.kind == ActionKind.SHRINK
    assert entry["before"].seq == entry["ack"].seq
    assert entry["after"] is None
    assert entry["ack"].population == 4
    assert entry["populations"] == {0: 4, 1: 8}  # halved, seen in the records; 1 untouched
    # Island 0 is at the minimum now: the next shrink, after the first settled, is island 1's.
    h.run_until(lambda: h.of("ack", command="shrink", island=1), "island 1's shrink ack")
    shrinks = h.of("action", action="shrink")
    assert [e["island"] for e in shrinks] == [0, 1]
    assert h.index(shrinks[1]) > h.index(h.of("ack", command="shrink", island=0)[0])
    assert h.supervisor.records[1].population == 4
    h.run_until(lambda: all(h.supervisor.records[i].state == IslandState.SHRUNK for i in (0, 1)),
                "both islands report themselves shrunk")
    assert h.supervisor.records[0].population == 4
    for _ in range(10):
        h.step()
    assert len(h.of("action", action="shrink")) == 2  # nothing above the minimum is left
    # The level was entered with the ELEVATED steps too: caches cleared, growth paused.
    for island in (0, 1):
        assert h.of("ack", command="clear_cache", island=island)
        assert h.of("ack", command="pause_growth", island=island)


# --- CRITICAL: hibernate, then resume at NORMAL ---------------------------------------------------
def test_critical_hibernates_an_island_and_normal_resumes_it_from_its_checkpoint(harness):
    h = harness(best_island=lambda: 1)  # island 1 holds the best: it is never hibernated
    _calm_start(h)
    h.script.islands = {0: (50, 30), 1: (39, 10)}  # 90 %
    h.run_until(lambda: h.exited(0), "island 0 hibernated and gone")
    assert h.of("pressure")[0]["new"] == "critical"
    assert [e["island"] for e in h.of("action", action="hibernate")] == [0]
    done = next(m for m in h.messages if isinstance(m, Done) and m.island == 0)
    assert done.reason == "hibernated"
    assert h.of("hibernated", island=0)
    record = h.supervisor.records[0]
    assert record.state == IslandState.HIBERNATED and not record.live
    assert h.supervisor.waiting_islands() == [0]
    assert h.checkpoint(0).exists()
    assert not h.of("crash")
    assert h.supervisor.records[1].live
    # Its memory went with it: the readings leave it out, the level falls, it comes back.
    h.script.islands[0] = (10, 5)
    h.run_until(lambda: len(h.started(0)) == 2, "island 0 resumed")
    assert h.of("pressure")[-1]["new"] == "normal"
    resume = h.of("action", action="resume", island=0)
    assert len(resume) == 1 and resume[0]["level"] == "normal"
    assert h.index(resume[0]) > h.index(h.of("pressure")[-1])  # only once back at NORMAL
    assert [(e["reason"], e["from_checkpoint"]) for e in h.of("restart", island=0)] == [
        ("resume", True)]
    back = h.started(0)[1]
    assert back.restored is True
    assert back.generation == done.generation  # exactly where it hibernated
    h.run_until(lambda: h.supervisor.records[0].generation > back.generation, "island 0 evolving")
    assert h.supervisor.records[0].live
    assert h.supervisor.waiting_islands() == []


# --- EMERGENCY: terminate, restart later (shrunk) -------------------------------------------------
def test_emergency_terminates_the_largest_island_and_restarts_it_later(harness):
    h = harness()
    _calm_start(h)
    h.script.islands = {0: (60, 30), 1: (37, 10)}  # 98 %
    h.run_until(lambda: h.of("action", action="terminate"), "a terminate")
    assert h.of("pressure")[0]["new"] == "emergency"
    assert [e["island"] for e in h.of("action", action="terminate")] == [0]
    h.script.islands[0] = (10, 5)  # what it comes back with
    h.run_until(lambda: h.exited(0), "island 0 gone")
    record = h.supervisor.records[0]
    assert record.finished == "terminated"
    assert record.state == IslandState.HIBERNATED  # waits for calm, like a hibernation
    assert not h.of("crash") and record.failures == 0  # an emergency end is no failure
    assert not any(isinstance(m, Done) and m.island == 0 for m in h.messages)
    h.run_until(lambda: len(h.started(0)) == 2, "island 0 restarted")
    assert h.of("pressure")[-1]["new"] == "normal"
    assert [(e["reason"], e["from_checkpoint"]) for e in h.of("restart", island=0)] == [
        ("resume", True)]
    assert h.started(0)[1].restored is True
    # It comes back at half size, else it would rebuild the same peak at once.
    h.run_until(lambda: h.of("ack", command="shrink", island=0), "the shrink on restart")
    assert h.of("ack", command="shrink", island=0)[0]["population"] == 4


# --- an island that never answers -----------------------------------------------------------------
def test_a_silent_island_holds_the_controller_no_longer_than_the_command_deadline(harness, gate):
    deadline = 60.0  # fake seconds: far more steps than island 1 needs to answer
    h = harness(problems={0: gate.spec}, command_deadline_s=deadline)
    _calm_start(h)
    gate.armed.set()
    assert gate.entered.wait(WAIT_S)  # island 0 is stuck inside evaluate from now on
    # ELEVATED: every island is told to clear its cache and pause growth; island 0 never answers.
    h.script.islands = {0: (30, 10), 1: (35, 30)}  # 66 %
    h.run_until(lambda: h.of("ack", command="pause_growth", island=1), "island 1's acks")
    assert h.pressure.level == PressureLevel.ELEVATED
    assert 0 in h.pressure.commands.in_flight
    sent_at = h.pressure.commands.in_flight[0].sent_at
    # HIGH now, island 1 the largest: nothing new goes out while island 0's command is in flight.
    h.script.islands = {0: (30, 10), 1: (48, 30)}  # 79 %
    for _ in range(5):
        h.step()
    assert h.pressure.level == PressureLevel.HIGH
    assert not h.of("action", action="shrink")
    # Once the deadline has passed, the controller acts again: island 1 is shrunk.
    h.clock.now = sent_at + deadline + INTERVAL
    steps = 0
    while not h.of("ack", command="shrink", island=1):
        h.step(receive_s=0.1)
        steps += 1
        # The fake time this takes stays well inside one more command deadline.
        assert steps * INTERVAL < deadline / 2, "the controller is still held by island 0"
    assert [e["island"] for e in h.of("action", action="shrink")] == [1]
    assert h.pressure.commands.expired >= 1
    assert h.supervisor.records[1].population == 4


# --- events ---------------------------------------------------------------------------------------
def test_memory_events_carry_per_island_pss_uss_and_slice(harness):
    h = harness()
    _calm_start(h)
    h.script.islands = {0: (12, 7), 1: (20, 9)}
    h.run_until(lambda: len(h.of("memory")) >= 3, "three memory events")
    event = h.of("memory")[-1]
    assert event["islands"] == {"0": {"pss": 12 * MIB, "uss": 7 * MIB, "slice": SLICE},
                                "1": {"pss": 20 * MIB, "uss": 9 * MIB, "slice": SLICE}}
    assert event["used_bytes"] == (1 + 12 + 20) * MIB
    assert event["budget_bytes"] == BUDGET
    assert event["coordinator_bytes"] == 1 * MIB
    assert event["level"] == "normal"
    # At most one per MEMORY_EVENT_S of the (fake) clock while the level does not change.
    times = [e["t"] for e in h.of("memory")]
    assert all(later - earlier >= pressure_module.MEMORY_EVENT_S - 1e-6
               for earlier, later in zip(times, times[1:], strict=False))
    # The USS of each island reached the supervisor's records (the policy picks by it).
    assert h.supervisor.records[0].measured_bytes == 7 * MIB
    assert h.supervisor.records[1].measured_bytes == 9 * MIB


def test_pressure_events_on_level_changes_only(harness):
    h = harness()
    _calm_start(h)
    h.script.islands = {0: (40, 5), 1: (25, 5)}  # 66 %: ELEVATED after two samples
    h.run_until(lambda: h.pressure.level == PressureLevel.ELEVATED, "ELEVATED")
    for _ in range(10):
        h.step()
    h.script.islands = {0: (10, 5), 1: (10, 5)}  # 21 %: NORMAL after three samples
    h.run_until(lambda: h.pressure.level == PressureLevel.NORMAL, "NORMAL again")
    for _ in range(10):
        h.step()
    changes = h.of("pressure")
    assert [(e["old"], e["new"]) for e in changes] == [("normal", "elevated"),
                                                        ("elevated", "normal")]
    assert changes[0]["used_bytes"] == 66 * MIB and changes[1]["used_bytes"] == 21 * MIB
    # A memory event goes with every change, at its level.
    for change in changes:
        assert any(e["t"] == change["t"] and e["level"] == change["new"]
                   for e in h.of("memory"))
    # ELEVATED was acted on once (cache and growth), NORMAL let growth resume.
    assert sorted(e["island"] for e in h.of("action", action="clear_cache")) == [0, 1]
    assert sorted(e["island"] for e in h.of("action", action="resume_growth")) == [0, 1]


# --- issue 11: actions never wait on a stuck island; no action the reading does not support --------
def test_emergency_terminates_at_once_while_a_stuck_island_holds_a_command(harness, gate):
    h = harness(problems={0: gate.spec}, command_deadline_s=NO_DEADLINE)
    _calm_start(h)
    gate.armed.set()
    assert gate.entered.wait(WAIT_S)  # island 0 hangs inside evaluate: it answers nothing
    h.script.islands = {0: (30, 10), 1: (35, 30)}  # 66 %: ELEVATED, commands to both
    h.run_until(lambda: h.of("ack", command="pause_growth", island=1), "island 1's acks")
    assert 0 in h.pressure.commands.in_flight  # island 0's command waits (no deadline here)
    h.script.islands = {0: (30, 10), 1: (68, 60)}  # 99 %: island 1 leaks
    h.run_until(lambda: h.of("action", action="terminate"), "a terminate")
    assert 0 in h.pressure.commands.in_flight or not h.supervisor.records[0].live
    assert [e["island"] for e in h.of("action", action="terminate")] == [1]  # the largest USS


def test_no_second_terminate_once_the_reading_shows_the_pressure_gone(harness):
    h = harness()
    _calm_start(h)
    h.script.islands = {0: (60, 30), 1: (37, 10)}  # 98 %
    h.run_until(lambda: h.of("action", action="terminate"), "a terminate")
    lagging = 0  # samples after island 0 left while the hysteresis still said EMERGENCY
    while h.pressure.level != PressureLevel.NORMAL:
        gone = h.exited(0)
        h.step()
        lagging += gone and h.pressure.level == PressureLevel.EMERGENCY
    # Island 0's memory went with it (38 %): the lagging level terminated nobody else.
    assert lagging >= 1
    assert len(h.of("action", action="terminate")) == 1
    assert h.supervisor.records[1].live


def test_an_island_comes_back_only_when_its_slice_fits_and_backs_off(harness):
    h = harness(best_island=lambda: 1)
    h.manager.set_slice(0, 60 * MIB)
    _calm_start(h)
    h.script.islands = {0: (50, 30), 1: (39, 10)}  # 90 %: CRITICAL, island 0 hibernates
    h.run_until(lambda: h.exited(0), "island 0 hibernated")
    h.script.islands[1] = (47, 40)  # NORMAL (48 %), but 48 + its 60 MiB slice > 100 MiB
    h.run_until(lambda: h.pressure.level == PressureLevel.NORMAL, "NORMAL")
    for _ in range(30):
        h.step()
    assert not h.of("action", action="resume")
    h.script.islands[1] = (30, 20)  # now 31 + 60 fits
    h.run_until(lambda: h.of("action", action="resume", island=0), "the resume")
    away = h.pressure.away
    assert away.times_away[0] == 1
    # A second time away waits twice the calm period before it may come back.
    away.leave(0, h.clock(), shrink=False)
    assert away.not_before[0] == pytest.approx(h.clock() + 2 * 3 * INTERVAL)
    assert not away.may_return(0, h.clock(), 0, SLICE, BUDGET)
    assert away.may_return(0, h.clock() + 2 * 3 * INTERVAL, 0, SLICE, BUDGET)
    assert not away.may_return(0, h.clock() + 2 * 3 * INTERVAL, BUDGET - SLICE + 1, SLICE, BUDGET)


# --- an island the kernel kills while memory is tight ----------------------------------------------
def test_an_island_sigkilled_under_pressure_comes_back_only_once_its_slice_fits(harness):
    h = harness()
    _calm_start(h)
    h.script.islands = {0: (45, 30), 1: (34, 10)}  # 80 %: HIGH
    h.run_until(lambda: h.pressure.level >= PressureLevel.HIGH, "HIGH pressure")
    # What the kernel's OOM killer leaves: the worker gone with -SIGKILL, nobody asked.
    h.backend.workers[0].exitcode.append(-9)
    h.backend.kill(0, 1.0)
    h.run_until(lambda: h.of("restart_deferred", island=0), "the deferred restart")
    record = h.supervisor.records[0]
    assert record.failures == 1 and h.of("crash", island=0)[0]["exitcode"] == -9
    assert not h.of("restart", island=0) and h.supervisor.waiting_islands() == [0]
    h.script.islands[1] = (70, 40)  # the other island uses what it freed: no room for a slice
    for _ in range(20):
        h.step()
    assert len(h.started(0)) == 1
    h.script.islands = {0: (10, 5), 1: (20, 10)}
    h.run_until(lambda: len(h.started(0)) == 2, "island 0 back")
    assert [e["reason"] for e in h.of("restart", island=0)] == ["resume"]
    h.run_until(lambda: h.of("ack", command="shrink", island=0), "the shrink on its return")


def test_an_island_sigkilled_in_calm_memory_is_restarted_at_once(harness):
    h = harness()
    _calm_start(h)
    h.backend.workers[0].exitcode.append(-9)
    h.backend.kill(0, 1.0)
    h.run_until(lambda: len(h.started(0)) == 2, "island 0 restarted")
    assert [e["reason"] for e in h.of("restart", island=0)] == ["crash"]
    assert not h.of("restart_deferred")


# --- when to sample -------------------------------------------------------------------------------
def test_samples_come_sooner_while_usage_climbs_fast_towards_the_budget():
    from coordinator.pressure import SampleSchedule

    schedule = SampleSchedule(interval=0.5, budget_bytes=600 * MIB, fastest=0.1)
    assert schedule.due(0.0)
    schedule.sampled(0.0, 100 * MIB)
    assert schedule.delay == 0.5 and not schedule.due(0.4) and schedule.due(0.5)
    schedule.sampled(0.5, 110 * MIB)  # 20 MiB/s: the budget is far off
    assert schedule.delay == 0.5
    schedule.sampled(1.0, 400 * MIB)  # 580 MiB/s, 200 MiB left: two samples before the budget
    assert schedule.delay == pytest.approx(200 / 580 / 2)
    schedule.sampled(1.2, 590 * MIB)
    assert schedule.delay == 0.1  # never more often than `fastest`
    # After a kill the usage falls; the growth seen lately is remembered, so the restarted
    # island is watched closely from its first second, and calm returns slowly.
    schedule.sampled(1.3, 50 * MIB)
    assert schedule.delay < 0.5
    schedule.sampled(61.3, 50 * MIB)
    assert schedule.delay == 0.5
    schedule.sampled(61.8, None)  # a failed reading: the plain interval
    assert schedule.delay == 0.5 and schedule.last_used == 50 * MIB

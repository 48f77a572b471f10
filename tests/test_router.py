"""The migrant router (coordinator.router) with real islands in threads (InThreadBackend).

What an island received is read from its own telemetry (its migration counters), never
from the router: routed migrants must really arrive, and only where the topology says.
A command sent after the deliveries is the marker: the island handles its inbox in order,
and the telemetry it sends with the command's Ack counts everything delivered before it.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from threaded_parts import WAIT_S, FakeClock

import coordinator.router as router_module
from coordinator.backend import Exited, InThreadBackend
from coordinator.events import EventBus
from coordinator.router import MigrantRouter
from coordinator.supervisor import Supervisor
from islands.migration import encode_migrants
from islands.params import IslandParams
from islands.protocol import Ack, CommandKind, Done, Migrants, Started, Telemetry
from islands.topology import TOPOLOGIES, Topology
from islands.worker import MigrationSettings, WorkerSpec

RUN_ID = "router-test"
DIM = 8
SEQ = itertools.count(1)



def payload(source: int, generation: int, count: int = 3) -> bytes:
    """Real migrant wire bytes: `count` sphere genomes of this run."""
    genomes = np.full((count, DIM), 0.25)
    return encode_migrants(RUN_ID, source, generation, genomes, np.full(count, DIM * 0.0625))


class Archipelago:
    """Islands in threads, a supervisor and a router wired as `coordinator.setup` wires them."""

    def __init__(self, tmp_path, n_islands: int, topology: str = "ring", *, migrants: int = 0,
                 sync: bool = False, is_live=None, **spec_args) -> None:
        self.tmp_path = tmp_path
        self.n = n_islands
        interval = spec_args.pop("migration_interval", 5)
        self.migration = MigrationSettings(topology, interval, migrants, sync, 4 * WAIT_S)
        self.spec_args = spec_args
        self.topology = Topology(topology, n_islands, seed=5)
        self.backend = InThreadBackend()
        self.events: list[dict] = []
        self.bus = EventBus(time.monotonic)
        self.bus.subscribe(self.events.append)
        self.messages: list = []
        self.supervisor = Supervisor(self.backend, self.bus, n_islands, self.spec_for,
                                     time.monotonic)
        live = is_live or (lambda island: self.supervisor.records[island].live)
        self.router = MigrantRouter(self.topology, self.backend, self.bus, live, time.monotonic)
        self.supervisor.on_gone.append(self.router.source_gone)

    def spec_for(self, island: int, resume: bool) -> WorkerSpec:
        checkpoint = self.tmp_path / f"island-{island}.msgpack"
        return WorkerSpec(
            island_id=island, n_islands=self.n, run_id=RUN_ID, problem_spec=f"sphere:dim={DIM}",
            params=IslandParams(population=8), checkpoint_path=str(checkpoint), run_seed=5,
            migration=self.migration, telemetry_s=0.02,
            resume_from=str(checkpoint) if resume and checkpoint.exists() else None,
            sync_floor=self.router.sync_floor(island) if resume else {}, **self.spec_args)

    def start(self) -> None:
        for island in range(self.n):
            self.supervisor.start(island)

    def dispatch(self, item) -> None:
        self.messages.append(item)
        if isinstance(item, Exited):
            self.supervisor.on_exit(item)
            return
        self.supervisor.note(item)
        if isinstance(item, Migrants):
            self.router.route(item)
        elif isinstance(item, Started):
            self.router.source_back(item)
        elif isinstance(item, Telemetry):
            self.router.note_counters(item.island, item.migration)

    def pump(self, until, what: str = "condition") -> None:
        deadline = time.monotonic() + WAIT_S
        while not until():
            if time.monotonic() > deadline:
                generations = {i: r.generation for i, r in self.supervisor.records.items()}
                raise AssertionError(f"timed out waiting for {what}; generations {generations}")
            for item in self.backend.receive(0.05):
                self.dispatch(item)

    def generation(self, island: int) -> int:
        return self.supervisor.records[island].generation

    def all_at(self, generation: int, islands=None) -> bool:
        return all(self.generation(i) >= generation
                   for i in (range(self.n) if islands is None else islands))

    def received(self, island: int) -> int:
        return int(self.supervisor.records[island].migration.get("received", 0))

    def marker(self, islands) -> None:
        """Send a command to each island and wait for its Ack (everything before it is handled)."""
        seqs = {island: next(SEQ) for island in islands}
        for island, seq in seqs.items():
            assert self.supervisor.send_command(island, CommandKind.CLEAR_CACHE, 0.0, seq=seq)
        self.pump(lambda: all(any(isinstance(m, Ack) and m.island == i and m.seq == seq
                                  for m in self.messages) for i, seq in seqs.items()),
                  "the marker acks")

    def exited(self, island: int) -> bool:
        return any(isinstance(m, Exited) and m.worker == island for m in self.messages)

    def close(self) -> None:
        self.backend.close()


@pytest.fixture
def archipelago(tmp_path):
    made = []

    def make(*args, **kwargs):
        made.append(Archipelago(tmp_path, *args, **kwargs))
        return made[-1]

    yield make
    for a in made:
        a.close()


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_migrants_reach_the_topologys_targets_only(archipelago, topology):
    a = archipelago(4, topology)  # islands emit nothing themselves (migrants=0)
    a.start()
    a.pump(lambda: a.all_at(1), "all islands evolving")
    expected = dict.fromkeys(range(4), 0)
    routes = [(source, generation) for source in (0, 1) for generation in (5, 6, 7, 8)]
    for source, generation in routes:
        a.router.route(Migrants(source, generation, payload(source, generation)))
        for target in a.topology.targets(source, generation):
            expected[target] += 3
    a.marker(range(4))
    assert {i: a.received(i) for i in range(4)} == expected
    assert a.router.routed == sum(len(a.topology.targets(s, g)) for s, g in routes)
    assert a.router.unroutable == 0
    # Sources never get their own migrants back.
    assert all(s not in a.topology.targets(s, g) for s, g in routes)


def test_a_dead_target_is_unroutable(archipelago):
    a = archipelago(3, "ring")
    a.start()
    a.pump(lambda: a.all_at(1), "all islands evolving")
    assert a.supervisor.send_command(1, CommandKind.STOP, 0.0, seq=next(SEQ))
    a.pump(lambda: a.exited(1), "island 1 gone")
    assert not a.supervisor.records[1].live
    a.router.route(Migrants(0, 10, payload(0, 10)))  # ring: 0 -> 1 only
    assert (a.router.routed, a.router.unroutable) == (0, 1)
    a.router.route(Migrants(1, 10, payload(1, 10)))  # a late message of the dead one: 1 -> 2
    assert (a.router.routed, a.router.unroutable) == (1, 1)
    a.marker([0, 2])
    assert (a.received(0), a.received(2)) == (0, 3)


def test_a_target_whose_worker_exited_is_unroutable_even_if_thought_live(archipelago):
    a = archipelago(2, "ring", is_live=lambda island: True)
    a.start()
    a.pump(lambda: a.all_at(1), "all islands evolving")
    assert a.supervisor.send_command(1, CommandKind.STOP, 0.0, seq=next(SEQ))
    a.pump(lambda: a.exited(1), "island 1 gone")
    a.router.route(Migrants(0, 10, payload(0, 10)))
    assert (a.router.routed, a.router.unroutable) == (0, 1)


def test_source_gone_lets_lockstep_neighbours_go_on(archipelago):
    # Ring 0 -> 1 -> 2 -> 0 in lockstep: island 1 waits for island 0's migrants at every
    # migration generation (sync_timeout is far beyond the test's guard), so island 1 only
    # goes on past island 0's end if the router told it (SourceGone) that 0 is gone.
    a = archipelago(3, "ring", migrants=2, sync=True, migration_interval=2)
    a.start()
    a.pump(lambda: a.all_at(6), "lockstep evolution")
    assert a.router.routed > 0
    assert a.supervisor.send_command(0, CommandKind.STOP, 0.0, seq=next(SEQ))
    a.pump(lambda: a.exited(0), "island 0 gone")
    last = next(m for m in a.messages if isinstance(m, Done) and m.island == 0).generation
    unroutable = a.router.unroutable
    a.pump(lambda: a.all_at(last + 12, islands=(1, 2)), "islands 1 and 2 past island 0's end")
    assert a.supervisor.records[1].live and a.supervisor.records[2].live
    assert a.router.unroutable > unroutable  # island 2's emigrants to the dead island 0
    assert a.router.last_emitted[0] <= last


def test_a_restarted_lockstep_island_rejoins(archipelago):
    a = archipelago(2, "ring", migrants=2, sync=True, migration_interval=2)
    a.start()
    a.pump(lambda: a.all_at(6), "lockstep evolution")
    assert a.supervisor.send_command(0, CommandKind.STOP, 0.0, seq=next(SEQ))
    a.pump(lambda: a.exited(0), "island 0 gone")
    gone_at = a.generation(1)
    a.pump(lambda: a.all_at(gone_at + 6, islands=(1,)), "island 1 alone")
    a.supervisor.start(0, resume=True)  # from its checkpoint, with its sync floor
    a.pump(lambda: sum(isinstance(m, Started) and m.island == 0 for m in a.messages) == 2,
           "island 0 back")
    back = a.generation(1)
    a.pump(lambda: a.all_at(back + 12), "both islands in lockstep again")


def test_sync_floor_is_the_last_generation_each_source_emitted(tmp_path):
    backend = InThreadBackend()
    router = MigrantRouter(Topology("ring", 3), backend, EventBus(time.monotonic),
                           lambda island: False, time.monotonic)
    assert router.sync_floor(0) == {}
    for source, generation in [(0, 5), (0, 10), (1, 5), (0, 7), (2, 3)]:
        router.route(Migrants(source, generation, payload(source, generation)))
    assert router.sync_floor(0) == {1: 5, 2: 3}
    assert router.sync_floor(1) == {0: 10, 2: 3}
    assert router.sync_floor(2) == {0: 10, 1: 5}
    assert (router.routed, router.unroutable) == (0, 5)  # nobody live to take them


def test_totals_merge_island_counters_with_routing(archipelago):
    a = archipelago(2, "full", migrants=2, migration_interval=2)
    a.start()
    a.pump(lambda: a.router.routed >= 10, "some migration")
    a.supervisor.stop_all(WAIT_S, a.dispatch)
    assert a.supervisor.live_islands() == []
    totals = a.router.totals()
    assert set(totals) == {*router_module.COUNTERS, "routed", "unroutable"}
    emitted = sum(isinstance(m, Migrants) for m in a.messages)
    # Each Migrants message carried 2 genomes and had exactly 1 target (full, 2 islands).
    assert totals["routed"] + totals["unroutable"] == emitted
    assert totals["sent"] == 2 * emitted
    finals = {}
    for m in a.messages:
        if isinstance(m, Telemetry):
            finals[m.island] = m.migration
    for key in router_module.COUNTERS:
        assert totals[key] == sum(int(finals[i].get(key, 0)) for i in (0, 1))
    assert 0 < totals["received"] <= 2 * totals["routed"]
    assert totals["accepted"] <= totals["received"]


def test_totals_take_each_islands_latest_counters():
    router = MigrantRouter(Topology("ring", 2), InThreadBackend(), EventBus(time.monotonic),
                           lambda island: False, time.monotonic)
    router.note_counters(0, {"sent": 4, "received": 2, "accepted": 1, "dropped": 0,
                             "declined": 1, "dropped_reasons": {"run": 3}})
    router.note_counters(1, {"sent": 6, "received": 4})
    router.note_counters(0, {"sent": 8, "received": 2, "accepted": 2, "dropped": 1, "declined": 1})
    router.route(Migrants(0, 2, payload(0, 2)))
    assert router.totals() == {"sent": 14, "received": 6, "accepted": 2, "dropped": 1,
                               "declined": 1, "routed": 0, "unroutable": 1}


def test_publish_totals_at_most_once_per_interval_unless_forced():
    clock = FakeClock()
    events: list[dict] = []
    bus = EventBus(clock)
    bus.subscribe(events.append)
    router = MigrantRouter(Topology("ring", 2), InThreadBackend(), bus, lambda island: False,
                           clock)
    interval = router_module.MIGRATION_EVENT_S
    router.note_counters(0, {"sent": 2})

    def published() -> list[dict]:
        return [e for e in events if e["event"] == "migration"]

    clock.advance(interval / 2)
    router.publish_totals()
    assert published() == []
    clock.advance(interval / 2)
    router.publish_totals()
    router.publish_totals()
    assert len(published()) == 1
    assert published()[0]["sent"] == 2 and published()[0]["routed"] == 0
    clock.advance(interval)
    router.publish_totals()  # an interval later, but nothing changed
    assert len(published()) == 1
    router.note_counters(1, {"sent": 4})
    clock.advance(interval / 2)
    router.publish_totals()  # changed, but within the interval of the last check
    assert len(published()) == 1
    clock.advance(interval / 2)
    router.publish_totals()
    assert len(published()) == 2 and published()[-1]["sent"] == 6
    router.publish_totals(force=True)  # forced: unchanged and at once
    assert len(published()) == 3
    assert published()[-1] == {"t": round(clock.now, 3), "event": "migration",
                               **router.totals()}

"""The pressure controller per domain (a Ray node each): pressure on one node acts on that
node's islands only, against that node's budget.

The parts are test_pressure.py's harness (islands in threads, real worker loops and
checkpoints), with the in-thread backend told that islands 0 and 1 run on node "a" and
islands 2 and 3 on node "b", each node with its own 100 MiB budget; the memory reading is
the scripted one. The real-Ray version of this is in test_ray_cluster.py.
"""

from __future__ import annotations

import pytest
from test_pressure import BUDGET, MIB, SLICE, Harness

from coordinator.backend import Domain, MemoryReading
from coordinator.observers import SummaryRecorder
from islands.protocol import IslandState
from memory import PressureLevel
from memory.probe import ProcessMemory

NODES = (Domain("a", BUDGET, 0), Domain("b", BUDGET, 0))
PLACEMENT = {0: "a", 1: "a", 2: "b", 3: "b"}
ON_A, ON_B = {0, 1}, {2, 3}


@pytest.fixture
def nodes(tmp_path):
    made = []

    def make(placement=PLACEMENT, **kwargs):
        made.append(Harness(tmp_path, len(placement), domains=NODES, placement=placement,
                            **kwargs))
        made[-1].script.own_domain = "a"  # the coordinator runs on node a
        made[-1].recorder = SummaryRecorder(len(placement), made[-1].clock)
        made[-1].bus.subscribe(made[-1].recorder)
        return made[-1]

    yield make
    for h in made:
        h.close()


def start(h: Harness) -> None:
    h.start()
    h.run_until(h.evolving, "every island evolving")
    assert h.pressure.level == PressureLevel.NORMAL and not h.of("action")
    assert sorted(h.pressure.domains) == ["a", "b"]


def acted_on(h: Harness) -> set[int]:
    return {e["island"] for e in h.of("action")}


def test_high_on_one_node_shrinks_only_that_nodes_islands(nodes):
    h = nodes()
    start(h)
    # Node a: 1 + 45 + 34 = 80 % of its budget (HIGH); node b: 20 %. Together 100 MiB of
    # 200: one budget for the whole run would see 50 % and do nothing.
    h.script.islands = {0: (45, 30), 1: (34, 10)}
    h.run_until(lambda: h.of("ack", command="shrink", island=1), "both islands of node a shrunk")
    for _ in range(10):
        h.step()
    assert h.pressure.domains["a"].level == PressureLevel.HIGH
    assert h.pressure.domains["b"].level == PressureLevel.NORMAL
    assert [e["island"] for e in h.of("action", action="shrink")] == [0, 1]  # largest USS first
    assert acted_on(h) == ON_A  # cache clears and growth pauses too: node a only
    assert {e["island"] for e in h.of("ack")} == ON_A
    assert {i: h.supervisor.records[i].population for i in range(4)} == {0: 4, 1: 4, 2: 8, 3: 8}
    # Events name the node: the level change, each action, the summary's entries.
    assert [(e["domain"], e["old"], e["new"]) for e in h.of("pressure")] == [("a", "normal", "high")]
    assert {e["domain"] for e in h.of("action")} == {"a"}
    assert {e.get("domain") for e in h.recorder.pressure_events} == {"a"}
    memory = h.of("memory")[-1]
    assert memory["domains"]["a"]["budget_bytes"] == BUDGET
    assert memory["domains"]["a"]["used_bytes"] == 80 * MIB
    assert memory["domains"]["b"]["used_bytes"] == 20 * MIB  # no coordinator on node b
    assert memory["domains"]["b"]["islands"] == [2, 3]
    assert h.pressure.domain_summary()["a"]["peak_bytes"] == 80 * MIB


def test_critical_on_one_node_hibernates_there_and_its_own_room_brings_it_back(nodes):
    h = nodes(best_island=lambda: 2)  # the best is on node b: any island of a may go
    start(h)
    h.script.islands = {0: (50, 30), 1: (39, 10)}  # node a 90 %: CRITICAL
    h.run_until(lambda: h.exited(0), "island 0 hibernated")
    assert [e["island"] for e in h.of("action", action="hibernate")] == [0]
    assert h.supervisor.records[0].state == IslandState.HIBERNATED
    assert all(h.supervisor.records[i].live for i in (1, 2, 3))
    # Node a calms (1 + 39 = 40 %) while node b fills (54 %): the whole run would have
    # 94 MiB in use, no room for island 0's 40 MiB slice in one 100 MiB budget; node a
    # has the room, so island 0 comes back there.
    h.script.islands = {0: (10, 5), 1: (39, 10), 2: (27, 10), 3: (27, 10)}
    h.run_until(lambda: len(h.started(0)) == 2, "island 0 resumed")
    resume = h.of("action", action="resume")
    assert [(e["island"], e["domain"]) for e in resume] == [(0, "a")]
    assert h.pressure.domains["b"].level == PressureLevel.NORMAL
    assert acted_on(h) <= ON_A  # nothing on node b


def test_the_best_holder_alone_on_its_node_is_shrunk_not_hibernated(nodes):
    h = nodes(placement={0: "a", 1: "a", 2: "b"}, best_island=lambda: 2)
    start(h)
    h.script.islands = {2: (89, 60)}  # node b: 89 %: CRITICAL
    h.run_until(lambda: h.of("action", action="shrink", island=2), "island 2 shrunk")
    assert not h.of("action", action="hibernate")
    assert acted_on(h) == {2}


def test_emergency_on_one_node_terminates_the_largest_there(nodes):
    h = nodes()
    start(h)
    h.script.islands = {2: (40, 10), 3: (60, 30)}  # node b: 100 % of its budget
    h.run_until(lambda: h.of("action", action="terminate"), "a terminate")
    assert [(e["island"], e["domain"]) for e in h.of("action", action="terminate")] == [(3, "b")]
    assert h.pressure.domains["a"].level == PressureLevel.NORMAL
    assert acted_on(h) <= ON_B
    assert all(h.supervisor.records[i].live for i in ON_A)


def test_a_reading_splits_into_one_sample_per_domain():
    worker = ProcessMemory(10 * MIB, 5 * MIB, 12 * MIB)
    reading = MemoryReading(0.0, ProcessMemory(MIB, MIB, MIB), {0: worker, 1: worker, 2: worker},
                            host_available_bytes=3 * MIB, own_domain="a",
                            available_by_domain={"a": 7 * MIB, "b": 3 * MIB})
    on_a, on_b = reading.to_sample("a", [0, 1]), reading.to_sample("b", [2])
    assert (on_a.pss_total, on_a.host_available_bytes) == (21 * MIB, 7 * MIB)  # with the coordinator
    assert (on_b.pss_total, on_b.host_available_bytes) == (10 * MIB, 3 * MIB)
    assert reading.to_sample().pss_total == 31 * MIB  # the whole run, as on one machine
    assert reading.to_sample().host_available_bytes == 3 * MIB
    assert reading.to_sample("c", []).host_available_bytes > BUDGET  # unmeasured: not short


def test_a_node_that_joins_gets_its_own_domain(nodes):
    h = nodes()
    start(h)
    h.backend.pressure_domains.append(Domain("c", 10 * SLICE, 0))
    h.step()
    assert sorted(h.pressure.domains) == ["a", "b", "c"]
    assert h.pressure.domains["c"].budget_bytes == 10 * SLICE
    assert h.pressure.domains["c"].islands == []

"""The pressure policy (coordinator.policy.decide) on synthetic island snapshots."""

import math

from coordinator.policy import Action, ActionKind, decide, global_best_island
from islands.protocol import IslandState
from memory.monitor import PressureLevel

MB = 2**20


def row(measured_mb=100, population=40, best=10.0, state=IslandState.RUNNING):
    return {"measured_bytes": measured_mb * MB, "population": population, "best_fitness": best,
            "state": int(state)}


def kinds(actions):
    return [(a.kind, a.island) for a in actions]


def test_normal_without_work_does_nothing():
    snapshot = [row(), row()]
    assert decide(PressureLevel.NORMAL, snapshot, min_population=4, target_population=40) == []


def test_elevated_clears_caches_and_pauses_growth_once_on_entry():
    snapshot = [row(), row(state=IslandState.SHRUNK), row(state=IslandState.HIBERNATED)]
    actions = decide(PressureLevel.ELEVATED, snapshot, min_population=4, level_changed=True)
    assert kinds(actions) == [
        (ActionKind.CLEAR_CACHE, 0), (ActionKind.PAUSE_GROWTH, 0),
        (ActionKind.CLEAR_CACHE, 1), (ActionKind.PAUSE_GROWTH, 1),
    ]
    # Staying at ELEVATED repeats nothing.
    assert decide(PressureLevel.ELEVATED, snapshot, min_population=4) == []


def test_high_halves_the_largest_island_above_the_minimum():
    snapshot = [row(measured_mb=100), row(measured_mb=300), row(measured_mb=500, population=4)]
    actions = decide(PressureLevel.HIGH, snapshot, min_population=4)
    assert actions == [Action(ActionKind.SHRINK, 1, 0.5)]


def test_high_entered_directly_also_pauses_growth():
    snapshot = [row(measured_mb=100), row(measured_mb=300)]
    actions = decide(PressureLevel.HIGH, snapshot, min_population=4, level_changed=True)
    assert (ActionKind.PAUSE_GROWTH, 0) in kinds(actions)
    assert actions[-1] == Action(ActionKind.SHRINK, 1, 0.5)


def test_high_with_every_island_at_the_minimum_does_nothing():
    snapshot = [row(population=4), row(population=3)]
    assert decide(PressureLevel.HIGH, snapshot, min_population=4) == []


def test_critical_hibernates_the_largest_but_never_the_best_holder():
    # Island 1 is largest but holds the global best: island 2 (next largest) goes.
    snapshot = [row(measured_mb=100, best=5.0), row(measured_mb=400, best=1.0),
                row(measured_mb=300, best=9.0)]
    assert global_best_island(snapshot) == 1
    actions = decide(PressureLevel.CRITICAL, snapshot, min_population=4)
    assert actions == [Action(ActionKind.HIBERNATE, 2)]


def test_critical_ties_go_to_the_worse_island():
    snapshot = [row(measured_mb=200, best=1.0), row(measured_mb=300, best=2.0),
                row(measured_mb=300, best=7.0)]
    assert decide(PressureLevel.CRITICAL, snapshot, min_population=4) == [
        Action(ActionKind.HIBERNATE, 2)]


def test_critical_never_hibernates_the_last_running_island():
    snapshot = [row(measured_mb=400), row(state=IslandState.HIBERNATED)]
    assert decide(PressureLevel.CRITICAL, snapshot, min_population=4) == [
        Action(ActionKind.SHRINK, 0, 0.5)]


def test_emergency_terminates_the_largest_running_island():
    snapshot = [row(measured_mb=100), row(measured_mb=900, best=0.5),
                row(measured_mb=2000, state=IslandState.FAILED)]
    assert decide(PressureLevel.EMERGENCY, snapshot, min_population=4) == [
        Action(ActionKind.TERMINATE, 1)]


def test_normal_resumes_one_hibernated_island_per_call():
    snapshot = [row(), row(state=IslandState.HIBERNATED), row(state=IslandState.HIBERNATED)]
    actions = decide(PressureLevel.NORMAL, snapshot, min_population=4, target_population=40)
    assert actions == [Action(ActionKind.RESUME, 1)]


def test_normal_regrows_the_smallest_island_one_step_at_a_time():
    snapshot = [row(population=20, state=IslandState.SHRUNK),
                row(population=10, state=IslandState.SHRUNK), row(population=40),
                row(population=0, state=IslandState.STARTING)]
    actions = decide(PressureLevel.NORMAL, snapshot, min_population=4, target_population=40)
    assert actions == [Action(ActionKind.GROW, 1, 2.0)]
    changed = decide(PressureLevel.NORMAL, snapshot, min_population=4, target_population=40,
                     level_changed=True)
    assert [a.kind for a in changed].count(ActionKind.RESUME_GROWTH) == 4
    assert changed[-1] == Action(ActionKind.GROW, 1, 2.0)


def test_islands_not_running_are_never_acted_on():
    snapshot = [row(measured_mb=900, state=s) for s in
                (IslandState.STOPPED, IslandState.DONE, IslandState.FAILED)]
    for level in PressureLevel:
        assert decide(level, snapshot, min_population=4, level_changed=True,
                      target_population=80) == []


def test_global_best_ignores_islands_without_a_result():
    snapshot = [row(best=math.inf), row(best=3.0), row(best=2.0)]
    assert global_best_island(snapshot) == 2
    assert global_best_island([row(best=math.inf)]) is None


# --- one pressure domain (a Ray node) of several: `islands` ----------------------------------------
NODE_A = [0, 1]  # islands 2 and 3 run on another node


def test_a_domain_is_acted_on_through_its_own_islands_only():
    snapshot = [row(measured_mb=100, population=40), row(measured_mb=200, population=40),
                row(measured_mb=900, population=40), row(measured_mb=800, population=40)]
    assert decide(PressureLevel.HIGH, snapshot, min_population=4, islands=NODE_A) == [
        Action(ActionKind.SHRINK, 1, 0.5)]  # 2 and 3 are larger, but elsewhere
    assert decide(PressureLevel.EMERGENCY, snapshot, min_population=4, islands=NODE_A) == [
        Action(ActionKind.TERMINATE, 1)]
    assert decide(PressureLevel.CRITICAL, snapshot, min_population=4, islands=NODE_A,
                  best_island=3) == [Action(ActionKind.HIBERNATE, 1)]
    elevated = decide(PressureLevel.ELEVATED, snapshot, min_population=4, islands=NODE_A,
                      level_changed=True)
    assert {a.island for a in elevated} == {0, 1}


def test_a_domain_resumes_and_regrows_only_its_own_islands():
    snapshot = [row(population=10, state=IslandState.SHRUNK), row(),
                row(state=IslandState.HIBERNATED), row(population=4, state=IslandState.SHRUNK)]
    assert decide(PressureLevel.NORMAL, snapshot, min_population=4, target_population=40,
                  islands=NODE_A) == [Action(ActionKind.GROW, 0, 2.0)]
    assert decide(PressureLevel.NORMAL, snapshot, min_population=4, target_population=40,
                  islands=[2, 3]) == [Action(ActionKind.RESUME, 2)]


def test_a_domain_whose_only_island_holds_the_best_shrinks_it_instead_of_hibernating():
    snapshot = [row(measured_mb=900, best=1.0), row(measured_mb=100, best=5.0)]
    assert decide(PressureLevel.CRITICAL, snapshot, min_population=4, islands=[0]) == [
        Action(ActionKind.SHRINK, 0, 0.5)]
    # The last island on its node but not the best's holder: it may go, others run on.
    assert decide(PressureLevel.CRITICAL, snapshot, min_population=4, islands=[1]) == [
        Action(ActionKind.HIBERNATE, 1)]

"""The timetable problem: batch evaluation equals the reference evaluator on every
genome, the local search never makes a genome worse and its incremental bookkeeping
equals full re-evaluation, operators keep genomes valid, and shared-memory rebuild."""

from pathlib import Path

import numpy as np
import pytest
from conftest import ITC2007_DIR

from islands.problem import attach_problem, build_problem
from islands.timetable.generator import generate_instance
from islands.timetable.instance import write_ctt
from islands.timetable.problem import HARD_WEIGHT, TimetableProblem
from islands.timetable.solution import read_sol
from islands.timetable.validate import evaluate_entries


def competition(name: str) -> Path:
    path = ITC2007_DIR / f"{name}.ctt"
    if not path.exists():
        pytest.skip("ITC-2007 instances not found at ../shared/itc2007")
    return path


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    inst = generate_instance(courses=60, rooms=8, days=5, periods_per_day=5, curricula=25, seed=11)
    return write_ctt(inst, tmp_path_factory.mktemp("gen") / "g.ctt")


def assert_matches_reference(problem: TimetableProblem, genomes: np.ndarray) -> None:
    fitness = problem.evaluate(genomes)
    for genome, value in zip(genomes, fitness, strict=True):
        ref = evaluate_entries(problem.instance, problem.entries(genome))
        assert value == HARD_WEIGHT * ref.hard_violations + ref.soft_cost
        described = problem.describe(genome)
        assert described["hard_violations"] == ref.hard_violations
        assert described["room_stability"] == ref.room_stability
        assert described["curriculum_compactness"] == ref.curriculum_compactness


@pytest.mark.parametrize("which", ["comp01", "comp07", "generated"])
def test_batch_evaluate_equals_reference(which, generated):
    path = generated if which == "generated" else competition(which)
    problem = TimetableProblem(str(path), ls_moves=20_000)
    rng = np.random.default_rng(5)
    constructed = problem.random(rng, 3)
    # Arbitrary genomes: clashes, repeated course periods, conflicts, everything.
    slots = problem.instance.n_periods * problem.instance.n_rooms
    arbitrary = rng.integers(0, slots, size=(4, problem.genome_shape[0])).astype(np.int32)
    improved, _ = problem.improve(constructed, problem.evaluate(constructed), rng)
    mutated = problem.mutate(improved, rng)
    children = problem.crossover(improved, mutated[::-1], rng)
    for batch in (constructed, arbitrary, improved, mutated, children):
        assert_matches_reference(problem, batch)


@pytest.mark.parametrize("which", ["comp07", "generated"])
def test_improve_never_worse_and_bookkeeping_exact(which, generated):
    path = generated if which == "generated" else competition(which)
    problem = TimetableProblem(str(path))
    rng = np.random.default_rng(9)
    slots = problem.instance.n_periods * problem.instance.n_rooms
    arbitrary = rng.integers(0, slots, size=(2, problem.genome_shape[0])).astype(np.int32)
    start = np.concatenate([problem.random(rng, 2), arbitrary])
    before = problem.evaluate(start)
    # verify_every=1: after every accepted move the kernel re-evaluates from scratch and
    # counts any disagreement with its incremental counters or its predicted delta.
    improved, after, stats = problem.improve_with_stats(start, before, rng, ls_moves=30_000, verify_every=1)
    assert (stats[:, 4] == 0).all(), stats
    assert (stats[:, 3] > 0).all()
    assert (after <= before).all()
    assert np.array_equal(after, problem.evaluate(improved))
    assert after.mean() < before.mean()
    # Input already good: a short hot search must still hand back nothing worse.
    again, again_fitness = problem.improve(improved, after, rng, ls_moves=2_000)
    assert (again_fitness <= after).all()
    assert np.array_equal(again_fitness, problem.evaluate(again))


def test_construction_feasible_on_easy_instances():
    problem = TimetableProblem(str(competition("comp01")))
    genomes = problem.random(np.random.default_rng(1), 4)
    assert len({g.tobytes() for g in genomes}) == 4  # randomised
    improved, fitness = problem.improve(genomes, problem.evaluate(genomes), np.random.default_rng(2))
    assert (fitness < problem.feasible_below).all()


def test_operators_keep_one_lecture_per_slot(generated):
    problem = TimetableProblem(str(generated))
    rng = np.random.default_rng(3)
    parents = problem.random(rng, 6)
    for batch in (problem.mutate(parents, rng), problem.crossover(parents, parents[::-1], rng)):
        assert batch.shape == parents.shape and batch.dtype == np.int32
        for genome in batch:
            assert len(np.unique(genome)) == len(genome)  # no room clash
            described = problem.describe(genome)
            assert described["lectures"] == 0 and described["room_occupancy"] == 0
    # Crossover keeps each course's lectures from one parent when nothing clashes.
    same = problem.crossover(parents[:1], parents[:1], rng)
    assert np.array_equal(same, parents[:1])


def test_spec_attach_and_write(tmp_path, generated):
    spec = f"timetable:{generated},ls_moves=1000,population=12"
    problem = build_problem(spec)
    assert problem.preferred_population == 12 and problem.ls_moves == 1000
    assert problem.individual_bytes > problem.genome_bytes
    arrays = problem.shared_arrays()
    assert all(isinstance(a, np.ndarray) for a in arrays.values())
    twin = attach_problem(spec, arrays)
    assert twin.instance == problem.instance
    genomes = problem.random(np.random.default_rng(0), 2)
    assert np.array_equal(twin.evaluate(genomes), problem.evaluate(genomes))
    written = problem.write(genomes[0], tmp_path / "best")
    assert written.name == "best.sol"
    ref = evaluate_entries(problem.instance, read_sol(written, problem.instance))
    assert problem.evaluate(genomes[:1])[0] == HARD_WEIGHT * ref.hard_violations + ref.soft_cost


def test_improve_calls_continue_one_cooling_schedule(generated):
    problem = TimetableProblem(str(generated), ls_moves=5_000, anneal_s=0.5)
    rng = np.random.default_rng(4)
    genomes = problem.random(rng, 2)
    fitness = problem.evaluate(genomes)
    temperatures = [problem.cooling.temperature]
    for _ in range(6):
        improved, improved_fitness = problem.improve(genomes, fitness, rng)
        assert (improved_fitness <= fitness).all()
        assert np.array_equal(improved_fitness, problem.evaluate(improved))
        genomes, fitness = improved, improved_fitness
        temperatures.append(problem.cooling.temperature)
    # Each call starts where the last one stopped: the temperature falls (or reheats to
    # half the start once the cycle ends), never resets to t_start.
    assert all(t < problem.t_start for t in temperatures[1:])
    assert temperatures[1] < temperatures[0]

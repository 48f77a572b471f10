"""The annealing's stronger neighbourhoods (course room change, Kempe-chain swap,
min-working-days move, compactness move): with each forced on, the incremental counters
and predicted deltas equal a full evaluation after every accepted move, the best state
handed back is exact and never worse than the input, cold and warm (stability) starts."""

from pathlib import Path

import numpy as np
import pytest
from conftest import ITC2007_DIR

from islands.errors import InputError
from islands.timetable.generator import generate_instance
from islands.timetable.instance import write_ctt
from islands.timetable.problem import TimetableProblem
from islands.timetable.settings import Neighbourhoods, SearchSettings

MOVES = ("course_room_prob", "kempe_ls_prob", "mwd_prob", "compact_prob")


def competition(name: str) -> Path:
    path = ITC2007_DIR / f"{name}.ctt"
    if not path.exists():
        pytest.skip(f"ITC-2007 instance {name}.ctt not found at {ITC2007_DIR}")
    return path


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    inst = generate_instance(courses=60, rooms=8, days=5, periods_per_day=5, curricula=25, seed=11)
    return write_ctt(inst, tmp_path_factory.mktemp("gen") / "g.ctt")


def starts(problem: TimetableProblem, rng: np.random.Generator) -> np.ndarray:
    """Two constructed timetables and one arbitrary genome (clashes, conflicts)."""
    slots = problem.instance.n_periods * problem.instance.n_rooms
    arbitrary = rng.integers(0, slots, size=(1, problem.genome_shape[0])).astype(np.int32)
    return np.concatenate([problem.random(rng, 2), arbitrary])


def check_exact(problem: TimetableProblem, genomes: np.ndarray, rng: np.random.Generator,
                moves: int) -> np.ndarray:
    before = problem.evaluate(genomes)
    improved, after, stats = problem.improve_with_stats(genomes, before, rng, ls_moves=moves,
                                                        verify_every=1)
    assert (stats[:, 4] == 0).all(), stats  # no counter / delta / best-state mismatch
    assert (stats[:, 3] > 0).any(), stats  # the move ran (a start may offer it nothing)
    assert (after <= before).all()
    assert np.array_equal(after, problem.evaluate(improved))
    for genome in improved:
        assert len(np.unique(genome)) == len(genome)  # one lecture per slot
        described = problem.describe(genome)
        assert described["lectures"] == 0 and described["room_occupancy"] == 0
    return improved


@pytest.mark.parametrize("move", MOVES)
@pytest.mark.parametrize("which", ["comp01", "comp07", "generated"])
def test_each_move_forced_on_is_exact(which, move, generated):
    path = generated if which == "generated" else competition(which)
    problem = TimetableProblem(str(path), **{move: 1.0})
    rng = np.random.default_rng(21)
    check_exact(problem, starts(problem, rng), rng, moves=8_000)


def test_moves_mixed_with_a_warm_start_are_exact(tmp_path, generated):
    cold = TimetableProblem(str(generated))
    rng = np.random.default_rng(5)
    genomes, _ = cold.improve(cold.random(rng, 1), None, rng, ls_moves=50_000)
    old = cold.write(genomes[0], tmp_path / "old")
    mixed = {move: 0.2 for move in MOVES}
    warm = TimetableProblem(str(generated), initial=str(old), stability=3, **mixed)
    assert warm.describe(genomes[0])["lectures_moved"] == 0
    check_exact(warm, np.concatenate([genomes, starts(warm, rng)]), rng, moves=20_000)
    for move in MOVES:
        forced = TimetableProblem(str(generated), initial=str(old), stability=3, **{move: 1.0})
        check_exact(forced, np.concatenate([genomes, starts(forced, rng)]), rng, moves=8_000)


def test_move_probabilities_are_checked(generated):
    assert SearchSettings().neighbourhoods == Neighbourhoods()
    with pytest.raises(InputError, match="course_room_prob"):
        Neighbourhoods(mwd_prob=-0.1)
    with pytest.raises(InputError, match="sum <= 1"):
        Neighbourhoods(course_room_prob=0.5, kempe_ls_prob=0.3, mwd_prob=0.3)
    assert Neighbourhoods(compact_prob="0.25").compact_prob == 0.25
    problem = TimetableProblem(str(generated), kempe_ls_prob="0.1")
    assert problem.settings.neighbourhoods.kempe_ls_prob == 0.1

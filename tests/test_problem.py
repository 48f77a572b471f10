"""The Problem protocol: spec parsing, the registry, defaults for optional parts."""

import numpy as np
import pytest

from islands.problem import ProblemSpecError, build_problem, complete, genome_key, parse_spec


def test_parse_spec_forms():
    assert parse_spec("rastrigin").name == "rastrigin"
    assert parse_spec("heavy:mb=20,dim=50").params == {"mb": 20, "dim": 50}
    assert parse_spec("terms/a.ctt").params == {"path": "terms/a.ctt"}
    assert parse_spec("timetable:a.ctt,seed=3").params == {"path": "a.ctt", "seed": 3}


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("nope", "unknown problem 'nope'"),
        ("rastrigin:dims=3", "no parameter 'dims'"),
        ("rastrigin:dim=0", "dim must be at least 1"),
        ("rastrigin:dim=3,dim=4", "given twice"),
        ("", "empty problem spec"),
    ],
)
def test_bad_specs_raise_one_clear_error(spec, fragment):
    with pytest.raises(ProblemSpecError, match=fragment):
        build_problem(spec)


class TenLines:
    genome_shape = (5,)
    genome_dtype = np.int32
    individual_bytes = 20

    def random(self, rng, n):
        return rng.integers(0, 10, size=(n, 5))

    def evaluate(self, genomes):
        return genomes.sum(axis=1)


def test_ten_line_problem_gets_every_default(tmp_path):
    problem = complete(TenLines())
    rng = np.random.default_rng(0)
    genomes = problem.random(rng, 8)
    children = problem.crossover(genomes, genomes[::-1], rng)
    mutants = problem.mutate(children, rng)
    assert mutants.shape == (8, 5) and mutants.dtype == np.int32
    assert (mutants != children).any(axis=1).sum() >= 1
    improved, fitness = problem.improve(mutants, problem.evaluate(mutants), rng)
    assert np.array_equal(fitness, mutants.sum(axis=1))
    assert problem.describe(genomes[0]) == {}
    assert problem.write(genomes[0], tmp_path / "best").name == "best.npy"


def test_incomplete_problem_is_rejected():
    class NoEvaluate:
        genome_shape = (3,)
        genome_dtype = np.float64
        individual_bytes = 24

        def random(self, rng, n):
            return rng.random((n, 3))

    with pytest.raises(ProblemSpecError, match="evaluate"):
        complete(NoEvaluate())


def test_genome_key_is_stable_and_distinguishes():
    a = np.arange(10, dtype=np.int16)
    assert genome_key(a) == genome_key(a.copy())
    assert genome_key(a) != genome_key(a[::-1].copy())


def test_optional_hooks_default_to_nothing_and_delegate_when_present():
    calls = []

    class Paced(TenLines):
        def warm_up(self):
            calls.append("warm_up")

        def set_time_budget(self, seconds):
            calls.append(seconds)

    complete(TenLines()).warm_up()
    complete(TenLines()).set_time_budget(5.0)
    paced = complete(Paced())
    paced.warm_up()
    paced.set_time_budget(12)
    assert calls == ["warm_up", 12.0]


def test_timetable_paces_its_cooling_to_the_time_budget_unless_told_otherwise(tmp_path):
    from islands.timetable.generator import write_demo_term

    term = write_demo_term(tmp_path / "term.ctt", seed=1)
    default = build_problem(f"timetable:{term}")
    default.set_time_budget(100.0)
    assert default.anneal_s == pytest.approx(98.0)
    explicit = build_problem(f"timetable:{term},anneal_s=7")
    explicit.set_time_budget(100.0)
    assert explicit.anneal_s == 7.0
    default.warm_up()  # compiles or loads every kernel; must not disturb the schedule
    assert default.anneal_s == pytest.approx(98.0)

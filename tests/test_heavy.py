"""heavy: each evaluated individual really costs `mb` megabytes; the search still makes progress."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from islands.island import Island
from islands.params import IslandParams
from islands.problem import ProblemSpecError, build_problem
from islands.problems.heavy import Heavy


def test_spec_builds_with_its_parameters():
    problem = build_problem("heavy:mb=20,dim=50")
    assert problem.name == "heavy"
    assert problem.genome_shape == (50,) and problem.genome_dtype == np.float64
    assert problem.individual_bytes == 20 * 2**20
    assert build_problem("heavy:mb=0.5").individual_bytes == 2**19


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("heavy:mb=0", "mb must be a positive"),
        ("heavy:mb=-3", "mb must be a positive"),
        ("heavy:mb=lots", "must be numbers"),
        ("heavy:dim=0", "dim must be at least 1"),
        ("heavy:dim=2.5", "dim must be at least 1"),
        ("heavy:size=3", "no parameter 'size'"),
    ],
)
def test_bad_parameters_are_one_line_errors(spec, fragment):
    with pytest.raises(ProblemSpecError, match=fragment):
        build_problem(spec)


def test_phenotype_is_the_genome_tiled_over_mb_megabytes():
    heavy = Heavy(mb=1, dim=3)
    genomes = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]])
    phenotypes = heavy.phenotypes(genomes)
    assert phenotypes.shape == (2, 2**20 // 8)
    assert phenotypes.nbytes == 2 * heavy.individual_bytes
    np.testing.assert_array_equal(phenotypes[0, :7], [1, 2, 3, 1, 2, 3, 1])
    np.testing.assert_array_equal(phenotypes[1, -2:], np.resize(genomes[1], phenotypes.shape[1])[-2:])


def test_fitness_is_zero_at_the_origin_and_grows_away_from_it():
    heavy = Heavy(mb=0.1, dim=4)
    fitness = heavy.evaluate(np.array([[0.0] * 4, [1.0] * 4, [2.0] * 4]))
    assert fitness[0] == 0.0 and 0 < fitness[1] < fitness[2]
    # sphere + the phenotype's mean square (about sphere / dim).
    assert fitness[1] == pytest.approx(4.0 + 1.0)


def test_search_on_heavy_makes_progress():
    island = Island(build_problem("heavy:mb=0.05,dim=10"), island_id=0, seed=3,
                    params=IslandParams(population=20, chunk_size=4))
    first = island.step().best_fitness
    for _ in range(25):
        last = island.step().best_fitness
    assert last < 0.5 * first


PEAK_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from islands.problem import build_problem

    def status_kib(field):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])

    mb, k = float(sys.argv[1]), int(sys.argv[2])
    problem = build_problem(f"heavy:mb={mb},dim=10")
    genomes = problem.random(np.random.default_rng(0), k)
    problem.evaluate(genomes[:0])  # load every code path without allocating phenotypes
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # reset the peak (VmHWM) to the current RSS
    before = status_kib("VmRSS")
    problem.evaluate(genomes)
    peak = status_kib("VmHWM")
    print(json.dumps({"peak_rise_mib": (peak - before) / 1024}))
    """
)


def peak_rise_mib(mb: float, k: int) -> float:
    completed = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, str(mb), str(k)],
        capture_output=True, text=True, check=True, timeout=120,
    )
    return json.loads(completed.stdout)["peak_rise_mib"]


@pytest.mark.slow
@pytest.mark.parametrize("k", [1, 6])
def test_evaluating_k_individuals_raises_peak_rss_by_k_times_mb(k):
    mb = 16
    rise = peak_rise_mib(mb, k)
    assert 0.95 * k * mb <= rise <= k * mb + 8

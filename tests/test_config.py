"""RunConfig resolution (defaults < TOML file < flags, validation, TOML round trip) and
auto-configuration from the budget and cores (coordinator.autoconfig)."""

from types import SimpleNamespace

import pytest

from coordinator.autoconfig import WORKER_BASE_BYTES, island_bytes, plan_run
from coordinator.config import RunConfig, load_toml, resolve_config, to_toml
from islands.errors import InputError
from islands.population import chunk_size_for
from memory.budget import BudgetError


def write(tmp_path, text, name="run.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_then_file_then_flags(tmp_path):
    path = write(tmp_path, 'islands = 3\npopulation = 30\ntime-limit = 5\ntopology = "full"\n'
                 '[thresholds]\nhigh = 0.8\n')
    config = resolve_config(toml_path=path, flags={"population": 12, "seed": None})
    assert config.islands == 3  # from the file
    assert config.search.population == 12  # the flag wins
    assert config.stop.time_limit == 5.0 and isinstance(config.stop.time_limit, float)
    assert config.search.topology == "full"
    assert config.memory.thresholds == {"high": 0.8}
    assert config.seed == RunConfig().seed  # a flag left as None keeps the default
    assert config.search.migration_interval == RunConfig().search.migration_interval


def test_unknown_key_names_file_and_key(tmp_path):
    path = write(tmp_path, "islands = 2\npopulaton = 5\n")
    with pytest.raises(InputError, match=r"run\.toml.*'populaton'"):
        load_toml(path)


def test_wrong_type_names_the_key(tmp_path):
    path = write(tmp_path, 'islands = "four"\n')
    with pytest.raises(InputError, match=r"run\.toml.*'islands' must be an integer"):
        load_toml(path)
    path = write(tmp_path, "islands = true\n", name="b.toml")
    with pytest.raises(InputError, match="'islands'"):
        load_toml(path)


def test_bad_toml_gives_file_and_line(tmp_path):
    path = write(tmp_path, "islands = 2\npopulation = = 3\n")
    with pytest.raises(InputError) as error:
        load_toml(path)
    assert str(error.value).startswith(f"{path}:2: invalid TOML")
    assert "\n" not in str(error.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="config file not found"):
        load_toml(tmp_path / "nope.toml")


def test_values_out_of_range_are_rejected():
    with pytest.raises(InputError, match="islands must be at least 1"):
        resolve_config(flags={"islands": 0})
    with pytest.raises(InputError, match="unknown topology"):
        resolve_config(flags={"topology": "star"})
    with pytest.raises(InputError, match="time-limit must be positive"):
        resolve_config(flags={"time_limit": -1.0})


def test_to_toml_round_trips(tmp_path):
    config = resolve_config(flags={"problem": "rastrigin:dim=5", "islands": 2, "sync": True,
                                   "memory_budget": "700M", "thresholds": {"high": 0.7}})
    path = write(tmp_path, to_toml(config), name="config.toml")
    again = resolve_config(toml_path=path)
    assert again == config


# -- auto-configuration (coordinator.autoconfig) ------------------------------------------
MB = 2**20


def heavy_like(individual_mb=20, genome_bytes=400, preferred=None):
    return SimpleNamespace(individual_bytes=individual_mb * MB, genome_bytes=genome_bytes,
                           preferred_population=preferred)


def test_plan_uses_one_island_per_core_when_the_budget_fits():
    plan = plan_run(problem=heavy_like(), budget_bytes=700 * MB, coordinator_bytes=40 * MB,
                    shared_bytes=0, population=40, cores=2)
    assert plan.islands == 2
    assert plan.slice_bytes == (700 - 40) * MB // 2
    # The chunk keeps the phenotypes of one chunk inside the slice.
    assert 1 <= plan.chunk_size < 40
    assert WORKER_BASE_BYTES + plan.chunk_size * 20 * MB <= plan.slice_bytes
    line = plan.log_line()
    assert line.startswith("[GA] Hardware config: islands=2 (2 cores), pop=40, chunk=")
    assert "budget=700MB" in line


def test_plan_lowers_the_island_count_to_what_the_budget_fits():
    plan = plan_run(problem=heavy_like(individual_mb=100), budget_bytes=400 * MB,
                    coordinator_bytes=40 * MB, shared_bytes=50 * MB, population=10, cores=8)
    assert plan.islands == 2
    assert any("does not fit 8" in reason for reason in plan.reasons)


def test_plan_takes_the_problems_preferred_population():
    plan = plan_run(problem=heavy_like(individual_mb=1, preferred=24), budget_bytes=2000 * MB,
                    coordinator_bytes=40 * MB, shared_bytes=0, cores=1)
    assert plan.population == 24 and plan.islands == 1


def test_a_default_chunk_holds_at_most_32_mb_of_phenotypes():
    # 8 GB slices would hold all 40 children; past 32 MB a chunk only page-faults.
    plan = plan_run(problem=heavy_like(individual_mb=5), budget_bytes=16 * 2**30,
                    coordinator_bytes=40 * MB, shared_bytes=0, islands=2, population=40, cores=2)
    assert plan.chunk_size == 6
    assert any("page faults" in reason for reason in plan.reasons)
    one = plan_run(problem=heavy_like(individual_mb=50), budget_bytes=16 * 2**30,
                   coordinator_bytes=40 * MB, shared_bytes=0, islands=2, population=40, cores=2)
    assert one.chunk_size == 1
    small = plan_run(problem=heavy_like(individual_mb=0.01), budget_bytes=16 * 2**30,
                     coordinator_bytes=40 * MB, shared_bytes=0, islands=2, population=40, cores=2)
    assert small.chunk_size == 40
    asked = plan_run(problem=heavy_like(), budget_bytes=16 * 2**30, coordinator_bytes=40 * MB,
                     shared_bytes=0, islands=2, population=40, chunk_size=40, cores=2)
    assert asked.chunk_size == 40  # an explicit chunk is taken as given


def shrink_warnings(caplog):
    return [r.getMessage() for r in caplog.records
            if r.levelname == "WARNING" and "shrunk to" in r.getMessage()]


def test_without_streaming_a_population_too_big_for_its_slice_is_shrunk_with_a_warning(caplog):
    # Issue 11 item 3: 40 phenotypes of 20 MB alive at once do not fit a 330 MB slice.
    problem = heavy_like()
    plan = plan_run(problem=problem, budget_bytes=700 * MB, coordinator_bytes=40 * MB,
                    shared_bytes=0, islands=2, population=40, streaming=False, cores=2)
    assert 4 <= plan.population < 40 and plan.islands == 2 and not plan.streaming
    # The largest that fits, by the same accounting as the streaming chunk: a whole
    # generation is one chunk of `population` children.
    room = plan.slice_bytes - WORKER_BASE_BYTES
    assert chunk_size_for(room, problem.individual_bytes, 400, plan.population) == plan.population
    assert chunk_size_for(room, problem.individual_bytes, 400, plan.population + 1) <= plan.population
    assert WORKER_BASE_BYTES + plan.population * 20 * MB <= plan.slice_bytes
    assert plan.chunk_size == plan.population
    [warning] = shrink_warnings(caplog)
    assert warning == (f"[GA] Population 40 does not fit an island's 330MB slice without "
                       f"streaming; shrunk to {plan.population}")
    assert any("shrunk to" in reason for reason in plan.reasons)
    assert f"pop={plan.population}," in plan.log_line()


def test_a_population_that_fits_is_kept_without_a_warning(caplog):
    for streaming, budget in ((True, 700 * MB), (False, 8 * 2**30)):
        plan = plan_run(problem=heavy_like(), budget_bytes=budget, coordinator_bytes=40 * MB,
                        shared_bytes=0, islands=2, population=40, streaming=streaming, cores=2)
        assert plan.population == 40
    assert shrink_warnings(caplog) == []


def test_with_streaming_survivors_too_big_for_the_slice_shrink_the_population(caplog):
    # Streaming bounds the phenotypes, not the survivors: 1000 genomes of 1 MB are 2 GB.
    problem = heavy_like(individual_mb=1, genome_bytes=MB)
    plan = plan_run(problem=problem, budget_bytes=700 * MB, coordinator_bytes=40 * MB,
                    shared_bytes=0, islands=2, population=1000, cores=2)
    assert 4 <= plan.population < 1000
    assert island_bytes(problem, plan.population, streaming=True) <= plan.slice_bytes
    assert island_bytes(problem, plan.population + 1, streaming=True) > plan.slice_bytes
    [warning] = shrink_warnings(caplog)
    assert "slice with streaming; shrunk to" in warning


def test_without_streaming_the_island_count_is_lowered_until_the_minimum_population_fits():
    # 16 slices of 41 MB would each hold no 20 MB phenotype at all; the count drops until a
    # slice holds the run's minimum population (4) evaluated at once, then the population
    # shrinks to what that slice holds.
    problem = heavy_like()
    plan = plan_run(problem=problem, budget_bytes=700 * MB, coordinator_bytes=40 * MB,
                    shared_bytes=0, population=50, streaming=False, cores=16)
    assert 1 < plan.islands < 16
    assert 4 <= plan.population < 50
    assert island_bytes(problem, 4, streaming=False) <= plan.slice_bytes
    assert any("does not fit 16" in reason for reason in plan.reasons)


def test_a_slice_below_the_minimum_population_is_one_clear_error_not_a_shrink():
    with pytest.raises(BudgetError, match="too small for 2 island") as error:
        plan_run(problem=heavy_like(), budget_bytes=300 * MB, coordinator_bytes=40 * MB,
                 shared_bytes=0, islands=2, population=40, streaming=False, cores=2)
    assert "population of 4 without streaming" in str(error.value)
    assert "\n" not in str(error.value)
    # A smaller minimum (e.g. `min_population = 2` in the config) lets it run.
    plan = plan_run(problem=heavy_like(), budget_bytes=300 * MB, coordinator_bytes=40 * MB,
                    shared_bytes=0, islands=2, population=40, streaming=False, cores=2,
                    min_population=2)
    assert 2 <= plan.population < 4


def test_a_population_asked_below_the_minimum_is_kept_when_it_fits():
    plan = plan_run(problem=heavy_like(), budget_bytes=300 * MB, coordinator_bytes=40 * MB,
                    shared_bytes=0, islands=2, population=2, streaming=False, cores=2)
    assert plan.population == 2


def test_budget_too_small_for_one_island_is_one_clear_error():
    with pytest.raises(BudgetError, match="too small for even one island") as error:
        plan_run(problem=heavy_like(), budget_bytes=80 * MB, coordinator_bytes=40 * MB,
                 shared_bytes=0, population=10, cores=4)
    assert "\n" not in str(error.value)
    with pytest.raises(BudgetError, match="too small for 3 island"):
        plan_run(problem=heavy_like(), budget_bytes=200 * MB, coordinator_bytes=40 * MB,
                 shared_bytes=0, population=10, islands=3, cores=4)


def test_more_islands_than_usable_cores_is_a_warning(caplog):
    plan = plan_run(problem=heavy_like(), budget_bytes=2000 * MB, coordinator_bytes=40 * MB,
                    shared_bytes=0, islands=6, cores=2)
    assert plan.islands == 6
    assert any("6 islands on 2 usable core(s)" in r.getMessage() for r in caplog.records)
    caplog.clear()
    plan_run(problem=heavy_like(), budget_bytes=2000 * MB, coordinator_bytes=40 * MB,
             shared_bytes=0, islands=2, cores=2)
    assert not [r for r in caplog.records if "usable core" in r.getMessage()]


@pytest.mark.parametrize(("files", "quota_cores"), [
    ({"cpu.max": "150000 100000\n"}, 2),  # v2: 1.5 cores rounds up
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),  # v1
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),
])
def test_usable_cores_counts_the_cgroup_cpu_quota(tmp_path, files, quota_cores):
    import os

    from coordinator.autoconfig import usable_cores

    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    affinity = len(os.sched_getaffinity(0))
    expected = affinity if quota_cores is None else min(affinity, quota_cores)
    assert usable_cores(tmp_path) == expected

"""RunConfig resolution (defaults < TOML file < flags, validation, TOML round trip) and
auto-configuration from the budget and cores (coordinator.autoconfig)."""

from types import SimpleNamespace

import pytest

from coordinator.autoconfig import WORKER_BASE_BYTES, plan_run
from coordinator.config import RunConfig, load_toml, resolve_config
from islands.errors import InputError
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
    assert config.population == 12  # the flag wins
    assert config.time_limit == 5.0 and isinstance(config.time_limit, float)
    assert config.topology == "full"
    assert config.thresholds == {"high": 0.8}
    assert config.seed == RunConfig().seed  # a flag left as None keeps the default
    assert config.migration_interval == RunConfig().migration_interval


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
    path = write(tmp_path, config.to_toml(), name="config.toml")
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


def test_budget_too_small_for_one_island_is_one_clear_error():
    with pytest.raises(BudgetError, match="too small for even one island") as error:
        plan_run(problem=heavy_like(), budget_bytes=80 * MB, coordinator_bytes=40 * MB,
                 shared_bytes=0, population=10, cores=4)
    assert "\n" not in str(error.value)
    with pytest.raises(BudgetError, match="too small for 3 island"):
        plan_run(problem=heavy_like(), budget_bytes=200 * MB, coordinator_bytes=40 * MB,
                 shared_bytes=0, population=10, islands=3, cores=4)

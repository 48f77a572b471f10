"""RunConfig resolution: defaults < TOML file < flags, validation, TOML round trip."""

import pytest

from coordinator.config import RunConfig, load_toml, resolve_config
from islands.errors import InputError


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

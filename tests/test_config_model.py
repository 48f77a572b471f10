"""The typed config model: tables, flat keys, "did you mean", help for every flag, and
the [problem] and [search] tables reaching a real run."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from coordinator.cli import build_parser
from coordinator.config import build, nest, resolve_config, to_toml
from coordinator.config_model import FLAT_NAMES
from islands.checkpoint import load_state
from islands.errors import InputError

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_tables_and_flat_keys_resolve_to_the_same_config(tmp_path):
    tables = write(tmp_path, '[problem]\nspec = "rastrigin"\ndim = 12\n'
                             '[stop]\ntime-limit = 5\n[search]\ntournament_size = 4\n'
                             'crossover_rate = 0.5\n[memory]\nbudget = "700M"\n')
    config = resolve_config(toml_path=tables, flags={"seed": 3})
    assert config.problem == "rastrigin:dim=12" and config.stop.time_limit == 5.0
    assert config.search.tournament_size == 4 and config.search.crossover_rate == 0.5
    assert config.memory.budget == "700M" and config.seed == 3
    flat = write(tmp_path, 'problem = "rastrigin:dim=12"\ntime_limit = 5\ntournament_size = 4\n'
                           'crossover_rate = 0.5\nmemory_budget = "700M"\nseed = 3\n')
    assert resolve_config(toml_path=flat) == config
    # Written as tables, read back the same.
    again = write(tmp_path, to_toml(config))
    assert resolve_config(toml_path=again) == config


def test_a_spec_given_on_the_command_line_keeps_its_own_parameters(tmp_path):
    path = write(tmp_path, '[problem]\nspec = "rastrigin"\ndim = 12\n')
    config = resolve_config(toml_path=path, flags={"problem": "rastrigin:dim=3"})
    assert config.problem == "rastrigin:dim=3"


@pytest.mark.parametrize("text, message", [
    ("time_limt = 5\n", "unknown key 'time_limt'; did you mean 'time_limit'?"),
    ("[search]\ntournament = 3\n", "unknown key 'tournament' in [search]; did you mean "
                                   "'tournament_size'?"),
    ("[search]\ntournament_size = 1.5\n", "key '[search] tournament_size' must be an integer, "
                                          "got 1.5"),
    ("[stop]\ngenerations = true\n", "key '[stop] generations' must be an integer, got True"),
    ("time_limit = 5\n[stop]\ntime_limit = 6\n", "[stop] time_limit is given twice"),
    ("[search]\ncrossover_rate = 2.0\n", "crossover-rate must be between 0 and 1"),
    ("[problem]\ndim = 3\n", "[problem] needs spec"),
    ("zzz = 1\n", "unknown key 'zzz' (known keys: "),
])
def test_bad_keys_and_values_are_one_line_naming_file_and_key(tmp_path, text, message):
    with pytest.raises(InputError) as error:
        resolve_config(toml_path=write(tmp_path, text))
    assert message in str(error.value) and "run.toml" in str(error.value)
    assert "\n" not in str(error.value)


def test_old_flat_checkpoint_configs_still_load():
    old = {"problem": "sphere", "islands": 2, "time_limit": 5.0, "memory_budget": "1G",
           "thresholds": {"high": 0.8}, "quiet": True, "sync": True}
    config = build(nest(old, source="old"), source="old")
    assert (config.stop.time_limit, config.memory.budget, config.memory.thresholds,
            config.output.quiet, config.search.sync) == (5.0, "1G", {"high": 0.8}, True, True)


def test_every_flag_has_help_and_every_setting_a_flag():
    run = next(action for action in build_parser()._actions
               if isinstance(action, argparse._SubParsersAction)).choices["run"]
    flags = {action.dest: action for action in run._actions if action.option_strings}
    for dest, action in flags.items():
        assert action.help, f"--{dest} has no help text"
    for name in FLAT_NAMES:
        if name not in ("problem", "workdir", "thresholds"):
            assert name in flags, f"setting {name} has no flag"
    assert "(default: 2)" in flags["tournament_size"].help
    assert "(default: ring)" in flags["topology"].help


def test_search_and_problem_tables_reach_the_islands(tmp_path):
    path = write(tmp_path, '[problem]\nspec = "sphere"\ndim = 3\n[stop]\ngenerations = 4\n'
                           '[search]\ntournament_size = 5\ncrossover_rate = 0.25\n'
                           'elite_count = 2\npopulation = 6\n')
    result = subprocess.run(
        [sys.executable, "-m", "coordinator", "run", "--config", str(path), "--islands", "1",
         "--quiet", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    island = load_state(tmp_path / "run" / "checkpoint" / "island-0.msgpack")
    operators = island["config"]["operator_params"]
    assert (operators["tournament_size"], operators["crossover_rate"],
            operators["elite_count"]) == (5, 0.25, 2)

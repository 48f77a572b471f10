"""Problems used without packaging them: `package.module:Class[,k=v]` and
`path/to/file.py:Class[,k=v]` specs through the real CLI (the islands load the class again
in their own processes), one-line errors for every way such a spec can be wrong, and
`islands problems` listing the built-in and installed problems with their parameters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from islands.problem import ProblemSpecError, build_problem, parse_spec

REPO_ROOT = Path(__file__).resolve().parent.parent

PARABOLA = '''
import numpy as np


class Parabola:
    """Sum of squares around `centre`: a user's own problem, in a plain file."""

    def __init__(self, dim=4, centre=1.0):
        self.genome_shape, self.genome_dtype = (int(dim),), np.float64
        self.individual_bytes = 8 * int(dim)
        self.centre = float(centre)

    def random(self, rng, n):
        return rng.uniform(-5, 5, size=(n, *self.genome_shape))

    def evaluate(self, genomes):
        return ((genomes - self.centre) ** 2).sum(axis=1)
'''


def islands(*args: str, cwd: Path = REPO_ROOT, pythonpath: Path | None = None):
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), str(REPO_ROOT)])
    return subprocess.run([sys.executable, "-m", "coordinator", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=180)


@pytest.fixture
def user_module(tmp_path) -> Path:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "my_problems.py").write_text(PARABOLA)
    return folder


def test_a_module_class_spec_runs_on_islands_without_packaging(tmp_path, user_module):
    result = islands("run", "my_problems:Parabola,dim=5,centre=2", "--islands", "2",
                     "--generations", "20", "--json", "--quiet", "--out", str(tmp_path / "run"),
                     pythonpath=user_module)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["problem"] == "my_problems:Parabola,dim=5,centre=2"
    assert summary["failed_islands"] == [] and summary["islands"] == 2
    best = np.load(tmp_path / "run" / "best.npy")
    assert best.shape == (5,)
    assert summary["best_fitness"] == pytest.approx(float(((best - 2.0) ** 2).sum()))


def test_a_file_class_spec_is_found_from_the_working_directory(tmp_path, user_module):
    result = islands("run", "mine/my_problems.py:Parabola", "--islands", "2", "--generations",
                     "10", "--json", "--quiet", "--out", "run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["problem"] == "mine/my_problems.py:Parabola"
    assert np.load(tmp_path / "run" / "best.npy").shape == (4,)


@pytest.mark.parametrize(("spec", "says"), [
    ("no_such_module_here:Thing", "cannot import 'no_such_module_here'"),
    ("mine/absent.py:Thing", "no such file 'mine/absent.py'"),
    ("mine/my_problems.py:Nope", "has no 'Nope'"),
    ("my_problems.sub", "give the class as my_problems.sub:Class"),
    ("mine/my_problems.py:Parabola,radius=3", "has no parameter 'radius'"),
])
def test_a_wrong_class_spec_is_one_line_and_exit_2(tmp_path, user_module, spec, says):
    result = islands("run", spec, "--generations", "2", "--out", "run", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and says in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_islands_problems_lists_built_in_and_installed_problems(tmp_path, install_plugin):
    install_plugin("user_parabola", PARABOLA, "parabola", "Parabola")
    result = islands("problems", pythonpath=tmp_path / "plugin")
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert lines["rastrigin"] == "dim=30"
    assert lines["parabola"] == "dim=4,centre=1.0"
    assert lines["timetable"].startswith("path=")


def test_class_specs_keep_their_case_and_take_parameters_after_the_class(user_module,
                                                                         monkeypatch):
    monkeypatch.syspath_prepend(str(user_module))
    parsed = parse_spec("my_problems:Parabola,dim=3")
    assert parsed.name == "my_problems:Parabola" and parsed.params == {"dim": 3}
    assert build_problem(parsed).genome_shape == (3,)
    assert parse_spec("Rastrigin:dim=3").name == "rastrigin"  # registry names: any case
    with pytest.raises(ProblemSpecError, match="give the class"):
        parse_spec("my_problems.py")

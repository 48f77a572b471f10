"""The Python API `islands.run`: specs, classes, instances, notebook and `__main__` classes,
progress callbacks, failures that raise, and the missing `__main__` guard.

Real runs with real island processes (small problems, a few generations).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import islands
from islands.errors import InputError

ROOT = Path(__file__).resolve().parent.parent


class Shifted:
    """Sphere around `shift` (defined in this test module: islands import it by name)."""

    genome_shape = (4,)
    genome_dtype = np.dtype("float64")
    individual_bytes = 64

    def __init__(self, shift: float = 0.0) -> None:
        self.shift = shift

    def random(self, rng, n):
        return rng.uniform(-5, 5, (n, 4))

    def evaluate(self, genomes):
        return ((genomes - self.shift) ** 2).sum(axis=1)


class Broken(Shifted):
    def evaluate(self, genomes):
        raise ZeroDivisionError("the evaluation of Broken always fails")


def test_a_class_from_a_module_with_params(tmp_path):
    seen = []
    result = islands.run(Shifted, params={"shift": 2.0}, islands=2, population=8,
                         generations=15, seed=3, out=str(tmp_path / "run"), progress=seen.append)
    assert result.stopped_by == "generations"
    assert result.best_genome is not None and result.best_genome.shape == (4,)
    assert result.best_fitness == pytest.approx(float(((result.best_genome - 2.0) ** 2).sum()))
    assert result.run_dir == tmp_path / "run" and (result.run_dir / "summary.json").exists()
    assert result.summary["problem"] == "test_api:Shifted,shift=2.0"
    # The history is the global best over time: falling, ending at the result.
    fitnesses = [fitness for _, fitness in result.history]
    assert fitnesses == sorted(fitnesses, reverse=True) and fitnesses[-1] == result.best_fitness
    assert seen and all(isinstance(p, islands.Progress) for p in seen)
    assert seen[-1].best_fitness is not None and seen[-1].best_fitness >= result.best_fitness


def test_a_spec_string_and_an_instance(tmp_path):
    by_spec = islands.run("sphere", params={"dim": 3}, islands=1, population=6, generations=5,
                          out=str(tmp_path / "spec"))
    assert by_spec.summary["problem"] == "sphere:dim=3" and by_spec.best_genome.shape == (3,)
    by_instance = islands.run(Shifted(shift=-1.0), islands=1, population=6, generations=5,
                              out=str(tmp_path / "instance"))
    assert by_instance.best_fitness is not None


def test_a_failing_problem_raises_with_its_cause(tmp_path):
    with pytest.raises(islands.RunFailed, match="ZeroDivisionError: the evaluation of Broken"
                       ) as failure:
        islands.run(Broken, islands=1, population=4, generations=3, out=str(tmp_path / "run"))
    assert "Traceback" in failure.value.details
    assert failure.value.summary["stopped_by"] == "failed"


def test_bad_options_are_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="unknown key 'time_limt'"):
        islands.run("sphere", time_limt=3)
    with pytest.raises(InputError, match="no stop criterion"):
        islands.run("sphere", out=str(tmp_path / "run"))
    with pytest.raises(InputError, match="unknown problem"):
        islands.run("no_such_problem", generations=1)


def test_the_progress_callback_can_stop_the_run_or_fail_it(tmp_path):
    result = islands.run(Shifted, islands=1, population=6, generations=100_000,
                         out=str(tmp_path / "stop"),
                         progress=lambda progress: progress.best_fitness is None)
    assert result.stopped_by == "callback" and result.best_fitness is not None

    def broken(progress):
        raise KeyError("the callback's own bug")

    with pytest.raises(KeyError, match="the callback's own bug"):
        islands.run(Shifted, islands=1, population=6, generations=100_000,
                    out=str(tmp_path / "error"), progress=broken)
    assert (tmp_path / "error" / "summary.json").exists()  # the run was wound down first


SCRIPT = """
import numpy as np
import islands

class Local:
    genome_shape = (3,)
    genome_dtype = np.dtype("float64")
    individual_bytes = 64
    def random(self, rng, n):
        return rng.uniform(-1, 1, (n, 3))
    def evaluate(self, genomes):
        return (genomes ** 2).sum(axis=1)

{call}
"""
CALL = ("result = islands.run(Local, islands=2, population=6, generations=5, out={out!r})\n"
        "print('BEST', result.best_fitness)")


def _python(code: str, cwd: Path, *, as_file: bool) -> subprocess.CompletedProcess:
    env_path = {"PYTHONPATH": str(ROOT)}
    if as_file:
        script = cwd / "script.py"
        script.write_text(code)
        command, given = [sys.executable, str(script)], None
    else:  # like a notebook: __main__ has no file, so classes travel by value
        command, given = [sys.executable, "-c", code], None
    return subprocess.run(command, input=given, cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**__import__("os").environ, **env_path})


def test_classes_defined_in_main_travel_to_the_islands(tmp_path):
    call = CALL.format(out=str(tmp_path / "notebook"))
    notebook = _python(SCRIPT.format(call=call), tmp_path, as_file=False)
    assert notebook.returncode == 0, notebook.stderr
    assert "BEST" in notebook.stdout
    guarded = "if __name__ == '__main__':\n" + textwrap.indent(
        CALL.format(out=str(tmp_path / "script")), "    ")
    script = _python(SCRIPT.format(call=guarded), tmp_path, as_file=True)
    assert script.returncode == 0, script.stderr
    assert "BEST" in script.stdout


def test_a_script_without_a_main_guard_runs_with_fork_and_gets_one_clear_message_with_spawn(
        tmp_path):
    # Forked islands never re-run the script: no guard needed (the default start method).
    forked = _python(SCRIPT.format(call=CALL.format(out=str(tmp_path / "fork"))), tmp_path,
                     as_file=True)
    assert forked.returncode == 0, forked.stderr
    assert "BEST" in forked.stdout
    # Spawned islands re-run it: the run would start again in each, so it says so once.
    spawn_call = CALL.replace("generations=5,", "generations=5, start_method='spawn',")
    unguarded = _python(SCRIPT.format(call=spawn_call.format(out=str(tmp_path / "run"))),
                        tmp_path, as_file=True)
    assert unguarded.returncode == 1
    assert "put the call under `if __name__ == \"__main__\":`" in unguarded.stderr
    assert "bootstrapping phase" not in unguarded.stderr  # no spawn tracebacks
    assert unguarded.stderr.count("Traceback") == 1  # RunFailed in the script, nothing else

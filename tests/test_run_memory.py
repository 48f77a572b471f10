"""Real memory: a run's whole process tree, measured from outside, stays in its budget.

Slow: each test starts a real run of the `heavy` problem, whose every evaluation really
allocates and touches `mb` megabytes, and samples the PSS of the coordinator and all its
children with psutil every 0.05 s.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
MB = 2**20
HEAVY_RUN = ["heavy:mb=20", "--islands", "2", "--population", "40", "--memory-budget", "700M",
             "--generations", "8", "--json"]

pytestmark = pytest.mark.slow


def tree_pss(root: psutil.Process) -> int:
    total = 0
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    for process in processes:
        try:
            total += process.memory_full_info().pss
        except psutil.Error:
            pass  # it ended between listing and reading
    return total


def run_and_sample(args, tmp_path, interval=0.05, env=None):
    command = [sys.executable, "-m", "coordinator", "run", *args, "--out", str(tmp_path / "run")]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=REPO_ROOT, env=env)
    root = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        peak = max(peak, tree_pss(root))
        time.sleep(interval)
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err[-3000:]
    return json.loads(out), peak, err


def test_streaming_heavy_run_stays_under_its_budget(tmp_path):
    summary, peak, _ = run_and_sample(HEAVY_RUN, tmp_path)
    assert summary["stopped_by"] == "generations"
    assert summary["generations"] == 8 and summary["failed_islands"] == []
    assert peak < 700 * MB, f"peak PSS {peak / MB:.0f} MB"
    assert summary["peak_memory_bytes"] < 700 * MB
    # The work was real: 2 islands x (40 initial + 8 x 40 offspring) evaluations, less cache hits.
    assert summary["evaluations"] > 2 * 40 * 8 * 0.8


def test_without_streaming_the_same_run_needs_far_more(tmp_path):
    # A budget so large the policy never acts shows what the old way needs: a whole
    # generation of 40 phenotypes of 20 MB per island alive at once.
    args = [*HEAVY_RUN, "--no-streaming"]
    args[args.index("700M")] = "8G"
    summary, peak, _ = run_and_sample(args, tmp_path)
    assert summary["pressure_events"] == []
    # 2 islands x 40 x 20 MiB = 1600 MiB at the moment both evaluate; sampling every
    # 0.1 s sees 1.5-1.6 GiB of it (vs under 0.5 GiB streaming, the test above).
    assert peak > 1.3 * 2**30, f"peak PSS {peak / MB:.0f} MB"


def test_without_streaming_in_700mb_the_population_is_shrunk_to_fit_before_spawning(tmp_path):
    # Issue 11 item 3: this run used to peak at 1.6 GiB (2.3x its budget) because a whole
    # generation of 40 phenotypes of 20 MiB per island was alive before the policy could act.
    summary, peak, err = run_and_sample([*HEAVY_RUN, "--no-streaming"], tmp_path)
    shrunk = [line for line in err.splitlines()
              if "[GA] Population 40 does not fit" in line and "shrunk to" in line]
    assert len(shrunk) == 1, err[-3000:]
    assert "without streaming" in shrunk[0]
    assert 4 <= summary["population"] < 40 and not summary["streaming"]
    assert f"pop={summary['population']}," in err  # the hardware line shows the shrunk value
    assert peak <= 1.10 * 700 * MB, f"peak PSS {peak / MB:.0f} MB"
    assert summary["stopped_by"] == "generations" and summary["generations"] == 8
    assert summary["failed_islands"] == [] and summary["island_failures"] == {}
    # The best is not lost: a finite fitness and the solution file on disk.
    assert summary["best_fitness"] is not None
    assert summary["solution_file"] and Path(summary["solution_file"]).is_file()
    assert "Traceback" not in err
    assert "[GA] Complete:" in err


FAST_GROWER_MODULE = """
import time

import multiprocess
import numpy as np

from islands.problems.functions import Sphere

KEPT = []  # module state of the island process: freed only when the process ends


class FastGrow(Sphere):
    \"\"\"Island `grow` keeps `mb` MiB more (pages touched) per evaluation call: about
    1 GB/s with the defaults. A leak no plan can foresee.\"\"\"

    name = "fastgrow"

    def __init__(self, dim=8, grow=0, mb=10, delay=0.01):
        super().__init__(dim)
        self.grow, self.mb, self.delay = int(grow), int(mb), float(delay)
        self.target_fitness = None

    def evaluate(self, genomes):
        if multiprocess.current_process().name == f"island-{self.grow}":
            KEPT.append(np.ones(self.mb << 20, dtype=np.uint8))
        time.sleep(self.delay)
        return super().evaluate(genomes)
"""


def test_an_island_growing_1_gb_per_second_is_held_near_the_budget_without_thrashing(
        tmp_path, install_plugin):
    install_plugin("fast_grow", FAST_GROWER_MODULE, "fastgrow", "FastGrow")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "plugin"), str(REPO_ROOT)]))
    budget = 600 * MB
    summary, peak, err = run_and_sample(
        ["fastgrow:dim=8", "--islands", "2", "--memory-budget", "600M", "--time-limit", "15",
         "--json"], tmp_path, env=env)
    assert "Traceback" not in err
    assert summary["stopped_by"] == "time_limit" and summary["best_fitness"] is not None
    assert summary["failed_islands"] == []
    # Was 2.8x: sampled every 0.5 s, and over the budget it waited for a second sample.
    assert peak < 1.1 * budget, f"peak PSS {peak / MB:.0f} MB"
    events = [json.loads(line) for line in
              (tmp_path / "run" / "events.jsonl").read_text().splitlines() if line.strip()]
    returns = [e["t"] for e in events if e["event"] == "restart" and e["island"] == 0]
    # No thrash: each time it is sent away it stays away longer (doubling backoff).
    gaps = [later - earlier for earlier, later in zip(returns, returns[1:], strict=False)]
    assert len(returns) <= 6, returns
    assert all(gap > 1.0 for gap in gaps), returns

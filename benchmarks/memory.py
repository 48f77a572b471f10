"""Memory benchmark: the old way (everything alive, unbounded cache) against islands' way.

Covers: real `islands run` subprocesses with the same seed and the same number of
generations, measured from outside (the PSS of the whole process tree, sampled every
0.1 s by `memory.probe.ProcessProbe`), for
- streaming vs `--no-streaming` on `heavy` (every evaluation allocates `mb` MiB), and
- a bounded vs an (effectively) unbounded fitness cache on a long `rastrigin` run.
Columns: peak RAM of the tree, population memory and cache memory (peaks reported by the
islands in their telemetry), best fitness and wall time. One process tree at a time, so
runs do not disturb each other's peaks; medians over `--repeats` runs.

Does not cover: speed (benchmarks/scaling.py) or memory pressure actions (the slow tests in
tests/test_run*.py lower budgets on purpose; here the budget is generous so nothing shrinks).

Usage: python benchmarks/memory.py [--repeats 3] [--mb 20] [--population 40] [--generations 8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

# Run as a script, this file's folder comes first on sys.path and this module would
# shadow the `memory` package it measures with.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import psutil  # noqa: E402

from memory.budget import format_bytes  # noqa: E402
from memory.probe import ProcessProbe  # noqa: E402


def run_measured(arguments: list[str]) -> dict:
    """Run `islands run ARGUMENTS --json`; return its summary plus the outside PSS peak."""
    probe = ProcessProbe()
    with tempfile.TemporaryDirectory() as run_dir:
        command = [sys.executable, "-m", "coordinator", "run", *arguments, "--json", "--quiet",
                   "--out", os.path.join(run_dir, "run")]
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        parent = psutil.Process(process.pid)
        peak_pss = 0
        while process.poll() is None:
            try:
                pids = [process.pid] + [child.pid for child in parent.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            peak_pss = max(peak_pss, probe.sample(pids).pss_total)
            time.sleep(0.1)
        stdout, stderr = process.communicate()
        wall_s = time.perf_counter() - started
        if process.returncode != 0:
            raise SystemExit(f"islands run {' '.join(arguments)} failed: {stderr.strip()}")
    summary = json.loads(stdout)
    summary["outside_peak_pss"] = peak_pss
    summary["wall_s"] = wall_s
    return summary


def median_row(label: str, arguments: list[str], repeats: int) -> dict:
    runs = [run_measured(arguments) for _ in range(repeats)]

    def median_of(key: str) -> float:
        return statistics.median(float(run.get(key) or 0) for run in runs)

    return {
        "label": label,
        "peak": median_of("outside_peak_pss"),
        "population": median_of("population_bytes"),
        "cache": median_of("cache_bytes"),
        "best": median_of("best_fitness"),
        "evaluations": median_of("evaluations"),
        "time": median_of("wall_s"),
    }


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(f"{'configuration':<34} {'peak RAM':>9} {'population':>10} {'cache':>9} "
          f"{'best':>10} {'evals':>7} {'time s':>7}")
    for row in rows:
        print(f"{row['label']:<34} {format_bytes(int(row['peak'])):>9} "
              f"{format_bytes(int(row['population'])):>10} {format_bytes(int(row['cache'])):>9} "
              f"{row['best']:>10.4g} {int(row['evaluations']):>7} {row['time']:>7.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mb", type=int, default=20, help="heavy: MiB per evaluation")
    parser.add_argument("--population", type=int, default=40)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--cache-generations", type=int, default=400,
                        help="length of the rastrigin run that fills the cache")
    args = parser.parse_args(argv)

    heavy = [f"heavy:mb={args.mb},dim=50", "--islands", "2", "--population",
             str(args.population), "--generations", str(args.generations), "--seed", "1",
             "--memory-budget", "700M"]
    rows = [
        median_row("heavy, streaming (700M budget)", heavy, args.repeats),
        median_row("heavy, --no-streaming (the old way)",
                   [*heavy[:-2], "--memory-budget", "8G", "--no-streaming"], args.repeats),
    ]
    print(f"# same seed, same generations; {args.repeats} repeats, medians; peak RAM = PSS of "
          "the whole process tree sampled from outside every 0.1 s")
    print_table(f"Streaming: heavy:mb={args.mb}, 2 islands x population {args.population}, "
                f"{args.generations} generations", rows)

    with tempfile.TemporaryDirectory() as config_dir:
        unbounded = os.path.join(config_dir, "unbounded.toml")
        with open(unbounded, "w") as config_file:
            # Large enough that nothing is ever evicted in this run: the old unbounded cache.
            config_file.write("cache_entries = 1000000000\n")
        cache = ["rastrigin:dim=200", "--islands", "2", "--population", "200",
                 "--generations", str(args.cache_generations), "--seed", "1", "--sync"]
        cache_rows = [
            median_row("rastrigin, bounded cache (default)", cache, args.repeats),
            median_row("rastrigin, unbounded cache (old)", [*cache, "--config", unbounded],
                       args.repeats),
        ]
    print_table(f"Fitness cache: rastrigin:dim=200, 2 islands x 200, {args.cache_generations} "
                "generations", cache_rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

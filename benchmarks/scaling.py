"""Scaling benchmark: evaluations per second for 1..N islands, and framework overhead.

Covers: `islands run` on the `costly` problem (its evaluation burns a calibrated ~1 ms of
CPU per individual) with 1..N islands (N = usable cores), the parallel efficiency
`rate(N) / (N * rate(1))`, and the overhead of the whole framework (processes, messages,
cache, migration) against a bare single-process loop with the same operators
(tournament selection, the problem's crossover and mutation, (mu+lambda) reduction).
Runs are interleaved repeat by repeat so that noise on a shared machine hits every
configuration alike; medians are printed. With `--baseline REF` every configuration also
runs on the code of git revision REF (extracted to a temporary directory, run with the
same interpreter and installed dependencies), interleaved with the current code, and the
table gains the baseline's rate and the ratio current / baseline per island count.
`--spec` replaces the calibrated problem (e.g. `rastrigin:dim=100`, where per-generation
overhead rather than evaluation dominates).

Does not cover: memory (benchmarks/memory.py) or solution quality (benchmarks/quality.py).

Usage: python benchmarks/scaling.py [--max-islands N] [--seconds 20] [--repeats 3]
                                    [--baseline REF] [--spec PROBLEM_SPEC]
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

import numpy as np

from islands.operators import tournament_select
from islands.problem import build_problem


def calibrate_work(target_ms: float, dim: int) -> int:
    """The `work` parameter that makes one evaluation of `costly` take about target_ms."""
    probe_work = 200
    problem = build_problem(f"costly:dim={dim},work={probe_work}")
    genomes = problem.random(np.random.default_rng(0), 100)
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        problem.evaluate(genomes)
        timings.append((time.perf_counter() - start) / len(genomes))
    per_unit_s = statistics.median(timings) / probe_work
    return max(1, round(target_ms / 1000.0 / per_unit_s))


def bare_loop_rate(spec: str, population: int, seconds: float, seed: int) -> float:
    """Evaluations per second of a plain (mu+lambda) GA in this process, no framework."""
    problem = build_problem(spec)
    rng = np.random.default_rng(seed)
    genomes = problem.random(rng, population)
    fitness = problem.evaluate(genomes)
    evaluations = len(genomes)
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        parents_a = genomes[tournament_select(fitness, population, rng)]
        parents_b = genomes[tournament_select(fitness, population, rng)]
        children = problem.mutate(problem.crossover(parents_a, parents_b, rng), rng)
        child_fitness = problem.evaluate(children)
        evaluations += len(children)
        pool = np.concatenate([genomes, children])
        pool_fitness = np.concatenate([fitness, child_fitness])
        keep = np.argsort(pool_fitness, kind="stable")[:population]
        genomes, fitness = pool[keep], pool_fitness[keep]
    return evaluations / (time.perf_counter() - start)


def extract_revision(revision: str, into: str) -> str:
    """The project's files at git `revision`, unpacked under `into`; returns that path."""
    root = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                          check=True).stdout.strip()
    archive = subprocess.run(["git", "-C", root, "archive", revision], capture_output=True,
                             check=False)
    if archive.returncode != 0:
        raise SystemExit(f"cannot extract revision {revision}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", into], input=archive.stdout, check=True)
    return into


def framework_rate(spec: str, islands: int, population: int, seconds: float, seed: int,
                   code: str | None = None) -> float:
    """Evaluations per second of `islands run` with `islands` islands (one subprocess).

    `code`: a directory holding another version of the project to run instead.
    """
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = code + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory() as run_dir:
        command = [
            sys.executable, "-m", "coordinator", "run", spec, "--islands", str(islands),
            "--population", str(population), "--time-limit", str(seconds), "--seed", str(seed),
            "--json", "--quiet", "--out", os.path.join(run_dir, "run"),
        ]
        finished = subprocess.run(command, capture_output=True, text=True, check=False, env=env,
                                  cwd=code)
        if finished.returncode != 0:
            raise SystemExit(f"islands run failed ({finished.returncode}): {finished.stderr.strip()}")
        summary = json.loads(finished.stdout)
    # Evolution time excludes process start-up where the summary reports it.
    evolve_s = summary.get("evolution_s") or summary["elapsed_s"]
    return summary["evaluations"] / evolve_s


def main(argv: list[str] | None = None) -> int:
    cores = len(os.sched_getaffinity(0))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-islands", type=int, default=cores)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--population", type=int, default=32)
    parser.add_argument("--dim", type=int, default=30)
    parser.add_argument("--eval-ms", type=float, default=1.0, help="target cost of one evaluation")
    parser.add_argument("--spec", help="problem to run instead of the calibrated `costly` one")
    parser.add_argument("--baseline", metavar="REF",
                        help="git revision to run side by side (e.g. HEAD~1); prints ratios")
    args = parser.parse_args(argv)

    if args.spec:
        spec = args.spec
        print(f"# {spec}, {cores} usable cores, ", end="")
    else:
        work = calibrate_work(args.eval_ms, args.dim)
        spec = f"costly:dim={args.dim},work={work}"
        print(f"# {spec} (calibrated to ~{args.eval_ms} ms per evaluation), {cores} usable "
              "cores, ", end="")
    print(f"{args.seconds:g} s per run, {args.repeats} repeats, medians"
          + (f", baseline {args.baseline}" if args.baseline else ""), flush=True)

    with tempfile.TemporaryDirectory() as baseline_dir:
        baseline = extract_revision(args.baseline, baseline_dir) if args.baseline else None
        bare_rates: list[float] = []
        rates: dict[int, list[float]] = {n: [] for n in range(1, args.max_islands + 1)}
        baseline_rates: dict[int, list[float]] = {n: [] for n in rates}
        for repeat in range(args.repeats):
            bare_rates.append(bare_loop_rate(spec, args.population, args.seconds, seed=repeat))
            for islands in rates:
                run = [(rates, None)] + ([(baseline_rates, baseline)] if baseline else [])
                # Alternate which version goes first, so drift on the machine hits both alike.
                for into, code in (run if repeat % 2 == 0 else run[::-1]):
                    into[islands].append(framework_rate(spec, islands, args.population,
                                                        args.seconds, seed=repeat, code=code))
            print(f"# repeat {repeat + 1}/{args.repeats} done", file=sys.stderr, flush=True)

    bare = statistics.median(bare_rates)
    one = statistics.median(rates[1])
    header = f"{'islands':>7} {'evals/s':>10} {'speed-up':>9} {'efficiency':>10}"
    print(header + (f" {'baseline':>10} {'ratio':>6}" if args.baseline else ""))
    for islands, samples in rates.items():
        rate = statistics.median(samples)
        line = f"{islands:>7} {rate:>10.1f} {rate / one:>9.2f} {rate / (islands * one):>10.3f}"
        if args.baseline:
            old = statistics.median(baseline_rates[islands])
            line += f" {old:>10.1f} {rate / old:>6.3f}"
        print(line)
    print(f"bare single-process loop: {bare:.1f} evals/s; framework overhead at 1 island: "
          f"{100.0 * (1.0 - one / bare):.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Solution quality on the ITC-2007 track 3 instances against published results.

For each ../shared/itc2007/compNN.ctt, either runs the real optimizer
(`python -m coordinator run INST --time-limit T --islands N --json --quiet --out DIR`) or,
with --direct, a single-process loop of this package alone (randomised construction, then
simulated annealing sized to the time left, restarted while time remains). Prints a table:
hard violations, soft cost, best known (Ceschia et al. 2023 table 13, else Urli 2014),
Müller's average (the competition winner), ratio soft / best known, time to the first
feasible timetable; then a summary line.

    .venv/bin/python benchmarks/quality.py --direct --time-limit 60 --instances comp01,comp07
    .venv/bin/python benchmarks/quality.py --time-limit 180 --islands 2
    .venv/bin/python benchmarks/quality.py --compare --time-limit 60 --islands 2
    .venv/bin/python benchmarks/quality.py --time-limit 180 --seeds 0,1,2 --instances comp05,comp07,comp12

--params k=v,... passes search parameters to the problem in both modes (direct: keyword
arguments of TimetableProblem; coordinator: appended to the spec, `timetable:PATH,k=v`).

--run-args "..." passes further options to `islands run` in coordinator mode, e.g.
--run-args "--migrants 2" (one process has no such options).

--compare alternates one process and the islands per instance (both columns from the same
minutes of the same machine); --seeds gives median, min and max over seeds.

Wall-clock figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
ITC_DIR = REPO.parent / "shared" / "itc2007"


def best_known() -> dict[str, dict[str, float | None]]:
    table: dict[str, dict[str, float | None]] = {}
    with open(ITC_DIR / "best_known.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            bk = row["bk_ceschia2023_tab13"] or row["bk_urli2014"]
            table[row["instance"]] = {
                "best_known": float(bk) if bk else None,
                "muller_avg": float(row["muller_avg"]) if row["muller_avg"] else None,
            }
    return table


def run_direct(path: Path, time_limit: float, seed: int, params: str = "") -> dict:
    """Construction + annealing restarts in this process, within `time_limit` seconds."""
    sys.path.insert(0, str(REPO))
    from islands.timetable.problem import HARD_WEIGHT, TimetableProblem

    started = time.perf_counter()
    problem = TimetableProblem(str(path), **parse_params(params))
    rng = np.random.default_rng(seed)
    best = problem.random(rng, 1)
    best_fitness = problem.evaluate(best)
    time_to_feasible = time.perf_counter() - started if best_fitness[0] < HARD_WEIGHT else None
    # Calibrate the move rate, then give each anneal most of the time left.
    calibration = 200_000
    t0 = time.perf_counter()
    best, best_fitness, stats = problem.improve_with_stats(best, best_fitness, rng, calibration)
    rate = max(stats[0, 2], 1) / max(time.perf_counter() - t0, 1e-3)
    if time_to_feasible is None and best_fitness[0] < HARD_WEIGHT:
        time_to_feasible = time.perf_counter() - started
    restarts = 0
    while True:
        left = time_limit - (time.perf_counter() - started)
        if left < 1.0:
            break
        moves = int(rate * left * 0.9)
        candidate, fitness = problem.improve(best, best_fitness, rng, ls_moves=moves)
        restarts += 1
        if fitness[0] <= best_fitness[0]:
            best, best_fitness = candidate, fitness
        if time_to_feasible is None and best_fitness[0] < HARD_WEIGHT:
            time_to_feasible = time.perf_counter() - started
        if best_fitness[0] == 0:
            break
    described = problem.describe(best[0])
    return {
        "hard_violations": described["hard_violations"],
        "soft_cost": described["soft_cost"],
        "elapsed_s": time.perf_counter() - started,
        "time_to_feasible_s": time_to_feasible,
        "anneals": restarts + 1,
        "moves_per_s": rate,
    }


def parse_params(text: str) -> dict[str, int | float | str]:
    """`k=v,k2=v2` as keyword arguments (numbers as int or float)."""
    params: dict[str, int | float | str] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, _, value = part.partition("=")
        for kind in (int, float, str):
            try:
                params[key.strip()] = kind(value.strip())
                break
            except ValueError:
                continue
    return params


def run_coordinator(
    path: Path, time_limit: float, islands: int, seed: int, params: str = "", run_args: str = ""
) -> dict:
    with tempfile.TemporaryDirectory(prefix="quality-") as out:
        target = f"timetable:{path},{params}" if params.strip() else str(path)
        command = [
            sys.executable, "-m", "coordinator", "run", target,
            "--time-limit", str(time_limit), "--islands", str(islands),
            "--seed", str(seed), "--json", "--quiet", "--out", str(Path(out) / "run"),
            *shlex.split(run_args),
        ]
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                              timeout=time_limit * 3 + 120)
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["(no stderr)"])[-1]
            return {"error": f"exit {done.returncode}: {tail}"}
        lines = [line for line in done.stdout.splitlines() if line.strip().startswith("{")]
        if not lines:
            return {"error": "no JSON summary on stdout"}
        return json.loads(lines[-1])


def fmt(value, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def run_one(path: Path, args: argparse.Namespace, seed: int, direct: bool) -> dict:
    if direct:
        return run_direct(path, args.time_limit, seed, args.params)
    return run_coordinator(path, args.time_limit, args.islands, seed, args.params, args.run_args)


def cost(result: dict) -> float:
    """Soft cost of a feasible result; infinity for errors and infeasible ones."""
    if "error" in result or int(result["hard_violations"]) > 0:
        return float("inf")
    return float(result["soft_cost"])


def seeds_of(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def print_table(names: list[str], args: argparse.Namespace, reference: dict) -> None:
    mode = "direct (1 process)" if args.direct else f"coordinator, {args.islands} islands"
    print(f"# ITC-2007 track 3, {mode}, time limit {args.time_limit:g} s, seed {args.seed}")
    header = f"{'instance':<9} {'hard':>5} {'soft':>6} {'best':>5} {'muller':>7} {'ratio':>6} {'feasible_s':>10} {'elapsed_s':>9}"
    print(header)
    print("-" * len(header))
    feasible = within_two = at_muller = 0
    for name in names:
        result = run_one(ITC_DIR / f"{name}.ctt", args, args.seed, args.direct)
        ref = reference.get(name, {})
        if "error" in result:
            print(f"{name:<9} {result['error']}")
            continue
        hard, soft = int(result["hard_violations"]), int(result["soft_cost"])
        bk, muller = ref.get("best_known"), ref.get("muller_avg")
        ratio = None
        if hard == 0 and bk is not None:
            ratio = soft / bk if bk > 0 else (1.0 if soft == 0 else float("inf"))
        feasible += hard == 0
        within_two += hard == 0 and ratio is not None and ratio <= 2.0
        at_muller += hard == 0 and muller is not None and soft <= muller
        print(
            f"{name:<9} {hard:>5} {soft:>6} {fmt(bk, '.0f'):>5} {fmt(muller, '.1f'):>7} "
            f"{fmt(ratio, '.2f'):>6} {fmt(result.get('time_to_feasible_s'), '.1f'):>10} "
            f"{fmt(result.get('elapsed_s'), '.1f'):>9}",
            flush=True,
        )
    print(
        f"summary: feasible {feasible}/{len(names)}, within 2x best known {within_two}/{len(names)}, "
        f"at or below Müller's average {at_muller}/{len(names)}"
    )


def print_comparison(names: list[str], args: argparse.Namespace, reference: dict) -> None:
    """One process against N islands, alternated per instance and seed (same machine,
    same minutes), soft cost (inf: not feasible)."""
    seeds = seeds_of(args.seeds) or [args.seed]
    print(f"# ITC-2007 track 3, one process (--direct) against {args.islands} islands, "
          f"time limit {args.time_limit:g} s each, seeds {','.join(map(str, seeds))}; "
          "median soft cost (min-max over seeds)")
    header = f"{'instance':<9} {'one_process':>17} {'islands':>17} {'muller':>7} {'islands<=one':>12}"
    print(header)
    print("-" * len(header))
    wins = ties = at_muller = pairs_won = pairs = done = 0
    for name in names:
        path = ITC_DIR / f"{name}.ctt"
        one, many = [], []
        for seed in seeds:
            one.append(cost(run_one(path, args, seed, True)))
            many.append(cost(run_one(path, args, seed, False)))
            done += 1
            # Each pair on stderr as it ends: a long table shows progress, and the runs
            # behind each median stay on record (e.g. for another subset of seeds).
            print(f"[{done}/{len(names) * len(seeds)}] {name} seed {seed}: one process "
                  f"{one[-1]:g}, islands {many[-1]:g}", file=sys.stderr, flush=True)
        muller = reference.get(name, {}).get("muller_avg")
        one_median, many_median = float(np.median(one)), float(np.median(many))
        pairs += len(seeds)
        pairs_won += sum(m <= o for m, o in zip(many, one, strict=True))
        wins += many_median < one_median
        ties += many_median == one_median
        at_muller += muller is not None and many_median <= muller
        print(f"{name:<9} {spread(one):>17} {spread(many):>17} {fmt(muller, '.1f'):>7} "
              f"{'yes' if many_median <= one_median else 'no':>12}", flush=True)
    print(f"summary: islands at or below one process on {wins + ties}/{len(names)} "
          f"(better on {wins}, equal on {ties}); islands at or below Müller's average "
          f"on {at_muller}/{len(names)}; same seed, islands at or below one process in "
          f"{pairs_won}/{pairs} runs")


def spread(values: list[float]) -> str:
    median = float(np.median(values))
    if len(values) == 1:
        return f"{median:g}"
    return f"{median:g} ({min(values):g}-{max(values):g})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=180.0)
    parser.add_argument("--islands", type=int, default=2)
    parser.add_argument("--instances", default="", help="comma list, e.g. comp01,comp07 (default: all)")
    parser.add_argument("--direct", action="store_true", help="single process, no coordinator")
    parser.add_argument("--compare", action="store_true",
                        help="one process (--direct) and the islands side by side, per instance")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", default="",
                        help="comma list of seeds: median (min-max) per instance, e.g. 0,1,2")
    parser.add_argument("--params", default="",
                        help="search parameters for the problem, e.g. kempe_ls_prob=0.05,mwd_prob=0.01")
    parser.add_argument("--run-args", default="",
                        help='further options of `islands run` (coordinator mode), e.g. "--migrants 2"')
    args = parser.parse_args(argv)
    if not ITC_DIR.exists():
        print(f"ITC-2007 instances not found at {ITC_DIR}", file=sys.stderr)
        return 2
    names = [n.strip() for n in args.instances.split(",") if n.strip()] or sorted(
        p.stem for p in ITC_DIR.glob("comp*.ctt")
    )
    missing = [name for name in names if not (ITC_DIR / f"{name}.ctt").exists()]
    if missing:
        print(f"instances not found in {ITC_DIR}: {', '.join(missing)}", file=sys.stderr)
        return 2
    reference = best_known()
    if args.compare or args.seeds:
        print_comparison(names, args, reference) if args.compare else print_seeds(names, args, reference)
    else:
        print_table(names, args, reference)
    return 0


def print_seeds(names: list[str], args: argparse.Namespace, reference: dict) -> None:
    """Soft cost over several seeds of one mode: median, min, max."""
    seeds = seeds_of(args.seeds)
    mode = "direct (1 process)" if args.direct else f"coordinator, {args.islands} islands"
    print(f"# ITC-2007 track 3, {mode}, time limit {args.time_limit:g} s, seeds "
          f"{','.join(map(str, seeds))}; soft cost (inf: not feasible)")
    header = f"{'instance':<9} {'median':>7} {'min':>6} {'max':>6} {'muller':>7} {'runs':>20}"
    print(header)
    print("-" * len(header))
    for name in names:
        costs = [cost(run_one(ITC_DIR / f"{name}.ctt", args, seed, args.direct)) for seed in seeds]
        muller = reference.get(name, {}).get("muller_avg")
        print(f"{name:<9} {float(np.median(costs)):>7g} {min(costs):>6g} {max(costs):>6g} "
              f"{fmt(muller, '.1f'):>7} {' '.join(f'{c:g}' for c in costs):>20}", flush=True)


if __name__ == "__main__":
    sys.exit(main())

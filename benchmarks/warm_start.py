"""Tonight's timetable from last night's: a warm start against a cold start.

Solves an ITC-2007 instance (one process, --base-time seconds: "last night"), makes
"today's" instance from it (`islands generate timetable --perturb`: rooms closed, a share
of courses changed), then runs the real optimizer on today's instance twice for
--time-limit seconds: warm (`--initial last.sol --stability W`) and cold. Prints, for
each: feasible, time to the first feasible timetable, soft cost, lectures moved (of the
lectures of courses that existed last night) and rooms/periods changed.

    .venv/bin/python benchmarks/warm_start.py --instance comp07 --close-rooms 1 --time-limit 5

Needs ../shared/itc2007 (says so and exits 2 when it is absent).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
ITC_DIR = REPO.parent / "shared" / "itc2007"
sys.path.insert(0, str(REPO))


def last_night(path: Path, seconds: float, seed: int, out: Path) -> Path:
    """Last night's timetable: construction and one annealing sized to `seconds`."""
    from islands.timetable.problem import TimetableProblem

    problem = TimetableProblem(str(path))
    rng = np.random.default_rng(seed)
    genome = problem.random(rng, 1)
    probe, _, stats = problem.improve_with_stats(genome, None, rng, 200_000)
    rate = stats[0, 2] / 0.2 if stats[0, 2] else 1_000_000
    moves = int(max(seconds - 1.0, 1.0) * min(rate, 2_000_000))
    genome, _, _ = problem.improve_with_stats(probe, None, rng, moves)
    return problem.write(genome[0], out / "last")


def run(today: Path, seconds: float, seed: int, out: Path, initial: Path | None,
        stability: int) -> dict:
    command = [sys.executable, "-m", "coordinator", "run", str(today), "--time-limit",
               str(seconds), "--seed", str(seed), "--json", "--quiet", "--out", str(out)]
    if initial is not None:
        command += ["--initial", str(initial), "--stability", str(stability)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                          timeout=seconds * 3 + 180)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"error": f"exit {done.returncode}: {(done.stderr.strip().splitlines() or ['?'])[-1]}"}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instance", default="comp07")
    parser.add_argument("--base-time", type=float, default=60.0, help="seconds for last night")
    parser.add_argument("--time-limit", type=float, default=5.0, help="seconds for tonight")
    parser.add_argument("--close-rooms", type=int, default=1)
    parser.add_argument("--change-courses", type=float, default=0.0)
    parser.add_argument("--stability", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = ITC_DIR / f"{args.instance}.ctt"
    if not path.exists():
        print(f"instance not found: {path} (needs ../shared/itc2007)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="warm-") as folder:
        out = Path(folder)
        old = last_night(path, args.base_time, args.seed, out)
        today = out / "today.ctt"
        made = subprocess.run(
            [sys.executable, "-m", "islands.timetable", "generate", "timetable", "--perturb",
             str(path), "--close-rooms", str(args.close_rooms), "--change-courses",
             str(args.change_courses), "--seed", str(args.seed), "-o", str(today)],
            capture_output=True, text=True, cwd=REPO, check=True)
        print(f"# {args.instance}: last night {args.base_time:g} s in one process; today: "
              f"{made.stdout.strip().splitlines()[0].split(': ', 1)[-1]}")
        print(f"# tonight: islands run today.ctt --time-limit {args.time_limit:g} "
              f"[--initial last.sol --stability {args.stability}]")
        header = (f"{'start':<6} {'feasible':>8} {'feasible_s':>10} {'soft':>6} {'moved':>6} "
                  f"{'of':>5} {'moved_%':>7} {'rooms':>6} {'periods':>7}")
        print(header)
        print("-" * len(header))
        from islands.timetable.carry import carry_solution, compare
        from islands.timetable.instance import read_ctt
        from islands.timetable.solution import entries_to_genome, read_sol

        instance = read_ctt(today)
        carried = carry_solution(old, instance)
        for name, initial in (("warm", old), ("cold", None)):
            summary = run(today, args.time_limit, args.seed, out / name, initial, args.stability)
            if "error" in summary:
                print(f"{name:<6} {summary['error']}")
                continue
            genome = entries_to_genome(read_sol(summary["solution_file"], instance), instance)
            moves = compare(instance, carried, genome)
            feasible_s = summary.get("time_to_feasible_s")
            print(f"{name:<6} {str(summary['hard_violations'] == 0):>8} "
                  f"{'-' if feasible_s is None else format(feasible_s, '.1f'):>10} "
                  f"{summary['soft_cost']:>6} {moves.moved:>6} {moves.lectures:>5} "
                  f"{100 * moves.moved / max(moves.lectures, 1):>6.1f}% "
                  f"{moves.rooms_changed:>6} {moves.periods_changed:>7}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

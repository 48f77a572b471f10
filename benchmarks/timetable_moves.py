"""Move evaluations per second per core of the timetable local search (`improve()`).

Runs `TimetableProblem.improve` on comp07 (or --instance) from constructed timetables,
several times, and prints the median, min and max of move evaluations per second of
CPU time of the calling thread (so a shared, busy machine slows the figure less than
wall-clock time would; caches and frequency are still shared). Two baselines put the figure in context:
- `full`: the same annealing but every candidate scored by a full re-evaluation
  (the compiled batch evaluator), i.e. what delta evaluation saves;
- `interpreted`: the same delta code with numba disabled (NUMBA_DISABLE_JIT=1, plain
  Python + numpy scalars), in a subprocess, on fewer moves.
The first row is the random move / swap neighbourhood alone (the four stronger moves at
probability 0, the default). Then each stronger move alone (its probability 1: course
room change, Kempe-chain swap, min-working-days move, compactness move), in move
evaluations per second; the last two often find nothing to try (no course short of
days, no isolated lecture with a free neighbour period), which costs time but is no
evaluation.

    .venv/bin/python benchmarks/timetable_moves.py [--instance PATH] [--runs 5] [--moves 2000000]
    .venv/bin/python benchmarks/timetable_moves.py --scale   # the 2,000-course term

--scale instead generates a term of 2,000 courses / ~6,000 lectures / 150 rooms /
45 periods and prints the time of each stage and the memory they use.

The machine may be shared: read medians, and compare only runs taken side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DEFAULT_INSTANCE = REPO.parent / "shared" / "itc2007" / "comp07.ctt"


NEW_MOVES = (
    ("course room change alone", "course_room_prob"),
    ("Kempe-chain swap alone", "kempe_ls_prob"),
    ("min-working-days alone", "mwd_prob"),
    ("compactness move alone", "compact_prob"),
)


def delta_rate(path: str, moves: int, seed: int, only: str = "") -> float:
    """Move evaluations per CPU second of `improve` (`only`: that stronger move alone)."""
    from islands.timetable.problem import TimetableProblem

    problem = TimetableProblem(path, **({only: 1.0} if only else {}))
    rng = np.random.default_rng(seed)
    genomes = problem.random(rng, 1)
    problem.improve_with_stats(genomes, None, rng, ls_moves=1000)  # compile / load cache
    started = time.thread_time()
    _, _, stats = problem.improve_with_stats(genomes, None, rng, ls_moves=moves)
    return float(stats[0, 2]) / (time.thread_time() - started)


def full_rate(path: str, moves: int, seed: int) -> float:
    """Candidates scored by full re-evaluation: apply the move, evaluate, undo."""
    from islands.timetable import kernels
    from islands.timetable.problem import TimetableProblem

    problem = TimetableProblem(path)
    rng = np.random.default_rng(seed)
    genome = problem.random(rng, 1)[0]
    out = np.zeros(8, dtype=np.int64)
    n_slots = problem.instance.n_periods * problem.instance.n_rooms
    lectures = rng.integers(0, len(genome), moves)
    targets = rng.integers(0, n_slots, moves).astype(np.int32)
    kernels.evaluate_one(genome, problem.data, out)
    started = time.thread_time()
    _full_loop(genome, lectures, targets, problem.data, out)
    return moves / (time.thread_time() - started)


def _full_loop(genome, lectures, targets, data, out):
    from islands.timetable import kernels

    loop = _FULL.get("loop")
    if loop is None:
        from numba import njit

        evaluate_one = kernels.evaluate_one

        @njit(cache=False)
        def loop(genome, lectures, targets, data, out):
            total = 0
            for i in range(lectures.shape[0]):
                lecture = lectures[i]
                old = genome[lecture]
                genome[lecture] = targets[i]
                evaluate_one(genome, data, out)
                total += out[4]
                genome[lecture] = old
            return total

        _FULL["loop"] = loop
    loop(genome, lectures[:10], targets[:10], data, out)
    return loop(genome, lectures, targets, data, out)


_FULL: dict = {}


def interpreted_rate(path: str, moves: int, seed: int) -> float:
    code = (
        f"import sys, json; sys.path.insert(0, {str(REPO)!r}); "
        "from benchmarks.timetable_moves import delta_rate; "
        f"print(json.dumps(delta_rate({path!r}, {moves}, {seed})))"
    )
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])
    return float(json.loads(done.stdout.strip().splitlines()[-1]))


def scale_report(moves: int) -> None:
    import resource
    import tempfile

    from islands.timetable.generator import generate_instance
    from islands.timetable.instance import write_ctt
    from islands.timetable.problem import TimetableProblem
    from islands.timetable.validate import evaluate_entries

    def rss_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    rows = []
    base = rss_mb()
    started = time.perf_counter()
    instance = generate_instance(courses=2000, rooms=150, days=5, periods_per_day=9,
                                 curricula=800, seed=0)
    rows.append(("generate", time.perf_counter() - started, ""))
    with tempfile.TemporaryDirectory() as folder:
        path = write_ctt(instance, Path(folder) / "big.ctt")
        started = time.perf_counter()
        problem = TimetableProblem(str(path))
        rows.append(("read + derive", time.perf_counter() - started, ""))
    rng = np.random.default_rng(0)
    problem.random(rng, 1)  # compile / load cache
    started = time.perf_counter()
    genomes = problem.random(rng, 4)
    hard = [problem.describe(g)["hard_violations"] for g in genomes]
    rows.append(("construct (per genome)", (time.perf_counter() - started) / 4, f"hard={hard}"))
    started = time.perf_counter()
    fitness = problem.evaluate(genomes)
    rows.append(("evaluate (per genome)", (time.perf_counter() - started) / 4,
                 f"fitness={fitness.astype(int).tolist()}"))
    started = time.perf_counter()
    evaluate_entries(problem.instance, problem.entries(genomes[0]))
    rows.append(("reference validate.py", time.perf_counter() - started, ""))
    started = time.thread_time()
    improved, _, stats = problem.improve_with_stats(genomes[:1], fitness[:1], rng, ls_moves=moves)
    spent = time.thread_time() - started
    rows.append(("improve", spent, f"{stats[0, 2] / spent:,.0f} moves/s, "
                 f"{fitness[0]:.0f} -> {problem.evaluate(improved)[0]:.0f}"))
    inst = problem.instance
    print(f"# scale: {inst.n_courses} courses, {inst.n_lectures} lectures, {inst.n_rooms} rooms, "
          f"{inst.n_periods} periods, {inst.n_curricula} curricula")
    for name, seconds, note in rows:
        print(f"{name:<24} {seconds:>9.3f} s  {note}")
    print(f"individual_bytes (search state of one genome): {problem.individual_bytes:,}")
    print(f"genome bytes: {problem.genome_shape[0] * 4:,}; "
          f"peak RSS of this process: {rss_mb():.0f} MB (started at {base:.0f} MB)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instance", default=str(DEFAULT_INSTANCE))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--moves", type=int, default=2_000_000)
    parser.add_argument("--skip-baselines", action="store_true")
    parser.add_argument("--scale", action="store_true", help="the 2,000-course term instead")
    args = parser.parse_args(argv)
    if args.scale:
        scale_report(args.moves)
        return 0
    if not Path(args.instance).exists():
        print(f"instance not found: {args.instance}", file=sys.stderr)
        return 2
    rows = []
    rates = [delta_rate(args.instance, args.moves, seed) for seed in range(args.runs)]
    rows.append(("numba delta (improve)", args.moves, rates))
    new_moves = max(args.moves // 10, 1000)
    for name, parameter in NEW_MOVES:
        rows.append((name, new_moves, [delta_rate(args.instance, new_moves, seed, parameter)
                                       for seed in range(args.runs)]))
    if not args.skip_baselines:
        full_moves = max(args.moves // 200, 1000)
        rows.append(("numba full re-evaluation", full_moves,
                     [full_rate(args.instance, full_moves, seed) for seed in range(3)]))
        interpreted_moves = max(args.moves // 200, 2000)
        rows.append(("interpreted delta (no JIT)", interpreted_moves,
                     [interpreted_rate(args.instance, interpreted_moves, seed) for seed in range(2)]))
    print(f"# move evaluations per second, one core, {Path(args.instance).name} "
          f"(per CPU-second of one thread; shared machine: noisy)")
    header = f"{'implementation':<28} {'moves/run':>10} {'runs':>4} {'median/s':>12} {'min/s':>12} {'max/s':>12}"
    print(header)
    print("-" * len(header))
    for name, moves, values in rows:
        print(f"{name:<28} {moves:>10} {len(values):>4} {statistics.median(values):>12,.0f} "
              f"{min(values):>12,.0f} {max(values):>12,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

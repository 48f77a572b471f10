"""Islands and its peers side by side: the same problems, on the same machine, in the same run.

Covers four systems, each run in its own subprocess (its own session) so its whole process
tree is measured from outside: `islands run` (local backend); pygmo 2.20's `archipelago`
of `mp_island`s (a process pool) with the islands problem as a Python user-defined problem;
pygmo `thread_island`s with pygmo's compiled Rastrigin (the compiled ceiling, Rastrigin
only); DEAP 1.4 islands over a `multiprocessing.Pool` with `tools.migRing`, as DEAP's docs
show (each step maps `migrate_every` generations of `eaSimple` per island over the pool,
then migrates). Every system: the same population per island, migration every 10
generations (islands given `--migration-interval 10`) of 2 elites around a ring,
tournament selection of 2, crossover rate 0.9, Gaussian mutation of 1/dim of the genes
with sigma a tenth of the range. Differences left: pygmo `sga` crosses over binomially,
DEAP and islands uniformly; `sga` (elitism 1) and `eaSimple` replace whole generations,
islands keeps the best of parents and children (mu+lambda) and caches fitness. Tables
(medians of `--repeats`, systems interleaved repeat by repeat with the order rotated, so
noise hits all alike):
 (a) Rastrigin, 100 dimensions, 2 workers of 50, `--seconds`: evaluations/s, best at the
     time limit, peak PSS of the process tree; the ratio islands / pygmo-mp.
 (b) `costly` (~1 ms of CPU per evaluation, calibrated here) with 1 and 2 workers:
     evaluations/s and the parallel efficiency rate(2) / (2 rate(1)).
 (c) `heavy` (every evaluation builds a phenotype of `mb` MB; the peers call the same
     evaluate, one individual at a time): peak tree PSS at equal population, islands at its
     defaults and with `--chunk-size 1` (one phenotype alive per island, as the peers).
 (d) faults, `--fault-repeats` runs per system: (d1) SIGKILL of one worker process at 40%
     of the time limit, (d2) the tree under a memory limit below what the configuration
     needs (see peers_faults.py for how it is imposed): finished, refused (islands' exit 2
     with a one-line error), crashed (exit code or signal) or hung (killed at 3x).
Evaluations/s are given over the whole wall time of the subprocess, start-up included
("wall"), and over the system's own clock ("own": islands' `elapsed_s`, the peers' runner
from after its imports, pool start-up included). Each system gets the same time limit on
its own clock; "best" is its best fitness when it stops. Peak PSS: the launched process and
all its descendants, summed from /proc/PID/smaps_rollup every 0.1 s. A peer that is not
installed is skipped with one line naming the extra (`pip install -e '.[bench]'`).

Does not cover: scaling beyond 2 workers (benchmarks/scaling.py), islands' own memory
control (benchmarks/memory.py), its fault handling in depth (benchmarks/faults.py).

Usage: python benchmarks/peers.py [--tables a,b,c,d] [--systems islands,pygmo-mp,...]
           [--seconds 30] [--repeats 3] [--write benchmarks/RESULTS.md]
About 35 minutes at the defaults (minutes: a 6, b 10, c 4, d up to 14 when peers hang).
With --write, RESULTS.md gets the machine, the date, the versions, the commands and the
tables; the analysis between `<!-- analysis -->` and `<!-- /analysis -->` in each table's
section is kept, and the sections of tables not run this time are kept as they were.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import psutil

# Python puts this script's folder first on sys.path; the sibling benchmarks/memory.py would
# then shadow the `memory` package. Import the packages and benchmarks.* from the repo root.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from benchmarks.peers_systems import (  # noqa: E402
    SYSTEMS,
    Config,
    Outcome,
    command,
    launch,
    missing_peer,
    parse_result,
    run_runner,
    verdict,
)

MB = 1 << 20


def run_arm(system: str, config: Config) -> Outcome:
    """One bounded run of `system`; result None when it failed or timed out."""
    with tempfile.TemporaryDirectory(prefix="peers-") as out:
        outcome = launch(command(system, config, Path(out)), 3 * config.seconds + 60)
    outcome.result = None if outcome.timed_out else parse_result(system, outcome.stdout)
    if outcome.result is None:
        tail = (outcome.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"# {system} failed ({verdict(outcome)}): {tail[:300]}", file=sys.stderr)
    return outcome


def measures(outcome: Outcome) -> dict[str, float] | None:
    if outcome.result is None:
        return None
    r = outcome.result
    return {"wall_rate": r["evaluations"] / outcome.wall,
            "own_rate": r["evaluations"] / max(r["elapsed"], 1e-9), "best": r["best"],
            "peak_mb": outcome.peak_pss / MB, "wall": outcome.wall}


def interleaved(arms: list[tuple[str, Config]], repeats: int) -> dict[int, list[dict | None]]:
    """Each arm `repeats` times, rotated repeat by repeat; the seed is the repeat number."""
    runs: dict[int, list[dict | None]] = {i: [] for i in range(len(arms))}
    for repeat in range(repeats):
        order = list(range(len(arms)))
        order = order[repeat % len(order):] + order[:repeat % len(order)]
        for index in order:
            system, config = arms[index]
            config.seed = repeat
            runs[index].append(measures(run_arm(system, config)))
        print(f"# repeat {repeat + 1}/{repeats} done", file=sys.stderr, flush=True)
    return runs


def fmt(value: float | None, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def table_a(args, systems: list[str]) -> tuple[str, list[str], list[list[str]], list[str]]:
    arms = [(s, Config("rastrigin:dim=100", 2, args.population, args.seconds)) for s in systems]
    runs = interleaved(arms, args.repeats)
    rows, notes = [], []
    rate = {}
    for index, (system, _) in enumerate(arms):
        m = median_of(runs[index])
        rate[system] = m
        rows.append([system, fmt(m.get("wall_rate")), fmt(m.get("own_rate")),
                     fmt(m.get("best"), ".4g"), fmt(m.get("peak_mb")), fmt(m.get("wall"), ".1f"),
                     f"{m['ok']}/{args.repeats}"])
    a, b = rate.get("islands", {}), rate.get("pygmo-mp", {})
    if a.get("wall_rate") and b.get("wall_rate"):
        notes.append(f"islands / pygmo-mp evaluations/s: {a['wall_rate'] / b['wall_rate']:.2f} "
                     f"(wall), {a['own_rate'] / b['own_rate']:.2f} (own clock)")
    title = (f"(a) Rastrigin, 100 dimensions, 2 workers x population {args.population}, "
             f"{args.seconds:g} s")
    headers = ["system", "evals/s wall", "evals/s own", f"best at {args.seconds:g} s",
               "peak tree PSS MB", "wall s", "runs ok"]
    return title, headers, rows, notes


def table_b(args, systems: list[str]) -> tuple[str, list[str], list[list[str]], list[str]]:
    from benchmarks.scaling import calibrate_work

    work = calibrate_work(args.eval_ms, 30)
    spec = f"costly:dim=30,work={work}"
    runnable = [s for s in systems if s != "pygmo-thread"]
    arms = [(s, Config(spec, n, args.population, args.seconds)) for s in runnable for n in (1, 2)]
    runs = interleaved(arms, args.repeats)
    rows = []
    for system in systems:
        if system == "pygmo-thread":
            rows.append([system, "n/a", "n/a", "n/a", "compiled problem only for Rastrigin"])
            continue
        first = [name for name, _ in arms].index(system)
        one, two = median_of(runs[first]), median_of(runs[first + 1])
        r1, r2 = one.get("wall_rate"), two.get("wall_rate")
        eff = r2 / (2 * r1) if r1 and r2 else None
        rows.append([system, fmt(r1), fmt(r2), fmt(eff, ".2f"),
                     f"runs ok {one['ok']}+{two['ok']} of {2 * args.repeats}"])
    title = (f"(b) {spec} (~{args.eval_ms:g} ms per evaluation, calibrated here), "
             f"population {args.population} per worker, {args.seconds:g} s, evals/s over wall")
    return title, ["system", "1 worker", "2 workers", "efficiency", "note"], rows, []


def table_c(args, systems: list[str]) -> tuple[str, list[str], list[list[str]], list[str]]:
    config = Config(args.heavy_spec, 2, args.population, args.memory_seconds)
    arms = [(s, config) for s in systems if s != "pygmo-thread"]
    if "islands" in systems:  # islands evaluating one individual at a time, as the peers do
        arms.append(("islands", replace(config, extra=("--chunk-size", "1"))))
    runs = interleaved(arms, args.repeats)
    rows = []
    for index, (system, arm) in enumerate(arms):
        m = median_of(runs[index])
        rows.append([" ".join([system, *arm.extra]), fmt(m.get("peak_mb")),
                     fmt(m.get("wall_rate"), ".1f"), fmt(m.get("best"), ".4g"),
                     f"runs ok {m['ok']}/{args.repeats}"])
    if "pygmo-thread" in systems:
        rows.append(["pygmo-thread", "n/a", "n/a", "n/a", "compiled problem only for Rastrigin"])
    title = (f"(c) {args.heavy_spec}, 2 workers x population {args.population}, "
             f"{args.memory_seconds:g} s: peak PSS of the whole tree")
    return title, ["system", "peak tree PSS MB", "evals/s wall", "best", "note"], rows, []


def summarize(outcomes: list[Outcome]) -> str:
    """Outcomes grouped by kind: `hung 2/3 (60 s); finished 1/3 (7 s, best 0.3)`."""
    kinds: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        kinds.setdefault(verdict(outcome), []).append(outcome)
    parts = []
    for kind, group in kinds.items():
        first = group[0]
        details = [f"{statistics.median(o.wall for o in group):.0f} s"]
        bests = [o.result["best"] for o in group if o.result and o.result["best"] is not None]
        if bests:
            details.append(f"best {statistics.median(bests):.4g}")
        details += [n for n in first.notes if "OOM" in n]
        parts.append(f"{kind} {len(group)}/{len(outcomes)} ({', '.join(details)}){said(first)}")
    return "; ".join(parts)


def table_d(args, systems: list[str]) -> tuple[str, list[str], list[list[str]], list[str]]:
    from benchmarks.peers_faults import sigkill_worker, under_limit

    rows, hows = [], set()
    for system in systems:
        if system == "pygmo-thread":
            rows.append([system, "n/a: one process (threads), no worker process to kill",
                         "n/a: compiled problem only for Rastrigin"])
            continue
        parse = lambda stdout, s=system: parse_result(s, stdout)  # noqa: E731
        d1, d2 = [], []
        for repeat in range(args.fault_repeats):
            with tempfile.TemporaryDirectory(prefix="peers-") as out:
                fast = Config("rastrigin:dim=100", 2, args.population, args.fault_seconds, repeat)
                d1.append(sigkill_worker(command(system, fast, Path(out) / "d1"), fast, parse))
                heavy = Config(args.limit_spec, 2, args.limit_population, args.fault_seconds,
                               repeat)
                outcome, how = under_limit(command(system, heavy, Path(out) / "d2"), heavy,
                                           args.limit_mb * MB, parse)
                d2.append(outcome)
                hows.add(how)
        rows.append([system, summarize(d1), summarize(d2)])
        print(f"# faults of {system} done", file=sys.stderr, flush=True)
    title = (f"(d) faults, {args.fault_seconds:g} s time limit, runs per system: "
             f"{args.fault_repeats}, hung = still running at 3x the limit (then killed): "
             f"(d1) rastrigin:dim=100, 2 workers x {args.population}, SIGKILL of the worker "
             f"process that has used the most CPU, at 40% of the limit; (d2) {args.limit_spec}, "
             f"2 workers x "
             f"{args.limit_population}, the whole tree limited to {args.limit_mb} MB")
    notes = [f"(d2) limit imposed with {how}" for how in sorted(hows)]
    mb = args.limit_spec.split("mb=")[1].split(",")[0] if "mb=" in args.limit_spec else "?"
    notes.append(f"(d2) the configuration needs at least 2 x {mb} MB of phenotypes alive at "
                 f"once (one evaluation per worker) plus the processes themselves")
    return title, ["system", "(d1) SIGKILL one worker", "(d2) under the memory limit"], rows, notes


def median_of(runs: list[dict | None]) -> dict:
    """Medians of each measure over the runs that gave a result; "ok": how many did."""
    done = [r for r in runs if r is not None]
    medians: dict = {"ok": len(done)}
    for key in (done[0] if done else {}):
        values = [r[key] for r in done if r[key] is not None]
        medians[key] = statistics.median(values) if values else None
    return medians


def render(headers: list[str], rows: list[list[str]], markdown: bool = False) -> str:
    if markdown:
        lines = [headers, ["---"] * len(headers), *rows]
        return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in [headers, *rows])


ANALYSIS = re.compile(r"<!-- analysis -->.*?<!-- /analysis -->", re.S)
PLACEHOLDER = "<!-- analysis -->\n(analysis: see the issue note)\n<!-- /analysis -->"


def sections_of(text: str) -> dict[str, str]:
    """The `## (x) ...` sections of an earlier RESULTS.md, by table letter."""
    sections = {}
    for part in re.split(r"^(?=## \()", text, flags=re.M)[1:]:
        sections[part[4]] = part.rstrip() + "\n"
    return sections


def machine_lines() -> list[str]:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = []
    for package in ("islands", "pygmo", "deap", "numpy", "psutil"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} not installed")
    return [f"- Machine: {cpu}, {os.cpu_count()} logical cores "
            f"({len(os.sched_getaffinity(0))} usable), "
            f"{psutil.virtual_memory().total / 2**30:.1f} GiB RAM, Linux {platform.release()}; "
            f"load average at the start {os.getloadavg()[0]:.2f}",
            f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            f"- Python {platform.python_version()}; {', '.join(versions)}"]


def write_results(path: Path, results: dict, argv: list[str], args) -> None:
    """RESULTS.md: header, then each table's section with the analysis block kept."""
    root = Path(__file__).resolve().parent.parent
    def short(p: str) -> str:
        rel = os.path.relpath(os.path.abspath(p), root)
        return p if rel.startswith("..") else rel
    exact = " ".join(shlex.quote(a) for a in [short(sys.executable), short(argv[0]), *argv[1:]])
    example = Config("SPEC", 2, args.population, args.seconds)
    old = sections_of(path.read_text()) if path.exists() else {}
    lines = ["# Islands and its peers, side by side", "",
             "Written by `benchmarks/peers.py` (see its docstring for what each system runs "
             "and how it is measured).", "", *machine_lines(), f"- Command: `{exact}`",
             "- Each run (seed = repeat number): "
             + "; ".join(f"`{' '.join(short(a) for a in command(s, example, Path('DIR')))}`"
                         for s in ("islands", "pygmo-mp")) + " (likewise pygmo-thread, deap)",
             "- evals/s wall: evaluations over the subprocess's whole wall time, start-up "
             "included; evals/s own: over the system's own clock (islands `elapsed_s`, the "
             "peers from after their imports); best: at the time limit; peak tree PSS: "
             "launched process and all descendants, summed every 0.1 s from outside.", ""]
    for key in "abcd":
        if key in results:
            title, headers, rows, notes = results[key]
            block = ANALYSIS.search(old.get(key, ""))
            lines += [f"## {title}", "", render(headers, rows, markdown=True), "",
                      *[f"{note}  " for note in notes],
                      f"Measured {time.strftime('%Y-%m-%d', time.gmtime())} by `{exact}`.", "",
                      block.group(0) if block else PLACEHOLDER, ""]
        elif key in old:
            lines += [old[key]]
    path.write_text("\n".join(lines).rstrip() + "\n")


def said(outcome: Outcome) -> str:
    """The last stderr line of a run that ended without a result, quoted."""
    if outcome.result is not None or outcome.timed_out:
        return ""
    lines = [line.strip() for line in outcome.stderr.splitlines() if line.strip()]
    return f': "{lines[-1][:240]}"' if lines else ""


TABLES = {"a": table_a, "b": table_b, "c": table_c, "d": table_d}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default="a,b,c,d")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--seconds", type=float, default=30.0, help="time limit, tables a and b")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--population", type=int, default=50)
    parser.add_argument("--eval-ms", type=float, default=1.0, help="table b: ms per evaluation")
    parser.add_argument("--heavy-spec", default="heavy:mb=20,dim=50", help="table c")
    parser.add_argument("--memory-seconds", type=float, default=15.0, help="table c time limit")
    parser.add_argument("--fault-seconds", type=float, default=20.0, help="table d time limit")
    parser.add_argument("--fault-repeats", type=int, default=3, help="table d runs per system")
    parser.add_argument("--limit-spec", default="heavy:mb=150,dim=50", help="table d2")
    parser.add_argument("--limit-population", type=int, default=10, help="table d2")
    parser.add_argument("--limit-mb", type=int, default=280, help="table d2 memory limit")
    parser.add_argument("--write", metavar="PATH", help="write the tables to RESULTS.md")
    # The peers' runners: one run in this process, one JSON line on stdout.
    parser.add_argument("--runner", choices=[s for s in SYSTEMS if s != "islands"],
                        help=argparse.SUPPRESS)
    for name, kind in (("spec", str), ("workers", int), ("seed", int), ("migrate-every", int),
                       ("migrants", int)):
        parser.add_argument(f"--{name}", type=kind, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.runner:
        import json

        config = Config(args.spec, args.workers, args.population, args.seconds, args.seed,
                        args.migrate_every, args.migrants)
        print(json.dumps(run_runner(args.runner, config)), flush=True)
        return 0

    tables = [t.strip() for t in args.tables.split(",") if t.strip()]
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [t for t in tables if t not in TABLES] + [s for s in systems if s not in SYSTEMS]
    if unknown:
        parser.error(f"unknown table or system: {', '.join(unknown)}")
    skipped = []
    for system in list(systems):
        line = missing_peer(system)
        if line:
            print(line, flush=True)
            skipped.append(line)
            systems.remove(system)
    results = {}
    for key in tables:
        title, headers, rows, notes = TABLES[key](args, systems)
        results[key] = (title, headers, rows, notes + skipped)
        print(f"\n{title}\n{render(headers, rows)}", flush=True)
        for note in notes:
            print(note, flush=True)
    if args.write:
        write_results(Path(args.write), results, sys.argv, args)
        print(f"\nwrote {args.write}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

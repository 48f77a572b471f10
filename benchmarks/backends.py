"""Local backend against Ray backend: the same run on each, side by side.

Covers: `islands run SPEC --islands N --population P --time-limit S --json` run with
`--backend local` and with `--backend ray` (a local Ray instance started and stopped by the
run, as a user without a cluster gets it), interleaved repeat by repeat so that noise on a
shared machine hits both alike; medians of the repeats: evaluations per second of run
time (summary `evaluations / elapsed_s`) and per second once every island had started
(`elapsed_s` less the run time of the last first `island_started` event: the search itself),
when the last island started, the whole command's wall time and its overhead beyond the time
limit (start-up, Ray's start and stop, the stop), each rate also as a fraction of local's.
A run started without `--address` starts Ray inside its time limit (about 3.5 s here).

Does not cover: scaling over island counts (benchmarks/scaling.py), memory
(benchmarks/memory.py), several nodes (docs/cluster.md).

Usage: python benchmarks/backends.py [--spec rastrigin:dim=100] [--islands 2]
                                     [--population 50] [--seconds 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(backend: str, args: argparse.Namespace, out: Path) -> dict[str, float]:
    command = [sys.executable, "-m", "coordinator", "run", args.spec, "--islands",
               str(args.islands), "--population", str(args.population), "--time-limit",
               str(args.seconds), "--backend", backend, "--json", "--quiet", "--out", str(out)]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{backend} run failed ({done.returncode}):\n{done.stderr[-2000:]}")
    summary = json.loads(done.stdout)
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    first_start: dict[int, float] = {}
    for event in events:
        if event["event"] == "island_started":
            first_start.setdefault(event["island"], event["t"])
    all_started = max(first_start.values())
    return {"rate": summary["evaluations"] / summary["elapsed_s"],
            "evolving": summary["evaluations"] / (summary["elapsed_s"] - all_started),
            "started": all_started, "wall": wall, "overhead": wall - args.seconds,
            "best": summary["best_fitness"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="rastrigin:dim=100")
    parser.add_argument("--islands", type=int, default=2)
    parser.add_argument("--population", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    results: dict[str, list[dict[str, float]]] = {"local": [], "ray": []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for backend in results:
                results[backend].append(run_once(backend, args, Path(tmp) / f"{backend}{repeat}"))
    print(f"{args.spec}, {args.islands} islands, population {args.population}, "
          f"{args.seconds:g} s time limit, medians of {args.repeats}")
    print(f"{'backend':8} {'evals/s':>9} {'vs local':>9} {'evolving/s':>11} {'vs local':>9} "
          f"{'started s':>10} {'wall s':>7} {'overhead s':>11} {'best':>9}")
    local = {key: statistics.median(r[key] for r in results["local"])
             for key in ("rate", "evolving")}
    for backend, runs in results.items():
        m = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        print(f"{backend:8} {m['rate']:9.0f} {m['rate'] / local['rate']:9.2f} "
              f"{m['evolving']:11.0f} {m['evolving'] / local['evolving']:9.2f} "
              f"{m['started']:10.1f} {m['wall']:7.1f} {m['overhead']:11.1f} {m['best']:9.3g}")


if __name__ == "__main__":
    main()

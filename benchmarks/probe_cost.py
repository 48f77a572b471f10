"""How much CPU the memory monitor costs: time `ProcessProbe.sample(pids)` over idle processes.

Starts 1, 8 and 32 real idle Python processes (each touching a few MB), times one sample of
all of them many times, and prints the median milliseconds per sample (median over several
repeats of many samples) and what that costs as a share of one core at the monitor's
default 0.5 s interval. Target: 8 processes under 5 ms per sample.

Run: .venv/bin/python benchmarks/probe_cost.py [--counts 1,8,32] [--samples 200] [--repeats 5]
     [--child-imports numpy] [--mb 4] [--full-interval 0]
smaps_rollup walks page tables, so bigger processes (--mb) cost more per read;
--full-interval shows the cost of the statm-based estimates between full reads.

Does not cover: the monitor's hysteresis (tests/test_memory_monitor.py) or the memory the
islands use (benchmarks for the run itself).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

# Python puts this script's folder first on sys.path; a sibling benchmarks/memory.py would
# then shadow the `memory` package. Import the package, not a neighbour.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from memory.probe import ProcessProbe  # noqa: E402

CHILD_CODE = """
import sys
{imports}
ballast = bytearray({mb} << 20)
ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page
sys.stdout.write("ready\\n")
sys.stdout.flush()
sys.stdin.read()  # idle until the benchmark closes stdin
"""


def start_idle_processes(count: int, mb: int, imports: str = "") -> list[subprocess.Popen]:
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD_CODE.format(mb=mb, imports=f"import {imports}" if imports else ""),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    for process in processes:
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"idle process {process.pid} failed to start")
    return processes


def stop_processes(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.stdin.close()
    for process in processes:
        process.wait(30)


def time_samples(probe: ProcessProbe, pids: list[int], samples: int, repeats: int) -> float:
    """Median over `repeats` of the median seconds per sample over `samples` samples."""
    probe.sample(pids)  # warm up
    medians = []
    for _ in range(repeats):
        durations = []
        for _ in range(samples):
            start = time.perf_counter()
            sample = probe.sample(pids)
            durations.append(time.perf_counter() - start)
        if len(sample.pss_by_pid) != len(pids):
            raise RuntimeError(f"measured {len(sample.pss_by_pid)} of {len(pids)} processes")
        medians.append(statistics.median(durations))
    return statistics.median(medians)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,8,32", help="process counts, comma-separated")
    parser.add_argument("--samples", type=int, default=200, help="samples per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="repeats (median taken)")
    parser.add_argument("--mb", type=int, default=4, help="MB each idle process touches")
    parser.add_argument("--interval", type=float, default=0.5, help="monitor interval (s)")
    parser.add_argument(
        "--full-interval",
        type=float,
        default=0.0,
        help="ProcessProbe(full_interval=...): full smaps_rollup read at most this often (s); "
        "0 = every sample. Samples are timed back to back, so >0 times the cheap estimates",
    )
    parser.add_argument(
        "--child-imports",
        default="",
        help="modules the idle processes import first, e.g. numpy (more mappings, as islands have)",
    )
    args = parser.parse_args(argv)

    probe = ProcessProbe(full_interval=args.full_interval)
    print(
        f"ProcessProbe.sample cost: median of {args.repeats} x {args.samples} samples, "
        f"idle processes touching {args.mb} MB each"
        + (f", importing {args.child_imports}" if args.child_imports else "")
        + (f", full read every {args.full_interval:g}s" if args.full_interval > 0 else "")
    )
    print(
        f"{'processes':>9}  {'median ms/sample':>16}  {'% of one core @ ' + str(args.interval) + 's':>22}"
    )
    for count in (int(c) for c in args.counts.split(",")):
        processes = start_idle_processes(count, args.mb, args.child_imports)
        try:
            seconds = time_samples(probe, [p.pid for p in processes], args.samples, args.repeats)
        finally:
            stop_processes(processes)
        share = 100 * seconds / args.interval
        print(f"{count:>9}  {seconds * 1000:>16.3f}  {share:>21.3f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How much CPU the memory monitor costs: time `ProcessProbe.sample(pids)` over idle processes.

Starts 1, 8 and 32 real idle Python processes (each touching a few MB; with
`--child-imports numpy` they import numpy and hold that memory as numpy arrays, like
islands), times one sample of all of them many times, and prints the mean and median
milliseconds per sample (medians over several repeats of many samples), the share of
full smaps_rollup reads, the cost of full reads only (`full_interval=0`) for comparison,
and what the mean costs as a share of one core at the monitor's default 0.5 s interval.
The probe under test is `ProcessProbe()` as the coordinator builds it (statm estimates
between full reads every DEFAULT_FULL_INTERVAL_S), or `--full-interval X`; its clock
moves on by `--interval` per sample, so full reads come as often as under the monitor
while the samples are timed back to back. Target: 8 processes under 5 ms per sample.

Run: .venv/bin/python benchmarks/probe_cost.py [--counts 1,8,32] [--samples 200] [--repeats 5]
     [--child-imports numpy] [--mb 4] [--full-interval 2] [--interval 0.5]
smaps_rollup walks page tables, so bigger processes (--mb) cost more per full read; numpy
asks for transparent huge pages for large arrays, so numpy children's full reads cost
less than the same MB of bytearray in 4 KiB pages (the children without numpy).

Does not cover: how far the estimates stray from full reads (benchmarks/probe_accuracy.py),
the monitor's hysteresis (tests/test_memory_monitor.py) or the memory the islands use
(benchmarks/memory.py).
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
sys.path.insert(0, str(_HERE.parent))  # the benchmarks folder as a package

from benchmarks.ready_children import start_ready, stop_all  # noqa: E402
from memory.probe import DEFAULT_FULL_INTERVAL_S, ProcessProbe  # noqa: E402

CHILD_CODE = """
import sys
{imports}
if "numpy" in sys.modules:  # hold it as a few numpy arrays, as an island holds its population
    ballast = [sys.modules["numpy"].ones(({mb} << 20) // 32) for _ in range(4)]
else:
    ballast = bytearray({mb} << 20)
    ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page
sys.stdout.write("ready\\n")
sys.stdout.flush()
sys.stdin.read()  # idle until the benchmark closes stdin
"""


def start_idle_processes(count: int, mb: int, imports: str = "") -> list[subprocess.Popen]:
    code = CHILD_CODE.format(mb=mb, imports=f"import {imports}" if imports else "")
    return start_ready([[code]] * count)


class SteppingClock:
    """A clock that moves on by `step` seconds each time it is read: one monitor interval."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.now = 0.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def time_samples(
    probe: ProcessProbe, pids: list[int], samples: int, repeats: int
) -> tuple[float, float]:
    """Medians over `repeats` of the mean and the median seconds per sample over `samples`."""
    probe.sample(pids)  # warm up
    means, medians = [], []
    for _ in range(repeats):
        durations = []
        for _ in range(samples):
            start = time.perf_counter()
            sample = probe.sample(pids)
            durations.append(time.perf_counter() - start)
        if len(sample.pss_by_pid) != len(pids):
            raise RuntimeError(f"measured {len(sample.pss_by_pid)} of {len(pids)} processes")
        means.append(statistics.fmean(durations))
        medians.append(statistics.median(durations))
    return statistics.median(means), statistics.median(medians)


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
        default=DEFAULT_FULL_INTERVAL_S,
        help="ProcessProbe(full_interval=...): full smaps_rollup read at most this often (s); "
        f"0 = every sample (default: the probe's own, {DEFAULT_FULL_INTERVAL_S:g})",
    )
    parser.add_argument(
        "--child-imports",
        default="",
        help="modules the idle processes import first, e.g. numpy (more mappings, as islands "
        "have; with numpy the touched MB are held as numpy arrays)",
    )
    args = parser.parse_args(argv)

    print(
        f"ProcessProbe.sample cost: medians over {args.repeats} repeats of {args.samples} samples, "
        f"idle processes touching {args.mb} MB each"
        + (f", importing {args.child_imports}" if args.child_imports else "")
        + f", full read every {args.full_interval:g}s of a clock moving {args.interval:g}s "
        "per sample (0 = always full)"
    )
    print(
        f"{'processes':>9}  {'mean ms/sample':>14}  {'median ms':>9}  {'full reads %':>12}  "
        f"{'full-only ms':>12}  {'% of one core @ ' + str(args.interval) + 's':>22}"
    )
    for count in (int(c) for c in args.counts.split(",")):
        processes = start_idle_processes(count, args.mb, args.child_imports)
        pids = [p.pid for p in processes]
        try:
            probe = ProcessProbe(SteppingClock(args.interval), full_interval=args.full_interval)
            mean, median = time_samples(probe, pids, args.samples, args.repeats)
            full_only, _ = time_samples(
                ProcessProbe(full_interval=0), pids, args.samples, args.repeats
            )
        finally:
            stop_all(processes)
        share = 100 * probe.full_reads / (probe.full_reads + probe.estimated_reads)
        print(
            f"{count:>9}  {mean * 1000:>14.3f}  {median * 1000:>9.3f}  {share:>12.0f}  "
            f"{full_only * 1000:>12.3f}  {100 * mean / args.interval:>21.3f}%"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

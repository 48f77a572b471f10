"""How far the cheap probe mode strays from full reads on processes that grow and shrink.

Covers: `ProcessProbe(full_interval=X)` (a full smaps_rollup read of a process at most
every X seconds, statm-based estimates in between) against `ProcessProbe(full_interval=0)`
(a full read every sample), both sampling the same processes at the monitor's interval:
this process (as the coordinator samples itself) plus N real children that import numpy
and, like islands, allocate numpy arrays step by step up to a peak of 100-300 MB, hold
it, free them again step by step, and keep a few MB of short-lived temporaries; every
other child also maps a shared tmpfs segment (the problem's instance data) that this
process owns, at a different moment each. At each tick the full probe reads, the cheap
probes follow in a rotating order, and the full probe reads again, so all see the same
processes and the two full readings bracket the cheap ones (an error is the distance
from that bracket: children that step between two reads count as no error). Per X it
prints the peak total PSS measured against the full reads' peak (ratio), the largest and
mean per-sample relative error of the total PSS, the share of reads that were full, and
the mean and median milliseconds per sample; medians over `--repeats` runs.

Does not cover: the probe's CPU cost over many processes (benchmarks/probe_cost.py), the
monitor's hysteresis (tests/test_memory_monitor.py), or real island runs
(benchmarks/memory.py measures real runs' peaks).

Usage: .venv/bin/python benchmarks/probe_accuracy.py [--processes 8] [--seconds 20]
       [--repeats 3] [--interval 0.5] [--full-intervals 1,2,5] [--shared-mb 64]
       [--step-s 0.25]
"""

from __future__ import annotations

import argparse
import mmap
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# Python puts this script's folder first on sys.path; a sibling benchmarks/memory.py would
# then shadow the `memory` package. Import the package, not a neighbour.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))  # the benchmarks folder as a package

from benchmarks.ready_children import start_ready, stop_all  # noqa: E402
from memory.probe import ProcessProbe  # noqa: E402

MIB = 1 << 20

# argv: peak_mb step_mb step_s hold_s churn_mb seed shared_path shared_after_s
CHILD_CODE = """
import mmap, os, select, sys, time
import numpy as np

peak_mb, step_mb, step_s, hold_s, churn_mb, seed = (float(a) for a in sys.argv[1:7])
shared_path, shared_after = sys.argv[7], float(sys.argv[8])
rng = np.random.default_rng(int(seed))
MIB = 1 << 20
held, temporary, shared, going_up = [], None, None, True
phase_end = 0.0
sys.stdout.write("ready\\n")
sys.stdout.flush()
start = time.monotonic()
while not select.select([sys.stdin], [], [], step_s)[0]:  # stdin closed: stop
    now = time.monotonic() - start
    if shared is None and shared_path != "-" and now >= shared_after:
        with open(shared_path, "rb") as handle:
            shared = mmap.mmap(handle.fileno(), 0, prot=mmap.PROT_READ)
        float(np.frombuffer(shared, dtype=np.uint8)[::4096].sum())  # touch every page
    # A temporary lives one step (an evaluation chunk); then the ramp moves one step.
    temporary = np.ones(int(rng.uniform(0, churn_mb) * MIB) // 8)
    if now < phase_end:
        continue
    if going_up:
        held.append(np.ones(int(step_mb * MIB) // 8))  # np.ones writes every page
        if len(held) * step_mb >= peak_mb:
            going_up, phase_end = False, now + hold_s
    else:
        if held:
            held.pop()
        if not held:
            going_up, phase_end = True, now + hold_s
"""


@dataclass
class Series:
    """One probe's readings over one run: total PSS per tick and seconds per sample."""

    probe: ProcessProbe
    totals: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


def start_children(
    count: int, shared_path: str, seconds: float, step_s: float
) -> list[subprocess.Popen]:
    argvs = []
    for index in range(count):
        peak_mb = 100 + 200 * index / max(count - 1, 1)  # 100 .. 300 MB
        step_mb = peak_mb / (8 + 4 * (index % 3))  # 8 to 16 steps up
        shared = shared_path if index % 2 == 0 else "-"
        shared_after = seconds * (0.1 + 0.6 * index / max(count, 1))
        child_step_s = step_s * (0.8 + 0.2 * (index % 4))  # out of step with each other
        argvs.append([CHILD_CODE, peak_mb, step_mb, child_step_s, 4 * step_s, 8, index, shared,
                      shared_after])
    return start_ready(argvs)


def run_once(
    processes: int,
    seconds: float,
    interval: float,
    full_intervals: list[float],
    shared_mb: int,
    step_s: float,
) -> tuple[Series, list[Series]]:
    """One run: per tick a full read, the cheap probes (rotating order), a full read again.

    Returns the full probe's series (two readings per tick: before, after) and one series
    per X. The two full readings bracket whatever the cheap probes could have seen.
    """
    full = Series(ProcessProbe(full_interval=0.0))
    cheap = [Series(ProcessProbe(full_interval=x)) for x in full_intervals]
    shared_path = f"/dev/shm/islands_probe_accuracy_{os.getpid()}"
    segment = None
    if shared_mb > 0:
        with open(shared_path, "wb+") as handle:
            handle.truncate(shared_mb * MIB)
            segment = mmap.mmap(handle.fileno(), 0)
        segment[:] = b"\x01" * len(segment)  # this process owns and fills it
    try:
        children = start_children(processes, shared_path if segment else "-", seconds, step_s)
        try:
            pids = [os.getpid()] + [child.pid for child in children]
            start = time.monotonic()
            tick = 0
            while time.monotonic() - start < seconds:
                turn = tick % len(cheap)
                for one in [full, *cheap[turn:], *cheap[:turn], full]:
                    begin = time.perf_counter()
                    sample = one.probe.sample(pids)
                    one.seconds.append(time.perf_counter() - begin)
                    if len(sample.pss_by_pid) != len(pids):
                        raise RuntimeError(f"measured {len(sample.pss_by_pid)} of {len(pids)}")
                    one.totals.append(sample.pss_total)
                tick += 1
                time.sleep(max(0.0, start + tick * interval - time.monotonic()))
        finally:
            stop_all(children)
    finally:
        if segment is not None:
            segment.close()
            os.unlink(shared_path)
    return full, cheap


def compare(full: Series, cheap: Series) -> dict[str, float]:
    """The cheap series against the full one: an error is the distance to the bracket."""
    errors = []
    for tick, total in enumerate(cheap.totals):
        low, high = sorted(full.totals[2 * tick : 2 * tick + 2])
        errors.append(max(low - total, total - high, 0) / low)
    reads = cheap.probe.full_reads + cheap.probe.estimated_reads
    return {
        "peak_ratio": max(cheap.totals) / max(full.totals),
        "max_error": max(errors),
        "mean_error": statistics.fmean(errors),
        "full_share": cheap.probe.full_reads / reads,
        "mean_ms": 1000 * statistics.fmean(cheap.seconds),
        "median_ms": 1000 * statistics.median(cheap.seconds),
        "peak_mb": max(full.totals) / MIB,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=8, help="children (islands)")
    parser.add_argument("--seconds", type=float, default=20.0, help="sampling time per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs (median taken)")
    parser.add_argument("--interval", type=float, default=0.5, help="monitor interval (s)")
    parser.add_argument("--full-intervals", default="1,2,5", help="X values, comma-separated")
    parser.add_argument("--shared-mb", type=int, default=64, help="shared segment; 0 = none")
    parser.add_argument(
        "--step-s",
        type=float,
        default=0.25,
        help="seconds between a child's ramp steps (0.8-1.4x of it per child); it holds the "
        "peak and the bottom 4x as long",
    )
    args = parser.parse_args(argv)
    xs = [float(x) for x in args.full_intervals.split(",")]

    rows: dict[float, list[dict[str, float]]] = {x: [] for x in xs}
    full_ms = []
    for _ in range(args.repeats):
        full, cheap = run_once(
            args.processes, args.seconds, args.interval, xs, args.shared_mb, args.step_s
        )
        full_ms.append(1000 * statistics.fmean(full.seconds))
        for x, one in zip(xs, cheap, strict=True):
            rows[x].append(compare(full, one))

    print(
        f"ProcessProbe(full_interval=X) against full reads: this process + {args.processes} "
        f"numpy children ramping 100-300 MB in steps every ~{args.step_s:g}s, {args.shared_mb} MB "
        f"shared segment, sampled every "
        f"{args.interval:g}s for {args.seconds:g}s; medians of {args.repeats} runs"
    )
    peak = statistics.median(r["peak_mb"] for r in rows[xs[0]])
    print(
        f"full reads: peak total PSS {peak:.0f} MB, {statistics.median(full_ms):.2f} ms per "
        "sample; an error is the distance to the two full readings around it"
    )
    print(
        f"{'X (s)':>6}  {'peak / full peak':>16}  {'max err %':>9}  {'mean err %':>10}  "
        f"{'full reads %':>12}  {'mean ms':>7}  {'median ms':>9}"
    )
    for x, runs in rows.items():

        def median(key: str, runs: list[dict[str, float]] = runs) -> float:
            return statistics.median(r[key] for r in runs)

        print(
            f"{x:>6g}  {median('peak_ratio'):>16.4f}  {100 * median('max_error'):>9.2f}  "
            f"{100 * median('mean_error'):>10.2f}  {100 * median('full_share'):>12.0f}  "
            f"{median('mean_ms'):>7.2f}  {median('median_ms'):>9.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

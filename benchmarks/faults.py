"""Fault-injection benchmark: does a run survive each fault, and is any best solution lost?

Covers, in real runs (2 islands, a time limit, checkpoints every second, fault ~4 s in):
- in-process runs of `rastrigin:dim=30`: an island SIGKILLed; an exception raised once in
  the problem's code (a real plugin in a temp dir); the coordinator's checkpoint writes
  failing for 2 s (the one fake: `os` of islands.checkpoint half-writes then ENOSPC);
  hostile migrant bytes pushed into every island;
- real `python -m coordinator` commands (cwd the repo root): the coordinator SIGKILLed,
  SIGTERMed; and, as `run ... --json` in their own process group (fault_cases.py): the
  process group SIGTERMed, SIGHUP (each then `islands resume`); SIGTERM while the problem's
  warm-up sleeps (exit 143 within 5 s, then resume); an island hung for good in evaluate
  (plugin; --time-limit at least 16 s, the heartbeat deadline is 10 s), alone and beside
  an island leaking ~50 MB/s under --memory-budget 300M (at least 25 s);
  `heavy:mb=20 --population 40 --memory-budget 700M --no-streaming`; the disk full 3 s
  and full to the end (a real 16 MiB tmpfs when mount works, else RLIMIT_FSIZE=0 on the
  coordinator: the note says which); /dev/shm full at start (private 4 KiB /dev/shm via
  `unshare -m`: exit 2, one line, no traceback); a timetable .ctt edited in place before
  `islands resume` (the resumed best must equal `islands validate`'s cost).
Columns: survived (the run, or its resume, reached its time limit with no island given
up and the exit code and stdout promised; stuck rows: ended by limit + stop grace + 1 s;
peak under 2x the budget with the leak, 1x for heavy; /dev/shm: exit 2 and one line;
.ctt: resumed best == validate), best before (fitness of `best.npy` on disk just before
the fault, evaluated here; .ctt: the old best scored against the edited file), final
best, best lost (final minus before when worse, else 0: must be 0; '-' where not
meaningful), recovery (fault to the run evolving again: restarted island or resumed
run's islands started, next checkpoint or best written), peak/budget (peak PSS of the
coordinator and all its descendants, sampled from outside every 75 ms with psutil, over
--memory-budget: only rows that set one), detect (fault to the run showing it noticed:
its event in events.jsonl, the stderr warning where a full disk refuses the event, the
exit for a signal; /dev/shm: start to exit; .ctt: resume start to its warning).
A row this machine cannot run prints 'skipped: <reason>'. Exit code 0 only when every
row that ran survived and lost no best. Wall-clock figures from a shared 2-core machine
are noisy: use the medians of `--repeats`.

Does not cover: memory pressure in depth (tests/test_run_memory.py, benchmarks/memory.py),
speed (benchmarks/scaling.py), the ray backend, a full /dev/shm at an island's restart
(tests/test_shm_full.py), a second run on a live run's directory (tests/test_run_lock.py).

Usage: python benchmarks/faults.py [--seconds 10] [--repeats 1] [--only NAME[,NAME]] [--json]
(`--only` takes the row keys listed by --help, or the row names.)
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# Python puts this script's folder first on sys.path; the sibling benchmarks/memory.py
# would then shadow the `memory` package. Import the package, not a neighbour.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import islands.checkpoint  # noqa: E402
from coordinator.config import flat_config  # noqa: E402
from coordinator.run import Run, start_run  # noqa: E402
from islands.migration import encode_migrants  # noqa: E402
from islands.problem import build_problem  # noqa: E402
from islands.protocol import Deliver  # noqa: E402

# The issue-11 rows (real `islands` commands) and the table, from benchmarks/fault_cases.py
# and fault_tools.py, loaded by path since this folder is off sys.path.
_spec = importlib.util.spec_from_file_location("fault_cases", _HERE / "fault_cases.py")
cases = sys.modules["fault_cases"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)
result, tools = cases.result, cases.tools

PROBLEM = "rastrigin:dim=30"
FAULT_AT_S = 4.0
REPO_ROOT = Path(__file__).resolve().parent.parent
ONCE_MODULE = '''
"""Rastrigin whose evaluation raises once per run (the first process to get there)."""
import os
from islands.problems.functions import Rastrigin

CALLS = 0


class FailsOnce(Rastrigin):
    name = "failsonce"

    def __init__(self, dim=30, after=200, marker=""):
        super().__init__(dim)
        self.after, self.marker = int(after), str(marker)

    def evaluate(self, genomes):
        global CALLS
        CALLS += 1
        if CALLS >= self.after and self.marker and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            raise RuntimeError("failsonce: a bug in the problem code, once")
        return super().evaluate(genomes)
'''


def best_on_disk(run_dir: Path) -> float:
    genome = np.load(run_dir / "best.npy")
    return float(build_problem(PROBLEM).evaluate(genome[None, :])[0])


def events(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def wait_until(predicate: Callable[[], bool], timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def in_process_run(run_dir: Path, seconds: float, problem: str = PROBLEM) -> Run:
    return start_run(flat_config(problem=problem, islands=2, time_limit=seconds, seed=3,
                               out=str(run_dir), quiet=True, checkpoint_interval=1.0))


def run_with(run: Run, inject: Callable[[], None]) -> dict[str, Any]:
    thread = threading.Thread(target=inject)
    thread.start()
    summary = run.execute()
    thread.join()
    return summary


def stopped(run: Run) -> bool:
    return run.context.stop.get("stopped_at") is not None


def island_pid(run: Run, island: int) -> int:
    """The island's process id, from the local backend's own record of it."""
    return run.parts.backend.workers[island].process.pid


def started_after(run_dir: Path, island: int, after_t: float) -> float | None:
    for event in events(run_dir):
        if event["event"] == "island_started" and event["island"] == island and event["t"] > after_t:
            return event["t"]
    return None


# -- the faults ---------------------------------------------------------------------
def island_sigkill(work: Path, seconds: float) -> dict[str, Any]:
    run = in_process_run(work / "kill-island", seconds)
    seen: dict[str, float] = {}

    def inject() -> None:
        wait_until(lambda: run.elapsed() >= FAULT_AT_S and 1 in run.parts.backend.workers)
        seen["before"] = best_on_disk(run.run_dir)
        seen["t"] = run.elapsed()
        os.kill(island_pid(run, 1), signal.SIGKILL)

    summary = run_with(run, inject)
    restarted = started_after(run.run_dir, 1, seen["t"])
    crash = [e["t"] for e in events(run.run_dir) if e["event"] == "crash" and e["t"] >= seen["t"]]
    return result("island SIGKILL", summary["stopped_by"] == "time_limit"
                  and not summary["failed_islands"], seen["before"], summary["best_fitness"],
                  None if restarted is None else restarted - seen["t"],
                  "restarted from its checkpoint", detect=crash[0] - seen["t"] if crash else None)


def island_exception(work: Path, seconds: float) -> dict[str, Any]:
    plugin = work / "plugin"
    info = plugin / "failsonce-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (plugin / "failsonce_problem.py").write_text(ONCE_MODULE)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: failsonce\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[islands.problems]\nfailsonce = failsonce_problem:FailsOnce\n")
    sys.path.insert(0, str(plugin))  # spawned islands get the parent's sys.path
    marker = work / "failed-once"
    # About FAULT_AT_S into the run at ~250 generations/s: one island raises once.
    spec = f"failsonce:dim=30,after=900,marker={marker}"
    try:
        run = in_process_run(work / "exception", seconds, problem=spec)
        seen: dict[str, float] = {}

        def watch() -> None:
            wait_until(lambda: (work / "exception" / "best.npy").exists())
            while not marker.exists() and not stopped(run):
                seen["before"] = best_on_disk(run.run_dir)
                time.sleep(0.01)
            seen["t"] = run.elapsed()  # within ~10 ms of the raise

        summary = run_with(run, watch)
    finally:
        sys.path.remove(str(plugin))
    crash = [e for e in events(run.run_dir) if e["event"] == "crash"]
    recovery = None
    if crash:
        restarted = started_after(run.run_dir, crash[0]["island"], crash[0]["t"])
        recovery = None if restarted is None else restarted - crash[0]["t"]
    traceback_count = sum("Traceback" in e.get("error", "") for e in events(run.run_dir)
                          if e["event"] == "island_error")
    return result("island exception", bool(crash) and summary["stopped_by"] == "time_limit"
                  and not summary["failed_islands"], seen.get("before"), summary["best_fitness"],
                  recovery, f"{len(crash)} crash, {traceback_count} traceback in events",
                  detect=crash[0]["t"] - seen["t"] if crash and "t" in seen else None)


def coordinator_fault(work: Path, seconds: float, signum: int, name: str) -> dict[str, Any]:
    run_dir = work / signal.Signals(signum).name.lower()
    command = [sys.executable, "-m", "coordinator", "run", PROBLEM, "--islands", "2",
               "--time-limit", str(seconds), "--seed", "3", "--checkpoint-interval", "1",
               "--quiet", "--out", str(run_dir)]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, cwd=REPO_ROOT)
    started = time.monotonic()
    wait_until(lambda: time.monotonic() - started >= FAULT_AT_S + 1.0
               and (run_dir / "best.npy").exists())
    before = best_on_disk(run_dir)
    fault_at = time.monotonic()
    child.send_signal(signum)
    _, err = child.communicate(timeout=60)
    stop_s = time.monotonic() - fault_at
    offset = len((run_dir / "events.jsonl").read_bytes())
    resume_at = time.monotonic()
    resumed = subprocess.Popen(
        [sys.executable, "-m", "coordinator", "resume", str(run_dir), "--json", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)

    def both_started() -> bool:
        with open(run_dir / "events.jsonl", "rb") as handle:
            handle.seek(offset)
            return handle.read().count(b'"island_started"') >= 2
    wait_until(lambda: both_started() or resumed.poll() is not None)
    recovery = time.monotonic() - fault_at
    out, resume_err = resumed.communicate(timeout=seconds + 120)
    summary = json.loads(out) if out.strip() else {}
    survived = resumed.returncode == 0 and summary.get("stopped_by") == "time_limit"
    return result(name, survived, before, summary.get("best_fitness"), recovery,
                  f"exit {child.returncode}, stopped in {stop_s:.1f}s, resume resumed in "
                  f"{recovery - (resume_at - fault_at):.1f}s", detect=stop_s)


class DiskFull:
    """`os` for islands.checkpoint: while `full`, a file takes half its bytes, then ENOSPC."""

    def __init__(self) -> None:
        self.full = False

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def fdopen(self, fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        real = os.fdopen(fd, mode, *args, **kwargs)
        return _HalfWriter(real) if self.full else real


class _HalfWriter:
    def __init__(self, real: Any) -> None:
        self.real = real

    def __enter__(self) -> _HalfWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.real.close()

    def write(self, data: bytes) -> int:
        self.real.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def failed_checkpoint_write(work: Path, seconds: float) -> dict[str, Any]:
    disk = DiskFull()
    original_os = islands.checkpoint.os
    islands.checkpoint.os = disk  # type: ignore[assignment]
    run = in_process_run(work / "disk-full", seconds)
    path = run.parts.directory.checkpoint_path
    seen: dict[str, Any] = {}

    def inject() -> None:
        wait_until(lambda: run.elapsed() >= FAULT_AT_S and path.exists())
        seen["before"] = best_on_disk(run.run_dir)
        disk.full = True
        seen["t"] = run.elapsed()
        time.sleep(0.2)
        kept = path.read_bytes()
        time.sleep(2.0)
        seen["kept"] = path.read_bytes() == kept
        islands.checkpoint.load_state(path)  # still readable
        freed = time.monotonic()
        disk.full = False
        mtime = path.stat().st_mtime_ns
        wait_until(lambda: path.stat().st_mtime_ns != mtime or stopped(run))
        seen["recovery"] = time.monotonic() - freed

    try:
        summary = run_with(run, inject)
    finally:
        islands.checkpoint.os = original_os  # type: ignore[assignment]
    failed = [e["t"] for e in events(run.run_dir) if e["event"] == "checkpoint_failed"]
    return result("failed checkpoint write", summary["stopped_by"] == "time_limit"
                  and seen.get("kept", False), seen["before"], summary["best_fitness"],
                  seen.get("recovery"), f"{len(failed)} failed writes, previous file kept",
                  detect=failed[0] - seen["t"] if failed else None)


def hostile_migrants(work: Path, seconds: float) -> dict[str, Any]:
    run = in_process_run(work / "hostile", seconds)
    rng = np.random.default_rng(5)
    seen: dict[str, Any] = {"sent": 0}

    def inject() -> None:
        workers = run.parts.backend.workers
        wait_until(lambda: run.elapsed() >= FAULT_AT_S and len(workers) == 2)
        seen["before"] = best_on_disk(run.run_dir)
        good = encode_migrants(run.context.run_id, 1, 5, np.zeros((2, 30)), np.zeros(2))
        wrong_run = encode_migrants("another-run", 1, 5, np.zeros((2, 30)), np.zeros(2))
        payloads = [rng.bytes(int(n)) for n in rng.integers(0, 400, size=200)]
        payloads += [good[:n] for n in range(0, len(good), 7)] + [wrong_run] * 10
        for payload in payloads:
            for island in list(workers):
                if run.parts.backend.send(island, Deliver(1, 5, payload)):
                    seen["sent"] += 1

    summary = run_with(run, inject)
    dropped = summary["migrants"]["dropped"]
    return result("hostile migrants", summary["stopped_by"] == "time_limit"
                  and not summary["failed_islands"] and dropped >= seen["sent"],
                  seen["before"], summary["best_fitness"], 0.0,
                  f"{seen['sent']} sent, {dropped} dropped")


FAULTS: list[tuple[str, str, Callable[[Path, float], dict[str, Any]]]] = [
    ("island-kill", "island SIGKILL", island_sigkill),
    ("island-exception", "island exception", island_exception),
    ("coordinator-kill", "coordinator SIGKILL + resume",
     lambda work, s: coordinator_fault(work, s, signal.SIGKILL, "coordinator SIGKILL + resume")),
    ("sigterm", "SIGTERM + resume",
     lambda work, s: coordinator_fault(work, s, signal.SIGTERM, "SIGTERM + resume")),
    ("checkpoint-write", "failed checkpoint write", failed_checkpoint_write),
    ("hostile-migrants", "hostile migrants", hostile_migrants),
    *cases.CASES,
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="time limit of each run (stuck rows: at least 16 s / 25 s)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per row (medians)")
    parser.add_argument("--only", metavar="NAME[,NAME]",
                        help="run these rows only: " + ", ".join(key for key, _, _ in FAULTS))
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    args = parser.parse_args(argv)
    chosen = FAULTS
    if args.only:
        wanted = {name.strip().lower() for name in args.only.split(",") if name.strip()}
        chosen = [f for f in FAULTS if f[0] in wanted or f[1].lower() in wanted]
        unknown = wanted - {f[0] for f in chosen} - {f[1].lower() for f in chosen}
        if unknown:
            parser.error(f"unknown row {', '.join(sorted(unknown))}; rows: "
                         + ", ".join(key for key, _, _ in FAULTS))
    rows = []
    for _, name, inject in chosen:
        results = []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory(prefix="islands-faults-") as work:
                results.append(inject(Path(work), args.seconds))
        rows.append(tools.aggregate(name, results))
        print(f"done: {name}", file=sys.stderr, flush=True)
    tools.print_table(rows)
    if args.json:
        print(json.dumps(rows))
    ran = [r for r in rows if "skipped" not in r]
    return 0 if all(r["survived"] == r["runs"] and not r["best_lost"] for r in ran) else 1


if __name__ == "__main__":
    sys.exit(main())

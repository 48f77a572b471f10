"""Helpers of benchmarks/faults.py for faults injected into real `islands` commands.

A `Command` is `python -m coordinator ...` run as a user runs it (cwd the repo root, its
own process group), with stdout and stderr read in threads and each stderr line and the
exit time-stamped. `EventWatcher` tails RUN_DIR/events.jsonl from outside and gives the
wall-clock moment of each event (its run-relative `t` mapped onto this clock, so polling
adds no lag). `TreePss` samples the PSS of a process and all its descendants from outside. The row
dictionary (`result`), the medians over repeats (`aggregate`) and the table are here too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from islands.problem import build_problem

REPO_ROOT = Path(__file__).resolve().parent.parent
PROBLEM = "rastrigin:dim=30"
# `islands` with SIGXFSZ ignored, so a write past RLIMIT_FSIZE fails with EFBIG instead of
# killing the process (the islands it spawns inherit the ignored signal).
CLI_NO_SIGXFSZ = ("import signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
                  "from coordinator.cli import main; sys.exit(main())")


def result(fault: str, survived: bool, before: float | None, final: float | None,
           recovery: float | None, note: str = "", *, peak_budget: float | None = None,
           detect: float | None = None, lost_meaningful: bool = True) -> dict[str, Any]:
    lost = None
    if lost_meaningful and before is not None and final is not None:
        lost = max(0.0, final - before)
    return {"fault": fault, "survived": bool(survived), "best_before": before,
            "final_best": final, "best_lost": lost, "recovery_s": recovery, "note": note,
            "peak_budget": peak_budget, "detect_s": detect}


def skipped(fault: str, reason: str) -> dict[str, Any]:
    return {"fault": fault, "skipped": reason}


def install_plugin(work: Path, module: str, source: str, entry: str, attribute: str) -> Path:
    """A real problem plugin (module + dist-info with an `islands.problems` entry point)."""
    plugin = work / "plugin"
    info = plugin / f"{module}-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (plugin / f"{module}.py").write_text(source)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[islands.problems]\n{entry} = {module}:{attribute}\n")
    return plugin


def plugin_env(plugin: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(plugin), str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


class Command:
    """`python -m coordinator ARGS` (or `python -c CLI_NO_SIGXFSZ ARGS`) in its own session."""

    def __init__(self, *args: str, env: dict[str, str] | None = None,
                 no_sigxfsz: bool = False, argv: list[str] | None = None) -> None:
        runner = ["-c", CLI_NO_SIGXFSZ] if no_sigxfsz else ["-m", "coordinator"]
        self.argv = argv or [sys.executable, *runner, *args]
        self.started = time.time()
        self.process = subprocess.Popen(self.argv, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT,
                                        env=env, start_new_session=True)
        self.pid = self.process.pid
        self.out: list[str] = []
        self.err: list[tuple[float, str]] = []
        self.ended: float | None = None
        self.timed_out = False
        self.threads = [threading.Thread(target=self._read_out, daemon=True),
                        threading.Thread(target=self._read_err, daemon=True),
                        threading.Thread(target=self._wait, daemon=True)]
        for thread in self.threads:
            thread.start()

    def _read_out(self) -> None:
        self.out.append(self.process.stdout.read())

    def _read_err(self) -> None:
        for line in self.process.stderr:
            self.err.append((time.time(), line))

    def _wait(self) -> None:
        self.process.wait()
        self.ended = time.time()

    def running(self) -> bool:
        return self.ended is None

    def finish(self, timeout: float) -> int:
        """Wait for the exit; past `timeout` the whole process group is SIGKILLed."""
        self.threads[2].join(timeout)
        if self.ended is None:
            self.timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.threads[2].join(30)
        for thread in self.threads[:2]:
            thread.join(30)
        return self.process.returncode

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    @property
    def stderr(self) -> str:
        return "".join(line for _, line in self.err)

    def stderr_at(self, text: str) -> float | None:
        """When the first stderr line containing `text` was read."""
        return next((at for at, line in list(self.err) if text in line), None)

    def summary(self) -> dict[str, Any] | None:
        """The one JSON line on stdout, or None when stdout is anything else."""
        lines = self.stdout.strip().splitlines()
        if len(lines) != 1:
            return None
        try:
            return json.loads(lines[0])
        except json.JSONDecodeError:
            return None

    def clean(self, code: int) -> bool:
        return self.process.returncode == code and "Traceback" not in self.stderr

    def tail(self) -> str:
        return self.stderr.strip().splitlines()[-1][:120] if self.stderr.strip() else ""


class EventWatcher:
    """Tails events.jsonl (from its size now) every 50 ms; `at()` gives wall-clock moments."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "events.jsonl"
        self.offset = self.path.stat().st_size if self.path.exists() else 0
        self.events: list[dict[str, Any]] = []
        self.base: float | None = None  # wall clock at the run's t = 0 (the smallest seen - t)
        self.rest = b""
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            final = self.done.is_set()
            self.poll()
            if final:
                return
            self.done.wait(0.05)

    def poll(self) -> None:
        with contextlib.suppress(OSError):
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
            seen = time.time()
            self.offset += len(data)
            lines = (self.rest + data).split(b"\n")
            self.rest = lines.pop()
            for line in lines:
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    lag = seen - event["t"]
                    self.base = lag if self.base is None else min(self.base, lag)
                    self.events.append(event)

    def stop(self) -> None:
        self.done.set()
        self.thread.join(5)

    def of(self, kind: str, island: int | None = None) -> list[dict[str, Any]]:
        return [e for e in list(self.events)
                if e["event"] == kind and (island is None or e.get("island") == island)]

    def at(self, kind: str, island: int | None = None, after: float = 0.0,
           count: int = 1) -> float | None:
        """Wall-clock moment of the `count`-th `kind` event after wall time `after`."""
        if self.base is None:
            return None
        moments = [self.base + e["t"] for e in self.of(kind, island)]
        moments = [m for m in moments if m > after]
        return moments[count - 1] if len(moments) >= count else None


class TreePss:
    """Peak PSS of a process and all its descendants, sampled from outside every `interval`."""

    def __init__(self, pid: int, interval: float = 0.075) -> None:
        self.root = psutil.Process(pid)
        self.interval, self.peak, self.samples = interval, 0, 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            total = 0
            try:
                processes = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                return
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    total += process.memory_full_info().pss
            self.peak = max(self.peak, total)
            self.samples += 1
            self.done.wait(self.interval)

    def stop(self) -> int:
        self.done.set()
        self.thread.join(5)
        return self.peak


def wait_until(predicate: Any, timeout: float = 120.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def gone(pids: list[int], timeout: float) -> bool:
    def none_left() -> bool:
        alive = []
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
        return not alive
    return wait_until(none_left, timeout, 0.1)


# -- runs of the rastrigin problem, resume, validate ---------------------------------
def on_disk(run_dir: Path, spec: str = PROBLEM) -> float | None:
    """Fitness of RUN_DIR/best.npy, evaluated here (None when there is none)."""
    try:
        genome = np.load(run_dir / "best.npy")
    except (OSError, ValueError):
        return None
    return float(build_problem(spec).evaluate(genome[None, :])[0])


def fitness_of(genome: Any, spec: str = PROBLEM) -> float:
    return float(build_problem(spec).evaluate(np.asarray(genome, dtype=np.float64)[None, :])[0])


def resume(run_dir: Path, fault_at: float, *extra: str, env: dict[str, str] | None = None,
           timeout: float = 180.0) -> tuple[Command, dict[str, Any] | None, float | None]:
    """`islands resume RUN_DIR --json`; returns it, its summary and fault -> both islands
    started again (the run evolving again)."""
    watcher = EventWatcher(run_dir)
    command = Command("resume", str(run_dir), *extra, "--json", "--quiet", env=env)
    command.finish(timeout)
    watcher.stop()
    both = watcher.at("island_started", count=2)
    return command, command.summary(), None if both is None else both - fault_at


def rastrigin_run(run_dir: Path, seconds: float, **kwargs: Any) -> Command:
    return Command("run", PROBLEM, "--islands", "2", "--time-limit", f"{seconds:g}", "--seed",
                   "3", "--checkpoint-interval", "1", "--json", "--quiet", "--out", str(run_dir),
                   **kwargs)


def validated_cost(term: Path, solution: str) -> int | None:
    done = subprocess.run([sys.executable, "-m", "coordinator", "validate", str(term), solution,
                           "--json"], capture_output=True, text=True, cwd=REPO_ROOT,
                          timeout=120)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        return None
    return 10_000 * report["hard_violations"] + report["soft_cost"]


# -- medians over repeats, and the table ----------------------------------------------
def median(values: list[Any]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def aggregate(name: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    ran = [r for r in results if "skipped" not in r]
    if not ran:
        return {"fault": name, "runs": 0, "skipped": results[-1]["skipped"]}
    lost = [r["best_lost"] for r in ran if r["best_lost"] is not None]
    row = {"fault": name, "runs": len(ran), "survived": sum(r["survived"] for r in ran),
           "best_lost": max(lost) if lost else None, "note": ran[-1]["note"]}
    for key in ("best_before", "final_best", "recovery_s", "peak_budget", "detect_s"):
        row[key] = median([r[key] for r in ran])
    return row


def fmt(value: Any, spec: str = ".3g") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    return format(value, spec)


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (f"| {'fault injected':<28} | runs | survived | {'best before':>11} | "
              f"{'final best':>10} | best lost | recovery s | peak/budget | detect (s) | notes")
    print(header)
    print("|" + "|".join("-" * len(part) for part in header.split("|")[1:-1]) + "|---")
    for row in rows:
        if "skipped" in row:
            print(f"| {row['fault']:<28} | skipped: {row['skipped']}")
            continue
        print(f"| {row['fault']:<28} | {row['runs']:>4} | {row['survived']:>4}/{row['runs']:<3} | "
              f"{fmt(row['best_before']):>11} | {fmt(row['final_best']):>10} | "
              f"{fmt(row['best_lost']):>9} | {fmt(row['recovery_s'], '.2f'):>10} | "
              f"{fmt(row['peak_budget'], '.2f'):>11} | {fmt(row['detect_s'], '.2f'):>10} | "
              f"{row['note']}")

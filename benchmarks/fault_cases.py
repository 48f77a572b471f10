"""The rows of benchmarks/faults.py for issue 11's faults: each a real `islands` command.

Every row runs `python -m coordinator run ... --json` (cwd the repo root, its own process
group) as a user would, injects its fault from outside and returns a row of
`fault_tools.result`. The mechanisms are those of the slow tests (tests/test_stuck_island.py,
test_disk_full.py, test_shm_full.py, test_signal_stops.py, test_resume_checks.py); nothing
is imported from tests/. A row this machine cannot run returns `fault_tools.skipped`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil

from coordinator.run import STOP_GRACE_S


def _sibling(name: str) -> ModuleType:
    """benchmarks/NAME.py, loaded by path: this folder is kept off sys.path (memory.py)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


tools, disks = _sibling("fault_tools"), _sibling("fault_disk")
Command, EventWatcher, TreePss = tools.Command, tools.EventWatcher, tools.TreePss
result, skipped, wait_until = tools.result, tools.skipped, tools.wait_until
on_disk, fitness_of, resume = tools.on_disk, tools.fitness_of, tools.resume
rastrigin_run, validated_cost = tools.rastrigin_run, tools.validated_cost

FAULT_AT_S = 4.0
MIB = 1 << 20
STUCK_LEAK_MODULE = '''
"""Sphere whose island `hang` hangs in evaluate and whose island `leak` leaks memory."""
import multiprocessing
import os
import time

import multiprocess
import numpy as np

from islands.problems.functions import Sphere

LEAKED = []  # module state of the island process: freed only when the process ends
FIRST_CALL = None


def island_id():
    """N in an island process (the LocalBackend names it island-N), else None."""
    for module in (multiprocess, multiprocessing):
        name = module.current_process().name
        if name.startswith("island-"):
            return int(name.rsplit("-", 1)[1])
    return None


class StuckLeak(Sphere):
    name = "stuckleak"

    def __init__(self, dim=8, hang=-1, hang_after=1.0, leak=-1, leak_mb=1, delay=0.01):
        super().__init__(dim)
        self.hang, self.leak = int(hang), int(leak)
        self.hang_after, self.leak_mb, self.delay = float(hang_after), int(leak_mb), float(delay)
        self.target_fitness = None  # never stop on the target: the limits decide

    def evaluate(self, genomes):
        global FIRST_CALL
        now = time.monotonic()
        if FIRST_CALL is None:
            FIRST_CALL = now
        me = island_id()
        if me is not None and me == self.hang and now - FIRST_CALL >= self.hang_after:
            path = os.path.join(os.environ["STUCK_ISLAND_MARKS"], f"hung-{me}-{os.getpid()}")
            with open(path, "w") as handle:
                handle.write(repr(time.time()))
            while True:  # stuck for good: only a kill ends this process
                time.sleep(0.5)
        if me is not None and me == self.leak:
            LEAKED.append(np.ones(self.leak_mb << 20, dtype=np.uint8))  # pages touched
        time.sleep(self.delay)
        return super().evaluate(genomes)
'''
SLOW_WARM_UP_MODULE = '''
import os
import time

from islands.problems.functions import Sphere


class ColdStart(Sphere):
    """Sphere whose warm-up takes as long as a cold compile, unless FAST_WARM_UP is set."""

    name = "coldstart"

    def warm_up(self):
        if not os.environ.get("FAST_WARM_UP"):
            with open(os.environ["WARM_UP_MARK"], "w") as handle:
                handle.write("warming up")
            time.sleep(120.0)
'''


# -- the rows -----------------------------------------------------------------------
def stuck_island(work: Path, seconds: float, leak: bool = False) -> dict[str, Any]:
    """Island 1 hangs in evaluate 1 s into each life (and island 0 leaks ~50 MB/s)."""
    name = "stuck + leaking island 300M" if leak else "stuck island"
    marks = work / "marks"
    marks.mkdir()
    plugin = tools.install_plugin(work, "stuck_leak", STUCK_LEAK_MODULE, "stuckleak",
                                  "StuckLeak")
    limit = max(seconds, 25.0 if leak else 16.0)  # the heartbeat deadline is at least 10 s
    spec = ("stuckleak:dim=8,hang=1,hang_after=1.0,leak=0,leak_mb=1,delay=0.02" if leak
            else "stuckleak:dim=8,hang=1,hang_after=1.0,delay=0.01")
    run_dir = work / "run"
    watcher = EventWatcher(run_dir)
    command = Command("run", spec, "--islands", "2", "--population", "16", "--time-limit",
                      f"{limit:g}", "--seed", "1", "--json", "--quiet", "--out", str(run_dir),
                      *(["--memory-budget", "300M"] if leak else []),
                      env=tools.plugin_env(plugin, STUCK_ISLAND_MARKS=str(marks)))
    sampler = TreePss(command.pid)
    wait_until(lambda: any(marks.glob("hung-1-*")) or not command.running(), limit + 30)
    before = on_disk(run_dir, "sphere:dim=8")
    command.finish(limit + STOP_GRACE_S + 60)
    peak = sampler.stop()
    watcher.stop()
    summary = command.summary() or {}
    hung = sorted(float(p.read_text() or "nan") for p in marks.glob("hung-1-*"))
    hang_at = hung[0] if hung else None
    stuck = watcher.of("stuck", 1)
    stuck_at = watcher.at("stuck", 1)
    restarted = watcher.at("island_started", 1, after=stuck_at) if stuck_at else None
    on_time = summary.get("elapsed_s", 1e9) <= limit + STOP_GRACE_S + 1.0
    survived = (command.clean(0) and summary.get("stopped_by") == "time_limit" and on_time
                and stuck_at is not None and not any(marks.glob("hung-0-*")))
    note = (f"--time-limit {limit:g}, ended at {summary.get('elapsed_s', 0):.2f}s (bound "
            f"{limit + STOP_GRACE_S + 1.0:g}s), "
            f"{len(stuck)} stuck (deadline {stuck[0]['deadline_s']:g}s)" if stuck
            else f"no stuck event; exit {command.process.returncode}: {command.tail()}")
    budget = None
    if leak:
        budget = summary.get("budget_bytes") or 300 * MIB
        survived = survived and peak < 2 * budget
        actions = [e for e in summary.get("pressure_events", []) if e["island"] == 0
                   and e["action"] in ("shrink", "hibernate", "terminate")]
        began = (stuck[0]["t"] - stuck[0]["silent_s"]) if stuck else 0.0
        during = [e for e in actions if stuck and began < e["t"] < stuck[0]["t"]]
        note += (f"; {len(actions)} memory actions on island 0 ({len(during)} while 1 hung "
                 f"unnoticed), peak {peak / MIB:.0f} MiB (bound 2x)")
    return result(name, survived, before, summary.get("best_fitness"),
                  None if restarted is None or hang_at is None else restarted - hang_at, note,
                  peak_budget=peak / budget if budget else None,
                  detect=None if stuck_at is None or hang_at is None else stuck_at - hang_at)


def heavy_no_streaming(work: Path, seconds: float) -> dict[str, Any]:
    name = "heavy no-streaming 700M"
    command = Command("run", "heavy:mb=20", "--islands", "2", "--population", "40",
                      "--memory-budget", "700M", "--no-streaming", "--time-limit", f"{seconds:g}",
                      "--json", "--quiet", "--out", str(work / "run"))
    sampler = TreePss(command.pid)
    command.finish(seconds + 180)
    peak = sampler.stop()
    summary = command.summary() or {}
    budget = summary.get("budget_bytes") or 700 * MIB
    survived = (command.clean(0) and summary.get("stopped_by") == "time_limit"
                and not summary.get("failed_islands") and peak <= budget)
    note = (f"population 40 -> {summary.get('population')}, peak {peak / MIB:.0f} MiB outside, "
            f"{summary.get('peak_memory_bytes', 0) / MIB:.0f} MiB by the run (bound 1x)")
    return result(name, survived, None, summary.get("best_fitness"), None, note,
                  peak_budget=peak / budget)


def disk_full(work: Path, seconds: float, to_the_end: bool = False) -> dict[str, Any]:
    """The disk fills FAULT_AT_S into the run: for 3 s, or to the end of the run."""
    name = "disk full to the end" if to_the_end else "disk full for 3 s"
    try:
        disk, how = disks.full_disk(work / "disk")
    except disks.Unavailable as why:
        return skipped(name, str(why))
    run_dir = disk.path / "run"
    names = ("best.npy", "checkpoint/coordinator.msgpack", "checkpoint/island-0.msgpack",
             "checkpoint/island-1.msgpack")
    freed = None
    try:
        watcher = EventWatcher(run_dir)
        command = rastrigin_run(run_dir, seconds, no_sigxfsz=disk.kind == "rlimit")
        wait_until(lambda: not command.running() or (
            time.time() - command.started >= FAULT_AT_S
            and all((run_dir / n).exists() for n in names)), 120)
        filled = time.time()
        disk.fill((command.pid,))
        time.sleep(0.3)  # a write that began before the disk filled has ended
        before = on_disk(run_dir)
        if not to_the_end:
            time.sleep(3.0)
            freed = time.time()
            disk.free()
        command.finish(seconds + 120)
        watcher.stop()
        summary = command.summary() or {}
        if summary.get("solution_pending"):
            kept = fitness_of(summary.get("best_genome"))  # the held best, on stdout
        else:
            kept = on_disk(run_dir)
    finally:
        disk.close()
    noticed = [command.stderr_at("ould not write"), watcher.at("best_write_failed", after=filled),
               watcher.at("checkpoint_failed", after=filled)]
    noticed = [t for t in noticed if t is not None]
    landed = watcher.at("best_written", after=freed) if freed else None
    survived = (command.clean(0) and summary.get("stopped_by") == "time_limit"
                and kept is not None and kept == summary.get("best_fitness"))
    where = ("held best in the summary (solution_pending)" if summary.get("solution_pending")
             else "best.* landed")
    note = (f"{how}; {command.stderr.count('ould not write')} warnings, summary on stdout, "
            f"{where}")
    return result(name, survived, before, kept, None if landed is None else landed - freed,
                  note, detect=min(noticed) - filled if noticed else None)


def shm_full_at_start(work: Path, seconds: float) -> dict[str, Any]:
    name = "/dev/shm full at start"
    if shutil.which("unshare") is None:
        return skipped(name, "no unshare command")
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs "
                            "/dev/shm"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return skipped(name, "cannot mount a private /dev/shm (needs root and unshare -m): "
                             + probe.stderr.strip()[:60])
    islands = " ".join(shlex.quote(a) for a in (
        sys.executable, "-m", "coordinator", "run", "rastrigin:dim=20", "--islands", "2",
        "--generations", "20", "--quiet", "--out", str(work / "run")))
    command = Command(argv=["unshare", "-m", "sh", "-c",
                            f"mount -t tmpfs -o size=4k tmpfs /dev/shm && exec {islands}"])
    code = command.finish(120)
    lines = [line for line in command.stderr.splitlines() if line.strip()]
    survived = (code == 2 and len(lines) == 1 and "Traceback" not in command.stderr
                and lines[0].startswith("islands: error: cannot start island 0:")
                and "/dev/shm" in lines[0])
    return result(name, survived, None, None, None,
                  f"exit {code}, {len(lines)} line: {lines[-1][:100] if lines else ''}",
                  detect=command.ended - command.started)


def warm_up_sigterm(work: Path, seconds: float) -> dict[str, Any]:
    """SIGTERM while the problem's warm-up sleeps (a cold compile); resume warms up fast."""
    name = "SIGTERM during warm-up"
    plugin = tools.install_plugin(work, "cold_start", SLOW_WARM_UP_MODULE, "coldstart",
                                  "ColdStart")
    env = tools.plugin_env(plugin, WARM_UP_MARK=str(work / "warming"))
    run_dir = work / "run"
    command = Command("run", "coldstart:dim=8", "--islands", "2", "--time-limit", "3",
                      "--json", "--out", str(run_dir), env=env)
    if not wait_until(lambda: (work / "warming").exists() or not command.running(), 60):
        command.finish(0)
        return result(name, False, None, None, None, "the warm-up never started")
    signalled = time.time()
    os.kill(command.pid, signal.SIGTERM)
    code = command.finish(30)
    stop_s = command.ended - signalled
    summary = command.summary() or {}
    again, resumed, recovery = resume(run_dir, signalled, env=dict(env, FAST_WARM_UP="1"))
    resumed = resumed or {}
    survived = (command.clean(143) and stop_s < 5.0 and summary.get("stopped_by") == "terminated"
                and again.clean(0) and resumed.get("stopped_by") == "time_limit"
                and resumed.get("generations", 0) > 0)
    said = "says 'during the warm-up'" if "during the warm-up" in command.stderr else "no message"
    return result(name, survived, None, resumed.get("best_fitness"), recovery,
                  f"exit {code} in {stop_s:.1f}s (bound 5 s), {said}, resume: "
                  f"{resumed.get('stopped_by')}", detect=stop_s)


def signal_stop(work: Path, seconds: float, name: str, signum: int, group: bool,
                expect_exit: int, stopped_by: str) -> dict[str, Any]:
    """`signum` to the coordinator (or its whole process group) FAULT_AT_S in, then resume."""
    run_dir = work / "run"
    watcher = EventWatcher(run_dir)
    command = rastrigin_run(run_dir, seconds)
    wait_until(lambda: not command.running() or (
        time.time() - command.started >= FAULT_AT_S + 1.0
        and len(watcher.of("island_started")) >= 2 and (run_dir / "best.npy").exists()), 120)
    children = [p.pid for p in psutil.Process(command.pid).children(recursive=True)]
    before = on_disk(run_dir)
    fault_at = time.time()
    (os.killpg if group else os.kill)(command.pid, signum)
    code = command.finish(30)
    watcher.stop()
    stop_s = command.ended - fault_at
    summary = command.summary() or {}
    bad = sorted({e["event"] for e in watcher.events} & {"crash", "island_failed"})
    orphans = not tools.gone(children, 10)
    again, resumed, recovery = resume(run_dir, fault_at, timeout=seconds + 120)
    resumed = resumed or {}
    survived = (command.clean(expect_exit) and summary.get("stopped_by") == stopped_by
                and summary.get("failed_islands") == [] and not bad and not orphans
                and again.clean(0) and resumed.get("stopped_by") == "time_limit")
    return result(name, survived, before, resumed.get("best_fitness"), recovery,
                  f"exit {code} in {stop_s:.1f}s, {', '.join(bad) or 'no crash/failed'} events, "
                  f"{'orphans left' if orphans else 'no orphans'}, resume: "
                  f"{resumed.get('stopped_by')}", detect=stop_s)


def ctt_edited(work: Path, seconds: float) -> dict[str, Any]:
    """A timetable run stopped at 2 s; every room shrinks to 5 seats; resume to 4 s."""
    from islands.timetable.generator import generate_instance
    from islands.timetable.instance import write_ctt

    name = ".ctt edited + resume"
    instance = generate_instance(courses=20, rooms=4, days=5, periods_per_day=4, curricula=8,
                                 seed=1)
    term = write_ctt(instance, work / "term.ctt")
    run_dir = work / "run"
    first = Command("run", str(term), "--islands", "2", "--time-limit", "2", "--seed", "3",
                    "--json", "--quiet", "--out", str(run_dir))
    first.finish(300)
    before = first.summary()
    if not first.clean(0) or not before:
        return result(name, False, None, None, None, f"the first run failed: {first.tail()}")
    term.write_text(re.sub(r"^(r\d+)\t\d+$", r"\1\t5", term.read_text(), flags=re.M))
    rescored = validated_cost(term, before["solution_file"])
    resumed = Command("resume", str(run_dir), "--time-limit", "4", "--json")
    resumed.finish(300)
    after = resumed.summary() or {}
    noticed = resumed.stderr_at("the instance changed")
    check = validated_cost(term, after["solution_file"]) if after.get("solution_file") else None
    survived = (resumed.clean(0) and noticed is not None and check is not None
                and after.get("best_fitness") == check)
    return result(name, survived, rescored, after.get("best_fitness"), None,
                  f"old best {before['best_fitness']:g} scores {rescored} now; resumed best "
                  f"{after.get('best_fitness')} vs validate {check}",
                  detect=None if noticed is None else noticed - resumed.started,
                  lost_meaningful=False)


CASES: list[tuple[str, str, Any]] = [
    ("stuck", "stuck island", stuck_island),
    ("stuck-leak", "stuck + leaking island 300M", lambda w, s: stuck_island(w, s, leak=True)),
    ("heavy", "heavy no-streaming 700M", heavy_no_streaming),
    ("disk-full", "disk full for 3 s", disk_full),
    ("disk-full-end", "disk full to the end", lambda w, s: disk_full(w, s, to_the_end=True)),
    ("shm-full", "/dev/shm full at start", shm_full_at_start),
    ("warm-up-sigterm", "SIGTERM during warm-up", warm_up_sigterm),
    ("group-sigterm", "SIGTERM to process group",
     lambda w, s: signal_stop(w, s, "SIGTERM to process group", signal.SIGTERM, True, 143,
                              "terminated")),
    ("sighup", "SIGHUP + resume",
     lambda w, s: signal_stop(w, s, "SIGHUP + resume", signal.SIGHUP, False, 129, "hangup")),
    ("ctt-edited", ".ctt edited + resume", ctt_edited),
]

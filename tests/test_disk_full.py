"""A full disk during a run (issue 11, item 5): the result survives the disk.

The disk is filled for real, two ways, each test running with both where the machine
allows (and skipping with the reason where it does not):
- `tmpfs`: a small tmpfs is mounted (needs root and a kernel that lets it mount) and
  filled with a filler file until the kernel answers ENOSPC; deleting the filler frees
  it. Every process writing there (coordinator and islands) meets the full disk.
- `rlimit`: the coordinator's RLIMIT_FSIZE is set to 0 from outside
  (`resource.prlimit`, Linux): every write that would make a regular file grow fails
  (EFBIG, with SIGXFSZ ignored as the wrapper below does), which is how the kernel
  refuses a write past a limit; raising it again frees the "disk". Only the coordinator
  is limited, so the islands keep writing their checkpoints: the case where the
  coordinator's checkpoint is older than the islands' ones.
The one fake is a problem whose `write` raises ENOSPC the first N times, for the
BestKeeper's retry and backoff, which need a clock under control.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import when

from benchmarks.fault_disk import RlimitDisk, TmpfsDisk, Unavailable
from coordinator.best import RETRY_FIRST_S, RETRY_MAX_S, BestKeeper
from coordinator.events import EventBus, EventLog, read_events
from islands.checkpoint import load_state, pack_array, save_state, unpack_array
from islands.problem import build_problem
from islands.protocol import Improved

REPO_ROOT = Path(__file__).resolve().parent.parent
SPEC = "rastrigin:dim=20"
PROBLEM = build_problem(SPEC)
# `islands` with SIGXFSZ ignored, so a write past RLIMIT_FSIZE fails with EFBIG instead of
# killing the process (the islands it spawns inherit the ignored signal).
CLI = ("import signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
       "from coordinator.cli import main; sys.exit(main())")


@pytest.fixture(params=["tmpfs", "rlimit"])
def disk(request, tmp_path):
    kind = {"tmpfs": TmpfsDisk, "rlimit": RlimitDisk}[request.param]
    try:
        made = kind(tmp_path / "disk")
    except Unavailable as reason:
        pytest.skip(f"{request.param} full disk unavailable: {reason}")
    made.kind = request.param
    yield made
    made.close()


def fitness_of(genome) -> float:
    return float(PROBLEM.evaluate(np.asarray(genome, dtype=np.float64)[None, :])[0])


def on_disk(run_dir: Path) -> float | None:
    try:
        return fitness_of(np.load(run_dir / "best.npy"))
    except (OSError, ValueError):
        return None



def islands(*args: str, during=None, timeout=180) -> tuple[subprocess.CompletedProcess, dict]:
    """Run the `islands` command; `during(process, seen)` runs alongside it in a thread."""
    process = subprocess.Popen([sys.executable, "-c", CLI, *args], cwd=REPO_ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen: dict = {}
    helper = threading.Thread(target=during, args=(process, seen)) if during else None
    if helper:
        helper.start()
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
        if helper:
            helper.join()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), seen


def one_summary(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0])


def started(run_dir: Path) -> bool:
    names = ("best.npy", "checkpoint/coordinator.msgpack", "checkpoint/island-0.msgpack",
             "checkpoint/island-1.msgpack")
    return all((run_dir / name).exists() for name in names)


def best_in_checkpoints(run_dir: Path) -> float:
    """The best fitness held by the coordinator checkpoint and the island checkpoints."""
    fitness = [load_state(run_dir / "checkpoint" / "coordinator.msgpack")["best"]["fitness"]]
    for path in (run_dir / "checkpoint").glob("island-*.msgpack"):
        state = load_state(path)
        if state.get("best_genome") is not None:
            assert fitness_of(unpack_array(state["best_genome"])) == state["best_fitness"]
            fitness.append(state["best_fitness"])
    return min(fitness)


def leftovers(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.rglob("*")
                  if p.name.endswith(".tmp") or p.name.startswith("best-writing"))


def resume_and_check(run_dir: Path, time_limit: float, expected_start: float) -> dict:
    """`islands resume`: it starts from `expected_start` and ends with best.* on disk."""
    result, _ = islands("resume", str(run_dir), "--time-limit", f"{time_limit:.1f}", "--json")
    summary = one_summary(result)
    resumed = [e for e in read_events(run_dir / "events.jsonl") if e["event"] == "resumed"]
    assert resumed[-1]["best_fitness"] == expected_start
    assert summary["best_fitness"] <= expected_start
    assert on_disk(run_dir) == summary["best_fitness"] and summary["solution_pending"] is False
    return summary


# -- a real run on a disk that fills up ---------------------------------------------------

@pytest.mark.slow
def test_a_disk_full_for_a_while_loses_nothing_and_the_held_best_lands_after(disk):
    run_dir = disk.path / "run"

    def fill_then_free(process, seen):
        if not when(lambda: started(run_dir)):
            return
        time.sleep(1.0)
        disk.fill([process.pid])
        time.sleep(0.3)  # a write that began before the disk filled has ended
        seen["at_fill"] = on_disk(run_dir)
        time.sleep(3.0)
        seen["before_free"] = on_disk(run_dir)
        disk.free()

    result, seen = islands("run", SPEC, "--islands", "2", "--time-limit", "9", "--seed", "3",
                           "--checkpoint-interval", "1", "--json", "--out", str(run_dir),
                           during=fill_then_free)
    summary = one_summary(result)
    assert "at_fill" in seen, "the run never got going"
    # While the disk was full the run went on and found better, held in memory...
    assert "Could not write the best solution" in result.stderr
    assert result.stderr.count("Could not write the best solution") <= 3  # once per streak
    assert seen["before_free"] == seen["at_fill"]
    assert summary["best_fitness"] < seen["at_fill"]
    assert summary["stopped_by"] == "time_limit"
    # ...and written once the disk had room: nothing lost, nothing half-written.
    assert on_disk(run_dir) == summary["best_fitness"]
    assert summary["solution_file"] == str(run_dir / "best.npy")
    assert summary["solution_pending"] is False and "best_genome" not in summary
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    assert leftovers(run_dir) == []
    events = read_events(run_dir / "events.jsonl")
    assert any(e["event"] == "best_written" and e["failures"] >= 1 for e in events)
    assert events[-1]["event"] == "summary"
    final = load_state(run_dir / "checkpoint" / "coordinator.msgpack")
    assert final["stopped_by"] == "time_limit"
    assert final["best"]["fitness"] == summary["best_fitness"]
    resume_and_check(run_dir, summary["elapsed_s"] + 2.0, summary["best_fitness"])


@pytest.mark.slow
def test_a_disk_full_to_the_end_prints_the_best_and_resume_starts_from_the_best(disk):
    run_dir = disk.path / "run"

    def fill(process, seen):
        if not when(lambda: started(run_dir)):
            return
        time.sleep(1.0)
        disk.fill([process.pid])
        time.sleep(0.3)
        seen["at_fill"] = on_disk(run_dir)

    result, seen = islands("run", SPEC, "--islands", "2", "--time-limit", "6", "--seed", "4",
                           "--checkpoint-interval", "1", "--json", "--out", str(run_dir),
                           during=fill)
    # Exit 0 and the summary on stdout, though neither summary.json nor best.* could be written.
    summary = one_summary(result)
    assert "at_fill" in seen, "the run never got going"
    assert summary["stopped_by"] == "time_limit"
    assert summary["best_fitness"] < seen["at_fill"]
    assert summary["solution_pending"] is True and summary["solution_file"] is None
    assert fitness_of(summary["best_genome"]) == summary["best_fitness"]  # the held best
    assert on_disk(run_dir) == seen["at_fill"]  # the old file, whole
    assert not (run_dir / "summary.json").exists()  # never half a file
    assert "Could not write summary.json" in result.stderr
    assert leftovers(run_dir) == []
    disk.free()
    # Resume starts from the best the disk has: the better of the coordinator checkpoint
    # and the island checkpoints (with `rlimit` the islands kept writing theirs, so that is
    # the run's own best), and rewrites best.* from it at once.
    start = best_in_checkpoints(run_dir)
    assert start <= load_state(run_dir / "checkpoint" / "coordinator.msgpack")["best"]["fitness"]
    if disk.kind == "rlimit":
        assert start == summary["best_fitness"]
    resume_and_check(run_dir, summary["elapsed_s"] + 2.0, start)


# -- the parts on a full disk -------------------------------------------------------------

def improvement(fitness: float, island: int = 0, generation: int = 1) -> Improved:
    genome = np.full(PROBLEM.genome_shape, fitness, dtype=np.float64)
    return Improved(island=island, generation=generation, fitness=fitness,
                    genome=genome.tobytes(), dtype=genome.dtype.str, shape=list(genome.shape))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class RefusingProblem:
    """The rastrigin problem, but its `write` raises ENOSPC the first `refusals` times."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.attempts = 0

    def __getattr__(self, name):
        return getattr(PROBLEM, name)

    def write(self, genome, stem):
        self.attempts += 1
        if self.attempts <= self.refusals:
            Path(stem).with_suffix(".npy").write_bytes(b"half")  # what a full disk leaves
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return PROBLEM.write(genome, stem)


def test_a_refused_best_is_held_and_written_again_with_backoff_until_it_lands(tmp_path, caplog):
    clock, events = Clock(), []
    bus = EventBus(clock)
    bus.subscribe(events.append)
    problem = RefusingProblem(refusals=4)
    keeper = BestKeeper(problem, tmp_path, bus, clock)
    assert keeper.offer(improvement(5.0))
    assert keeper.pending and keeper.solution_file is None and problem.attempts == 1
    assert leftovers(tmp_path) == []  # the half-written temp file is gone
    assert keeper.retry() is False and problem.attempts == 1  # inside the backoff: no write
    # A better best while pending waits for the backoff too (no write per improvement).
    assert keeper.offer(improvement(4.0))
    assert problem.attempts == 1 and keeper.fitness == 4.0
    delays = []
    while keeper.pending:
        wait = keeper.retry_at - clock.now
        delays.append(round(wait, 3))
        clock.now = keeper.retry_at
        keeper.retry()
    assert delays == [RETRY_FIRST_S, 2 * RETRY_FIRST_S, 4 * RETRY_FIRST_S, 8 * RETRY_FIRST_S][
        :len(delays)] and all(d <= RETRY_MAX_S for d in delays)
    assert problem.attempts == 5 and keeper.failures == 0
    assert keeper.solution_file == tmp_path / "best.npy"
    assert fitness_of(np.load(tmp_path / "best.npy")) == fitness_of(np.full(20, 4.0))
    warnings = [r for r in caplog.records if "Could not write the best" in r.getMessage()]
    assert len(warnings) == 1  # one per failure streak
    kinds = [e["event"] for e in events]
    assert kinds.count("best_write_failed") == 4 and kinds[-1] == "best_written"
    assert keeper.retry() is True and problem.attempts == 5  # nothing pending: no write


def test_the_summary_flags_a_pending_best_and_the_last_try_can_land_it(tmp_path):
    clock = Clock()
    keeper = BestKeeper(RefusingProblem(refusals=1), tmp_path, EventBus(clock), clock)
    keeper.offer(improvement(3.0))
    assert keeper.pending and keeper.solution_file is None
    assert keeper.retry(force=True) is True  # what build_summary does before it writes
    assert keeper.solution_file == tmp_path / "best.npy" and not keeper.pending


def test_resume_takes_the_better_of_the_checkpoint_best_and_the_island_bests(tmp_path):
    from coordinator.state import island_bests

    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()

    def scored(value):  # saved bests are scored again on resume: their fitness must be true
        return float(PROBLEM.evaluate(np.full((1, 20), value))[0])

    for island, value in ((0, 2.0), (1, 1.0)):
        genome = np.full(20, value)
        save_state(checkpoint / f"island-{island}.msgpack",
                   {"island_id": island, "generation": 7, "best_genome": pack_array(genome),
                    "best_fitness": scored(value)})
    save_state(checkpoint / "island-2.msgpack", {"island_id": 2, "best_genome": None,
                                                  "best_fitness": None})
    (checkpoint / "island-3.msgpack").write_bytes(b"garbage")
    clock = Clock()
    keeper = BestKeeper(PROBLEM, tmp_path, EventBus(clock), clock)
    old = improvement(3.0)
    keeper.restore({"genome": old.genome, "dtype": old.dtype, "shape": old.shape,
                    "fitness": scored(3.0), "island": 0, "generation": 5}, checkpoint, SPEC)
    found = island_bests(checkpoint)
    assert [path.name for path, _ in found] == ["island-0.msgpack", "island-1.msgpack"]
    for path, best in found:
        keeper.adopt(best, path)
    assert keeper.fitness == scored(1.0) and keeper.island == 1 and keeper.generation == 7
    # One that does not fit the problem is skipped, not fatal.
    assert not keeper.adopt({"genome": b"\0" * 8, "dtype": "<f8", "shape": [1],
                             "fitness": 0.0}, checkpoint / "other")
    assert keeper.write() and np.array_equal(np.load(tmp_path / "best.npy"), np.full(20, 1.0))


# -- the event log and the best keeper on a really full disk ------------------------------

@pytest.fixture
def tmpfs(tmp_path):
    try:
        made = TmpfsDisk(tmp_path / "disk")
    except Unavailable as reason:
        pytest.skip(f"tmpfs full disk unavailable: {reason}")
    yield made
    made.close()


def test_the_event_log_skips_what_a_full_disk_refuses_and_closes_cleanly(tmpfs):
    path = tmpfs.path / "events.jsonl"
    log = EventLog(path)
    log({"t": 0.0, "event": "config"})
    tmpfs.fill()
    for i in range(200):  # into the last page's slack, then refused (some cut short)
        log({"t": float(i), "event": "improved", "fitness": "x" * 100})
    assert log.failures > 0
    log.close()  # nothing buffered: a full disk cannot fail the close
    tmpfs.free()
    log = EventLog(path)
    log({"t": 1.0, "event": "summary"})
    log.close()
    events = read_events(path)
    assert events[0]["event"] == "config" and events[-1]["event"] == "summary"
    lines = path.read_text().splitlines()
    assert len(lines) - len(events) <= 1  # at most the one line the full disk cut short


def test_the_event_log_on_a_full_disk_in_a_process_limited_by_rlimit(tmp_path):
    if not hasattr(resource, "prlimit"):
        pytest.skip("RLIMIT_FSIZE via resource.prlimit needs Linux")
    script = f"""
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
from pathlib import Path
from coordinator.events import EventLog
log = EventLog(Path({str(tmp_path / 'events.jsonl')!r}))
log({{"t": 0.0, "event": "config"}})
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))
log({{"t": 1.0, "event": "improved"}})
failures = log.failures
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
log({{"t": 2.0, "event": "summary"}})
log.close()
print(failures)
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
    assert [e["event"] for e in read_events(tmp_path / "events.jsonl")] == ["config", "summary"]


def test_the_best_keeper_holds_the_best_while_the_tmpfs_is_full(tmpfs):
    clock = Clock()
    keeper = BestKeeper(PROBLEM, tmpfs.path, EventBus(clock), clock)
    keeper.offer(improvement(2.0))
    assert keeper.solution_file == tmpfs.path / "best.npy"
    tmpfs.fill()
    keeper.offer(improvement(1.0))
    assert keeper.pending and keeper.fitness == 1.0
    assert np.array_equal(np.load(tmpfs.path / "best.npy"), np.full(20, 2.0))  # whole, older
    assert leftovers(tmpfs.path) == []
    tmpfs.free()
    clock.now = keeper.retry_at
    assert keeper.retry() is True
    assert np.array_equal(np.load(tmpfs.path / "best.npy"), np.full(20, 1.0))


# -- printing the summary -----------------------------------------------------------------

def test_a_pending_best_is_printed_without_json_too(capsys):
    from coordinator.cli import finish

    assert finish({"stopped_by": "time_limit", "solution_pending": False}, False) == 0
    assert capsys.readouterr().out == ""
    summary = {"stopped_by": "time_limit", "solution_pending": True, "best_genome": [1.0]}
    assert finish(summary, False) == 0
    assert json.loads(capsys.readouterr().out) == summary


def test_a_summary_that_stdout_cannot_take_keeps_the_exit_code_and_no_traceback(tmp_path):
    if not hasattr(resource, "prlimit"):
        pytest.skip("RLIMIT_FSIZE needs Linux")
    script = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
from coordinator.cli import finish, set_up_logging
set_up_logging(quiet=True)
resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
sys.exit(finish({"stopped_by": "terminated", "run_dir": "R", "best_fitness": 1.5}, True))
"""
    with open(tmp_path / "stdout.json", "w") as stdout:  # a regular file: the limit applies
        result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, stdout=stdout,
                                stderr=subprocess.PIPE, text=True, timeout=60)
    assert result.returncode == 143, result.stderr
    assert "Could not print the summary on stdout" in result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    assert (tmp_path / "stdout.json").read_text() == ""

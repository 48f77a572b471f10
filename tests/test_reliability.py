"""Reliability of a run: crashes, restarts, failed checkpoint writes, hostile migrants.

Real island processes throughout. The run-level tests use the coordinator in this
process (`coordinator.run.start_run`) so a test can reach in at the right moment; the ones
with a real `islands` command and real signals are in tests/test_run_signals.py.
The only fake here is a full disk (it cannot be had on demand): `islands.checkpoint`
gets an `os` whose files take half the bytes and then raise ENOSPC.
"""

import errno
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import when
from hypothesis import given
from hypothesis import strategies as st

import islands.checkpoint
from coordinator.config import flat_config
from coordinator.local import LocalBackend
from coordinator.run import start_run
from islands.channel import QueueChannel
from islands.checkpoint import load_state
from islands.migration import decode_migrants, encode_migrants
from islands.params import IslandParams
from islands.problem import build_problem
from islands.protocol import Deliver, Telemetry
from islands.worker import IslandLoop, MigrationSettings, WorkerSpec

FAULTY_MODULE = '''
"""A problem plugin whose evaluation raises from its `after`-th call in each process."""
from islands.problems.functions import Sphere

CALLS = 0


class Faulty(Sphere):
    name = "faulty"

    def __init__(self, dim=8, after=3):
        super().__init__(dim)
        self.after = int(after)

    def evaluate(self, genomes):
        global CALLS
        CALLS += 1
        if CALLS >= self.after:
            raise RuntimeError("faulty problem: evaluation failed on purpose")
        return super().evaluate(genomes)
'''


def config(tmp_path, name="run", **values):
    base = dict(problem="rastrigin:dim=20", islands=2, generations=None, time_limit=6.0, seed=5,
                out=str(tmp_path / name), quiet=True, checkpoint_interval=0.5)
    base.update(values)
    return flat_config(**base)


def events(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "events.jsonl").read_text().splitlines()]


def best_on_disk(run):
    """Fitness of the solution file as it is on disk now (not the run's own number)."""
    genome = np.load(run.run_dir / "best.npy")
    return float(run.context.problem.evaluate(genome[None, :])[0])


def island_pid(run, island):
    """Pid of the process now running `island` (the LocalBackend's own record), or None."""
    record = run.parts.backend.workers.get(island)
    try:
        return None if record is None else record.process.pid
    except ValueError:  # that process object was closed: its worker was replaced meanwhile
        return None



@pytest.mark.slow
def test_a_sigkilled_island_is_restarted_from_its_checkpoint_and_nothing_is_lost(tmp_path):
    run = start_run(config(tmp_path, time_limit=8.0))
    seen = {}

    def kill_island_one():
        def ready():
            return (island_pid(run, 1) is not None
                    and (run.run_dir / "checkpoint" / "island-1.msgpack").exists()
                    and (run.run_dir / "best.npy").exists())
        if when(ready):
            time.sleep(0.5)
            seen["best_before"] = best_on_disk(run)
            seen["pid"] = island_pid(run, 1)
            os.kill(seen["pid"], signal.SIGKILL)
            # Events carry no pids: the restarted island's pid is read from the backend.
            if when(lambda: island_pid(run, 1) not in (None, seen["pid"])):
                seen["pid_after"] = island_pid(run, 1)

    killer = threading.Thread(target=kill_island_one)
    killer.start()
    summary = run.execute()
    killer.join()
    assert "pid" in seen
    run_events = events(tmp_path / "run")
    crash = [e for e in run_events if e["event"] == "crash"]
    assert crash and crash[0]["island"] == 1 and crash[0]["exitcode"] == -signal.SIGKILL
    restart = [e for e in run_events if e["event"] == "restart"]
    assert restart and restart[0]["island"] == 1 and restart[0]["from_checkpoint"]
    assert summary["failed_islands"] == [] and summary["island_failures"] == {"1": 1}
    assert summary["stopped_by"] == "time_limit"
    # The restarted island evolved again, and the best only got better.
    started = [e for e in run_events if e["event"] == "island_started" and e["island"] == 1]
    # ... from its checkpoint, in a new process.
    assert len(started) == 2 and started[1]["restored"]
    assert seen.get("pid_after") not in (None, seen["pid"])
    assert summary["best_fitness"] <= seen["best_before"]
    assert best_on_disk(run) == summary["best_fitness"]


@pytest.fixture
def faulty_plugin(install_plugin):
    """A real installed problem plugin whose evaluation raises."""
    install_plugin("faulty_problem", FAULTY_MODULE, "faulty", "Faulty")
    return "faulty:dim=8,after=3"


@pytest.mark.slow
def test_an_exception_in_problem_code_shows_one_traceback_and_the_island_gives_up_after_3(
        tmp_path, faulty_plugin, caplog):
    caplog.set_level("INFO", logger="islands")
    summary = start_run(config(tmp_path, problem=faulty_plugin, time_limit=120.0)).execute()
    assert summary["stopped_by"] == "failed"
    assert summary["failed_islands"] == [0, 1]
    assert summary["island_failures"] == {"0": 3, "1": 3}
    run_events = events(tmp_path / "run")
    errors = [e for e in run_events if e["event"] == "island_error"]
    assert len(errors) == 6
    with_traceback = [e for e in errors if "Traceback" in e["error"]]
    assert len(with_traceback) == 1
    assert "evaluation failed on purpose" in with_traceback[0]["error"]
    assert caplog.text.count("Traceback") == 1
    assert len([e for e in run_events if e["event"] == "crash"]) == 6
    assert len([e for e in run_events if e["event"] == "restart"]) == 4


class DiskFull:
    """`os` for islands.checkpoint: while `full`, a file takes half its bytes, then ENOSPC."""

    def __init__(self):
        self.full = False

    def __getattr__(self, name):
        return getattr(os, name)

    def fdopen(self, fd, mode="r", *args, **kwargs):
        real = os.fdopen(fd, mode, *args, **kwargs)
        return HalfWriter(real) if self.full else real


class HalfWriter:
    def __init__(self, real):
        self.real = real

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()

    def write(self, data):
        self.real.write(data[: len(data) // 2])
        self.real.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.real, name)


@pytest.mark.slow
def test_a_failed_coordinator_checkpoint_write_keeps_the_previous_file_and_the_run(
        tmp_path, monkeypatch):
    disk = DiskFull()
    monkeypatch.setattr(islands.checkpoint, "os", disk)
    run = start_run(config(tmp_path, time_limit=6.0))
    path = run.run_dir / "checkpoint" / "coordinator.msgpack"
    seen = {}

    def fill_the_disk_for_a_while():
        if not when(path.exists):
            return
        disk.full = True
        time.sleep(0.3)  # a write that began before the disk filled has finished
        seen["before"] = path.read_bytes()
        seen["generation"] = run.max_generation()
        time.sleep(2.0)
        seen["during"] = path.read_bytes()
        seen["generation_after"] = run.max_generation()
        seen["temp_files"] = [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
        disk.full = False

    filler = threading.Thread(target=fill_the_disk_for_a_while)
    filler.start()
    summary = run.execute()
    filler.join()
    assert seen["during"] == seen["before"]  # untouched by the failed writes
    assert seen["temp_files"] == []  # the half-written temp files were removed
    assert seen["generation_after"] > seen["generation"]  # the run kept evolving
    failed = [e for e in events(run.run_dir) if e["event"] == "checkpoint_failed"]
    assert failed and "No space left" in failed[0]["error"]
    assert summary["stopped_by"] == "time_limit"
    # Once the disk had room again the final checkpoint was written.
    final = load_state(path)
    assert final["stopped_by"] == "time_limit" and final["best"]["fitness"] == summary["best_fitness"]


# -- hostile migrants ---------------------------------------------------------------

SPHERE = build_problem("sphere:dim=8")


def hostile_loop():
    spec = WorkerSpec(island_id=0, n_islands=2, run_id="run-a", problem_spec="sphere:dim=8",
                      params=IslandParams(population=8), checkpoint_path="unused", run_seed=1)
    # Taking migrants does not touch the channel.
    return IslandLoop(spec, SPHERE, QueueChannel())


LOOP = hostile_loop()
GOOD = encode_migrants("run-a", 1, 2, np.zeros((2, 8)), np.zeros(2))


def mutated(data: bytes, positions: list[int], values: list[int]) -> bytes:
    buffer = bytearray(data)
    for position, value in zip(positions, values, strict=False):
        buffer[position % len(buffer)] = value
    return bytes(buffer)


hostile_payloads = st.one_of(
    st.binary(max_size=512),
    st.builds(mutated, st.just(GOOD), st.lists(st.integers(0, 10_000), min_size=1, max_size=8),
              st.lists(st.integers(0, 255), min_size=1, max_size=8)),
    st.builds(lambda cut: GOOD[:cut], st.integers(0, len(GOOD) - 1)),
)


@given(st.lists(hostile_payloads, min_size=1, max_size=4))
def test_hostile_migrant_bytes_are_dropped_or_taken_never_fatal(payloads):
    loop = LOOP
    population_before = loop.island.population_size
    for payload in payloads:
        before = loop.exchange.stats.as_dict()
        loop.exchange.take([payload])  # never raises, whatever the bytes
        after = loop.exchange.stats.as_dict()
        decodes = decode_migrants(payload, run_id="run-a", genome_shape=SPHERE.genome_shape,
                                  genome_dtype=SPHERE.genome_dtype) is not None
        # Counted once, with its reason: dropped exactly when it does not decode.
        assert after["dropped"] - before["dropped"] == (0 if decodes else 1)
        assert sum(after["dropped_reasons"].values()) == after["dropped"]
        if not decodes:
            assert after["received"] == before["received"]
    assert loop.island.population_size == population_before
    assert np.isfinite(loop.island.population.fitness).all()


class Telemetries:
    """The last Telemetry of each island, read from the backend."""

    def __init__(self, backend):
        self.backend = backend
        self.last = {}

    def pump(self, timeout=0.1):
        for message in self.backend.receive(timeout):
            if isinstance(message, Telemetry):
                self.last[message.island] = message

    def generation(self, island):
        self.pump()
        last = self.last.get(island)
        return -1 if last is None else last.generation


@pytest.mark.slow
def test_a_running_island_fed_hostile_bytes_keeps_evolving_and_counts_them(tmp_path):
    backend = LocalBackend()
    spec = WorkerSpec(island_id=0, n_islands=2, run_id="run-a", problem_spec="sphere:dim=8",
                      params=IslandParams(population=16),
                      checkpoint_path=str(tmp_path / "i.msgpack"), run_seed=3,
                      migration=MigrationSettings(interval=2), best_report_s=0.0,
                      telemetry_s=0.0)
    backend.share(build_problem(spec.problem_spec).shared_arrays())
    backend.spawn(spec)
    telemetry = Telemetries(backend)
    try:
        assert when(lambda: telemetry.generation(0) >= 1)
        rng = np.random.default_rng(11)
        payloads = [rng.bytes(int(n)) for n in rng.integers(0, 300, size=20)]
        payloads += [GOOD[: len(GOOD) // 2], GOOD + b"\x00", b"", b"\xc1" * 64]
        for payload in payloads:
            backend.send(0, Deliver(1, 2, payload))
        generation = telemetry.generation(0)
        stats = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and stats.get("dropped", 0) < len(payloads):
            telemetry.pump()
            if 0 in telemetry.last:
                stats = telemetry.last[0].migration
        assert stats["dropped"] == len(payloads)
        assert stats["accepted"] == 0 and stats["received"] == 0
        assert when(lambda: telemetry.generation(0) >= generation + 5)
        assert backend.workers[0].process.is_alive()
    finally:
        backend.kill(0, 1.0)
        backend.close()


def test_resume_refuses_a_run_whose_coordinator_is_still_going(tmp_path):
    from coordinator.run import load_resume
    from coordinator.setup import checkpoint_state
    from islands.errors import InputError

    run = start_run(config(tmp_path))  # its run directory is locked from here on
    try:
        islands.checkpoint.save_state(run.parts.directory.checkpoint_path,
                                      checkpoint_state(run.context, run.parts))  # ours: alive
        with pytest.raises(InputError, match="still going"):
            load_resume(run.run_dir)
    finally:
        # The coordinator is gone: it released its backend, event log and lock.
        run.parts.backend.close()
        run.parts.event_log.close()
        run.parts.directory.close()
    resumed_config, saved = load_resume(run.run_dir, time_limit=3.0)
    assert saved["run_id"] == run.context.run_id and resumed_config.stop.time_limit == 3.0

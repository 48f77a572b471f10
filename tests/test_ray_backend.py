"""The Ray backend against a real local Ray instance (one per module): whole runs and the
backend's own promises (commands acked, a graceful kill, exits reported once, memory).

The two-node test is in test_ray_cluster.py; the local backend never importing Ray is in
test_backend_choice.py (it runs without Ray installed).
"""

import math
import signal
import threading
import time

import pytest

ray = pytest.importorskip(
    "ray", reason="the Ray backend's tests need Ray: pip install -e '.[test]' or 'islands[ray]'")

from conftest import when  # noqa: E402

from coordinator.backend import Exited  # noqa: E402
from coordinator.config import flat_config  # noqa: E402
from coordinator.events import read_events  # noqa: E402
from coordinator.ray_backend import RayBackend  # noqa: E402
from coordinator.run import execute_run, start_run  # noqa: E402
from islands.params import IslandParams, WorkerSpec  # noqa: E402
from islands.problem import build_problem  # noqa: E402
from islands.protocol import Ack, Command, CommandKind, Done, Started, Telemetry  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray for the module (a start costs seconds); runs use it and leave it up."""
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def config(tmp_path, name="run", **values):
    base = dict(problem="rastrigin:dim=20", islands=2, generations=20, seed=7,
                out=str(tmp_path / name), quiet=True)
    base.update(values)
    return flat_config(**base)


def events(run_dir):
    return read_events(run_dir / "events.jsonl", strict=True)



def test_a_ray_run_gives_the_summary_of_a_local_run(tmp_path):
    # Time-limited: islands starting a little apart still exchange migrants.
    local = execute_run(config(tmp_path, "local", generations=None, time_limit=3.0))
    on_ray = execute_run(config(tmp_path, "ray", generations=None, time_limit=3.0, backend="ray"))
    assert set(on_ray) == set(local)
    assert on_ray["stopped_by"] == "time_limit" and on_ray["generations"] > 0
    assert on_ray["failed_islands"] == [] and math.isfinite(on_ray["best_fitness"])
    assert on_ray["migrants"]["accepted"] > 0  # migrants went actor -> coordinator -> actor
    assert on_ray["peak_memory_bytes"] > 0  # the actors measured themselves
    assert ray.is_initialized()  # a Ray the run did not start is left running
    kinds = {e["event"] for e in events(tmp_path / "ray")}
    assert {"island_started", "island_done", "migration", "summary"} <= kinds


def test_a_killed_actor_is_restarted_from_its_checkpoint_and_the_best_is_kept(tmp_path):
    run = start_run(config(tmp_path, generations=None, time_limit=6.0, backend="ray"))
    seen = {}

    def kill_island_one():
        def ready():
            return ((run.run_dir / "checkpoint" / "island-1.msgpack").exists()
                    and (run.run_dir / "best.npy").exists() and run.parts.best.found)
        if when(ready):
            time.sleep(0.3)
            seen["best_before"] = run.parts.best.fitness
            seen["actor"] = run.parts.backend.actors[1].handle
            ray.kill(seen["actor"])

    killer = threading.Thread(target=kill_island_one)
    killer.start()
    summary = run.execute()
    killer.join()
    assert "actor" in seen
    run_events = events(tmp_path / "run")
    crash = [e for e in run_events if e["event"] == "crash"]
    assert len(crash) == 1 and crash[0]["island"] == 1
    assert crash[0]["exitcode"] == -signal.SIGKILL
    restart = [e for e in run_events if e["event"] == "restart"]
    assert restart and restart[0]["island"] == 1 and restart[0]["from_checkpoint"]
    started = [e for e in run_events if e["event"] == "island_started" and e["island"] == 1]
    assert len(started) == 2 and started[1]["restored"]
    assert summary["stopped_by"] == "time_limit" and summary["failed_islands"] == []
    assert summary["best_fitness"] <= seen["best_before"]


def test_pressure_on_the_node_shrinks_its_actors_against_the_budget_computed_there(tmp_path):
    # HIGH from 0.2 % of the node's budget on: the real memory of a run makes it HIGH.
    run = start_run(config(tmp_path, generations=None, time_limit=4.0, backend="ray",
                           population=32, min_population=4, monitor_interval=0.2,
                           thresholds={"elevated": 0.001, "high": 0.002, "critical": 0.97,
                                       "emergency": 0.99}))
    summary = run.execute()
    run_events = events(tmp_path / "run")
    acks = [e for e in run_events if e["event"] == "ack" and e["command"] == "shrink"]
    assert acks and all(e["population"] < 32 for e in acks)  # the actors shrank themselves
    assert "high" in [e["level"] for e in summary["pressure_events"]]
    # One node, one domain: the node, with the budget computed on it; events name no domain.
    node = ray.get_runtime_context().get_node_id()
    domains = run.parts.pressure.domains
    assert list(domains) == [node]
    assert domains[node].budget_bytes == run.parts.backend.nodes[node].budget_bytes > 0
    assert domains[node].monitor.peak_bytes == summary["peak_memory_bytes"] > 0
    assert not any("domain" in e for e in run_events if e["event"] in ("pressure", "action"))
    assert "pressure_domains" not in summary


def test_every_node_that_runs_islands_is_a_domain():
    from coordinator.backend import WHOLE_RUN
    from coordinator.ray_nodes import NodeBudget

    backend = RayBackend()
    assert backend.domains() == [WHOLE_RUN] and backend.domain_of(0) == WHOLE_RUN.name
    backend.nodes = {"big": NodeBudget("big", "h1", 8 << 30, 16 << 30, 12 << 30, 4.0),
                     "small": NodeBudget("small", "h2", 2 << 30, 4 << 30, 3 << 30, 2.0)}
    backend.node_of = {0: "big", 1: "small", 2: "late"}  # "late" did not answer in time
    domains = {d.name: d for d in backend.domains()}
    assert domains["big"].budget_bytes == 8 << 30
    assert domains["big"].reserve_bytes == (16 << 30) // 10  # 10 % of 16 GiB, under 2 GiB
    assert domains["late"].budget_bytes == 2 << 30  # held to the smallest known budget
    assert [backend.domain_of(i) for i in (0, 1, 2, 3)] == ["big", "small", "late", None]


def spec(tmp_path, island=0, **values):
    return WorkerSpec(island_id=island, n_islands=1, run_id="raytest", problem_spec="sphere:dim=8",
                      params=IslandParams(population=16, chunk_size=8),
                      checkpoint_path=str(tmp_path / f"island-{island}.msgpack"), **values)


def messages_until(backend, predicate, timeout=30.0):
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen += backend.receive(0.2)
        if any(predicate(item) for item in seen):
            return seen
    raise AssertionError(f"not seen in {timeout}s: {seen[-5:]}")


def test_a_shrink_command_reaches_the_actor_and_is_acked(tmp_path):
    backend = RayBackend()
    backend.share(build_problem("sphere:dim=8").shared_arrays())
    try:
        backend.spawn(spec(tmp_path))
        messages_until(backend, lambda m: isinstance(m, Telemetry) and m.generation > 0)
        assert backend.send(0, Command(CommandKind.SHRINK, 0.5, 41))
        seen = messages_until(backend, lambda m: isinstance(m, Ack) and m.seq == 41)
        ack = next(m for m in seen if isinstance(m, Ack) and m.seq == 41)
        assert ack.command == CommandKind.SHRINK and ack.population == 8
        reading = backend.memory()
        assert reading.workers[0].pss > 0 and reading.workers[0].uss > 0
        assert reading.own.pss > 0 and reading.host_available_bytes > 0
        assert backend.node_of[0] == ray.get_runtime_context().get_node_id()
    finally:
        backend.close()


def test_commands_arrive_in_the_order_they_were_sent(tmp_path):
    backend = RayBackend()
    backend.share({})
    try:
        backend.spawn(spec(tmp_path))
        for seq in range(30):
            backend.send(0, Command(CommandKind.CLEAR_CACHE, 0.0, seq))
        seen = messages_until(backend, lambda m: isinstance(m, Ack) and m.seq == 29)
        assert [m.seq for m in seen if isinstance(m, Ack)] == list(range(30))
    finally:
        backend.close()


def test_a_graceful_kill_checkpoints_and_the_exit_comes_once_after_the_last_message(tmp_path):
    backend = RayBackend()
    backend.share({})
    try:
        backend.spawn(spec(tmp_path))
        messages_until(backend, lambda m: isinstance(m, Started))
        backend.kill(0, 10.0)
        seen = messages_until(backend, lambda m: isinstance(m, Exited))
        seen += backend.receive(0.5)
        done = [i for i, m in enumerate(seen) if isinstance(m, Done)]
        exits = [i for i, m in enumerate(seen) if isinstance(m, Exited)]
        assert len(exits) == 1 and seen[exits[0]].exitcode == 0
        assert done and seen[done[0]].reason == "terminated" and done[0] < exits[0]
        assert (tmp_path / "island-0.msgpack").exists()
        assert not backend.send(0, Command(CommandKind.STOP, 0.0, 1))
    finally:
        backend.close()


def test_an_actor_killed_from_outside_is_one_exit(tmp_path):
    backend = RayBackend()
    backend.share({})
    try:
        backend.spawn(spec(tmp_path))
        messages_until(backend, lambda m: isinstance(m, Started))
        ray.kill(backend.actors[0].handle)
        seen = messages_until(backend, lambda m: isinstance(m, Exited))
        seen += backend.receive(0.5)
        assert [m.exitcode for m in seen if isinstance(m, Exited)] == [-signal.SIGKILL]
        assert backend.memory().workers == {}
    finally:
        backend.close()

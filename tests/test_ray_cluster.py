"""The Ray backend on two Ray nodes (`ray.cluster_utils.Cluster`: a head and one more node
in one process tree on this machine, each with a custom resource): islands placed on both
nodes, each node's budget computed on it, the run finishes; pressure on one node acts on
that node's actors only. Slow: a cluster starts in about 15 s. The single-node tests are
test_ray_backend.py."""

import dataclasses
import json
import math
import threading
import time

import pytest

ray = pytest.importorskip(
    "ray", reason="the Ray backend's tests need Ray: pip install -e '.[test]' or 'islands[ray]'")

from ray.cluster_utils import Cluster  # noqa: E402

from coordinator.config import flat_config  # noqa: E402
from coordinator.ray_backend import RayBackend  # noqa: E402
from coordinator.ray_nodes import islands_per_node, node_slices  # noqa: E402
from coordinator.run import start_run  # noqa: E402


@pytest.fixture(scope="module")
def two_nodes():
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "resources": {"node_a": 2}, "include_dashboard": False})
    cluster.add_node(num_cpus=2, resources={"node_b": 2})
    cluster.wait_for_nodes()
    yield cluster
    if ray.is_initialized():
        ray.shutdown()
    cluster.shutdown()


@pytest.mark.slow
def test_islands_on_two_nodes_finish_the_run(tmp_path, two_nodes):
    backend = RayBackend(address=two_nodes.address, slice_bytes=64 << 20,
                         island_resources=lambda island: {("node_a", "node_b")[island % 2]: 1})
    config = flat_config(problem="rastrigin:dim=20", islands=4, time_limit=8.0, seed=3,
                       out=str(tmp_path / "run"), quiet=True, backend="ray",
                       address=two_nodes.address, monitor_interval=0.2)
    run = start_run(config, backend=backend)
    placed = {}
    original = backend.memory

    def memory():  # keep where each island ran (the map is cleared with the actors at close)
        reading = original()
        placed.update(backend.node_of)
        return reading

    backend.memory = memory
    summary = run.execute()
    assert summary["stopped_by"] == "time_limit" and summary["failed_islands"] == []
    assert math.isfinite(summary["best_fitness"])
    assert summary["migrants"]["accepted"] > 0, (summary["migrants"], summary["generations"])
    assert sorted(placed) == [0, 1, 2, 3]
    assert islands_per_node(placed) == {node: 2 for node in set(placed.values())}
    assert len(set(placed.values())) == 2
    assert set(backend.nodes) == set(placed.values())  # both budgets computed on their node
    assert all(node.budget_bytes > 0 for node in backend.nodes.values())
    slices = node_slices(backend.nodes, placed)
    assert all(slices[i] == backend.nodes[placed[i]].budget_bytes // 2 for i in range(4))
    assert not ray.is_initialized()  # the run connected, so it disconnected; the cluster lives
    assert len([n for n in two_nodes.list_all_nodes() if n.remaining_processes_alive()]) == 2
    # More than one node: checkpoints came back with the messages into the run directory.
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoint").glob("island-*")) == [
        f"island-{i}.msgpack" for i in range(4)]


@pytest.mark.slow
def test_an_island_killed_on_the_other_node_restarts_from_its_shipped_checkpoint(
        tmp_path, two_nodes):
    backend = RayBackend(address=two_nodes.address,
                         island_resources=lambda island: {("node_a", "node_b")[island % 2]: 1})
    config = flat_config(problem="rastrigin:dim=20", islands=2, time_limit=6.0, seed=3,
                         out=str(tmp_path / "run"), quiet=True, backend="ray")
    run = start_run(config, backend=backend)
    landed = run.run_dir / "checkpoint" / "island-1.msgpack"
    seen = {}

    def kill_island_one():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (landed.exists() and run.parts.best.found):
            time.sleep(0.05)
        seen["best_before"] = run.parts.best.fitness
        ray.kill(backend.actors[1].handle)

    killer = threading.Thread(target=kill_island_one)
    killer.start()
    summary = run.execute()
    killer.join()
    lines = (run.run_dir / "events.jsonl").read_text().splitlines()
    run_events = [json.loads(line) for line in lines]
    restart = [e for e in run_events if e["event"] == "restart"]
    assert restart and restart[0]["island"] == 1 and restart[0]["from_checkpoint"]
    started = [e for e in run_events if e["event"] == "island_started" and e["island"] == 1]
    assert len(started) == 2 and started[1]["restored"]
    assert summary["stopped_by"] == "time_limit" and summary["failed_islands"] == []
    assert summary["best_fitness"] <= seen["best_before"]


def node_with(resource: str) -> str:
    return next(n["NodeID"] for n in ray.nodes()
                if n.get("Alive") and resource in n.get("Resources", {}))


@pytest.mark.slow
def test_pressure_on_one_node_shrinks_the_actors_on_that_node_only(tmp_path, two_nodes):
    backend = RayBackend(address=two_nodes.address,
                         island_resources=lambda island: {("node_a", "node_b")[island % 2]: 1})
    # HIGH from 0.2 % of a budget on: any real island memory on node b is HIGH against a
    # 4 GiB budget, what runs on node a is not against 1 TiB.
    config = flat_config(problem="rastrigin:dim=20", islands=4, population=32, min_population=4,
                         time_limit=6.0, seed=3, out=str(tmp_path / "run"), quiet=True,
                         backend="ray", monitor_interval=0.2,
                         thresholds={"elevated": 0.001, "high": 0.002, "critical": 0.97,
                                     "emergency": 0.99})
    run = start_run(config, backend=backend)
    # Both nodes are this machine: make node a a big one and node b a small one by
    # changing the budgets computed on them (before the controller's first reading).
    node_a, node_b = node_with("node_a"), node_with("node_b")
    backend.nodes[node_a] = dataclasses.replace(backend.nodes[node_a], budget_bytes=1 << 40)
    backend.nodes[node_b] = dataclasses.replace(backend.nodes[node_b], budget_bytes=4 << 30)
    summary = run.execute()
    run_events = [json.loads(line) for line in
                  (run.run_dir / "events.jsonl").read_text().splitlines()]
    shrinks = [e for e in run_events if e["event"] == "action" and e["action"] == "shrink"]
    acks = [e for e in run_events if e["event"] == "ack" and e["command"] == "shrink"]
    assert shrinks and {e["island"] for e in shrinks} <= {1, 3}  # node b's islands
    assert {e["domain"] for e in shrinks} == {node_b}
    assert acks and {e["island"] for e in acks} <= {1, 3}  # the calls reached node b's actors
    assert all(e["population"] < 32 for e in acks)
    assert {e["island"] for e in run_events if e["event"] == "action"} <= {1, 3}
    assert {e["island"] for e in run_events  # the stop at the end aside
            if e["event"] == "ack" and e["command"] != "stop"} <= {1, 3}
    assert all(e["population"] == 32 for e in run_events  # node a's islands untouched
               if e["event"] == "telemetry" and e["island"] in (0, 2))
    changes = [e for e in run_events if e["event"] == "pressure"]
    assert changes and {e["domain"] for e in changes} == {node_b}
    assert {e["domain"] for e in summary["pressure_events"]} == {node_b}
    domains = summary["pressure_domains"]
    assert domains[node_b]["budget_bytes"] == 4 << 30 and domains[node_a]["budget_bytes"] == 1 << 40
    assert sorted(domains[node_a]["islands"]) == [0, 2]
    assert summary["stopped_by"] == "time_limit" and summary["failed_islands"] == []

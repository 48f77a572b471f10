"""Per-node memory budgets for the Ray backend, computed on each node.

Covers: `NodeBudget` (one Ray node: its id and address, its budget, what bounds it, its
reserve, its CPUs) and `node_budgets()`: one small Ray task pinned to each live node
(hard node affinity) runs `memory.budget.compute_budget` there, so each node's budget
follows its own RAM and cgroup limit (`(min(physical, cgroup) - reserve) * 0.7`, an
explicit `--memory-budget` capped at what the node can give), as a local run's does;
`islands_per_node` counts the islands of a `RayBackend.node_of` map per node, and
`node_slices` divides each node's budget among the islands it holds.

Does not cover: the actors and their messages (`coordinator.ray_backend`), acting on
pressure per node (each node is a pressure domain of `coordinator.pressure`, its budget
from here), planning islands and population per node (auto-configuration still plans
from the coordinator's machine; docs/cluster.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from memory.budget import default_reserve_bytes

NODE_TIMEOUT_S = 30.0  # a node that cannot run a tiny task by then is left out


@dataclass(frozen=True)
class NodeBudget:
    """One Ray node's memory budget, computed on that node."""

    node_id: str
    address: str
    budget_bytes: int
    total_bytes: int  # min(physical RAM, cgroup limit) there
    available_bytes: int
    cpus: float

    @property
    def reserve_bytes(self) -> int:
        """The node's RAM that must stay available (below it: CRITICAL at once)."""
        return default_reserve_bytes(self.total_bytes)


def _measure(explicit: str | int | None) -> tuple[int, int, int]:
    # Imported here: this runs on the node, in a Ray worker.
    import psutil

    from memory.budget import compute_budget, total_memory_bytes

    return compute_budget(explicit), total_memory_bytes(), int(psutil.virtual_memory().available)


def node_budgets(explicit: str | int | None = None) -> dict[str, NodeBudget]:
    """The budget of every live node of the connected Ray cluster, by node id; `explicit`
    (`--memory-budget`) is each node's budget where the node can give that much."""
    measure = ray.remote(num_cpus=0)(_measure)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    asked = {measure.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        n["NodeID"], soft=False)).remote(explicit): n for n in nodes}
    ready, late = ray.wait(list(asked), num_returns=len(asked), timeout=NODE_TIMEOUT_S)
    for ref in late:
        ray.cancel(ref, force=True)
    budgets = {}
    for ref in ready:
        node = asked[ref]
        budget, total, available = ray.get(ref)
        budgets[node["NodeID"]] = NodeBudget(
            node["NodeID"], str(node.get("NodeManagerAddress", "")), int(budget), int(total),
            int(available), float(node.get("Resources", {}).get("CPU", 0.0)))
    return budgets


def islands_per_node(node_of: Mapping[int, str]) -> dict[str, int]:
    """How many islands each node holds, from an island -> node id map."""
    return dict(Counter(node_of.values()))


def node_slices(budgets: Mapping[str, NodeBudget], node_of: Mapping[int, str]) -> dict[int, int]:
    """Each island's share of its own node's budget (islands on a node share it equally)."""
    counts = islands_per_node(node_of)
    return {island: budgets[node].budget_bytes // counts[node]
            for island, node in node_of.items() if node in budgets}


__all__ = ["NodeBudget", "islands_per_node", "node_budgets", "node_slices"]

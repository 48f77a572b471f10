"""The run's event stream, end to end: a real run (LocalBackend, island processes), then the
run's story rebuilt from `events.jsonl` alone, the way the coming report will read it.

Best-over-time and memory-over-time per island come out of the file; they must agree
with the run's summary.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict

import pytest

import coordinator.pressure as pressure_module
from coordinator.config import flat_config
from coordinator.events import TRANSIENT_KINDS, read_events
from coordinator.run import execute_run

ISLANDS = 2


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One real run: 2 island processes, rastrigin, one second (forked islands run 40
    generations in a few ms: a generation count would end it before memory is sampled
    twice), memory sampled every 0.1 s and every sample on the bus as a `memory` event."""
    out = tmp_path_factory.mktemp("events") / "run"
    patch = pytest.MonkeyPatch()
    patch.setattr(pressure_module, "MEMORY_EVENT_S", 0.05)
    try:
        summary = execute_run(flat_config(problem="rastrigin:dim=20", islands=ISLANDS,
                                        time_limit=1.0, seed=21, out=str(out),
                                        monitor_interval=0.1, quiet=True))
    finally:
        patch.undo()
    return summary, out


def test_the_run_finished_and_wrote_its_events(finished_run):
    summary, out = finished_run
    assert summary["stopped_by"] == "time_limit"
    assert summary["islands"] == ISLANDS
    events = read_events(out / "events.jsonl")
    kinds = {e["event"] for e in events}
    assert {"config", "island_started", "improved", "memory", "island_done", "summary"} <= kinds
    assert not kinds & TRANSIENT_KINDS  # per-island telemetry stays off the file
    assert all(isinstance(e["t"], (int, float)) for e in events)
    # Every line of the file is one JSON object (read_events skips none here).
    lines = (out / "events.jsonl").read_text().splitlines()
    assert len(lines) == len(events) and all(json.loads(line)["event"] for line in lines)


def test_best_over_time_per_island_rebuilt_from_events(finished_run):
    summary, out = finished_run
    events = read_events(out / "events.jsonl")
    improved = [e for e in events if e["event"] == "improved"]
    per_island: dict[int, list[tuple[float, int, float]]] = defaultdict(list)
    for e in improved:
        per_island[e["island"]].append((e["t"], e["generation"], e["fitness"]))
    assert sorted(per_island) == list(range(ISLANDS))  # every island reported a best
    for island, series in per_island.items():
        times = [t for t, _, _ in series]
        generations = [g for _, g, _ in series]
        fitness = [f for _, _, f in series]
        assert times == sorted(times), island
        assert generations == sorted(generations), island
        assert all(0 <= g <= summary["generations"] for g in generations), island
        assert all(math.isfinite(f) for f in fitness), island
        # An island's best over time never gets worse.
        pairs = zip(fitness, fitness[1:], strict=False)
        assert all(later <= earlier for earlier, later in pairs), island
    global_best = [e["fitness"] for e in improved if e["global"]]
    assert global_best, "no global best in the events"
    pairs = zip(global_best, global_best[1:], strict=False)
    assert all(later < earlier for earlier, later in pairs)
    assert global_best[-1] == summary["best_fitness"]
    assert min(e["fitness"] for e in improved) == summary["best_fitness"]
    # The island holding the best at the end is the one whose own series ends there.
    holder = next(e for e in reversed(improved) if e["global"])["island"]
    assert per_island[holder][-1][2] == summary["best_fitness"]
    # The file's own summary event agrees with summary.json.
    summary_events = [e for e in events if e["event"] == "summary"]
    assert [e["best_fitness"] for e in summary_events] == [summary["best_fitness"]]
    saved = json.loads((out / "summary.json").read_text())
    assert saved["best_fitness"] == summary["best_fitness"]


def test_memory_over_time_per_island_rebuilt_from_events(finished_run):
    summary, out = finished_run
    events = read_events(out / "events.jsonl")
    memory = [e for e in events if e["event"] == "memory"]
    plan = next(e for e in events if e["event"] == "config")
    per_island: dict[int, list[tuple[float, int, int]]] = defaultdict(list)
    for e in memory:
        assert e["budget_bytes"] == summary["budget_bytes"] == plan["budget_bytes"]
        assert e["level"] == "normal"  # the default budget is far above two small islands
        assert e["coordinator_bytes"] > 0
        assert e["used_bytes"] >= e["coordinator_bytes"] + sum(
            m["pss"] for m in e["islands"].values())
        for key, measured in e["islands"].items():
            assert set(measured) == {"pss", "uss", "slice"}
            assert measured["slice"] == plan["slice_bytes"] > 0
            per_island[int(key)].append((e["t"], measured["pss"], measured["uss"]))
    both = [e for e in memory if len(e["islands"]) == ISLANDS]
    assert len(both) >= 2, f"{len(both)} memory samples with both islands"
    assert sorted(per_island) == list(range(ISLANDS))
    for island, series in per_island.items():
        assert len(series) >= 2, island
        times = [t for t, _, _ in series]
        assert times == sorted(times), island
        for _, pss, uss in series:
            assert pss > 0, island  # a real process: it has pages of its own
            assert 0 < uss <= pss, island
    # The peak the summary reports covers every island sample in the file.
    assert summary["peak_memory_bytes"] >= max(e["used_bytes"] for e in memory)

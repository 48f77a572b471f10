"""The run summary: the `--json` object and `summary.json`, made from the parts at the end.

Covers: `build_summary(context, parts, stopped_by)`: the DESIGN.md summary fields
(problem, best fitness, islands, generations, evaluations, elapsed, budget, peak memory,
pressure events, run dir, stop reason) plus the project's additions (time to feasible,
cleanups, migrants, failed islands, plan, evolution time, population and cache bytes,
run id, island failures, start and end time (UTC), islands version, host, the SHA-256
of the problem's instance file (`path` parameter) so a nightly history can tell which
instance a result belongs to, and the problem's `describe()` of the best, such as hard
and soft costs of a timetable). It gives a best write that is still pending one last try
(`solution_file` names a file only if it holds this best; otherwise `solution_pending`
is true and the summary carries the genome itself as `best_genome`, and the CLI prints
it on stdout with or without `--json`, so the result survives a disk that took none),
writes `summary.json` atomically (a failed write keeps any previous file whole and is
logged; the summary is still returned and printed with `--json`), publishes the
`summary` event (the whole summary but the genome: the report and the history read it)
and logs the closing lines (fitness; what the memory manager did: peak against budget,
actions taken, time under pressure; where the best solution is).

Does not cover: collecting along the way (`coordinator.observers.SummaryRecorder`),
printing it (`coordinator.cli`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import socket
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from islands.checkpoint import atomic_write_bytes
from islands.problem import parse_spec
from memory.budget import format_bytes

if TYPE_CHECKING:
    from coordinator.setup import Parts, RunContext

logger = logging.getLogger("islands.run")


def build_summary(context: RunContext, parts: Parts, stopped_by: str) -> dict[str, Any]:
    records = list(parts.supervisor.records.values())
    stats = parts.manager.stats()
    migrants = parts.router.totals()
    parts.bus.publish("migration", **migrants)
    best, hardware, recorder = parts.best, context.plan, parts.recorder
    landed = best.retry(force=True)  # a best still held in memory: one last try to write it
    summary: dict[str, Any] = {
        "problem": context.problem_text,
        "best_fitness": best.fitness if math.isfinite(best.fitness) else None,
        "islands": hardware.islands,
        "generations": max((r.generation for r in records), default=0),
        "evaluations": sum(r.evaluations for r in records),
        "elapsed_s": round(context.clock.elapsed(), 3),
        "budget_bytes": int(hardware.budget_bytes),
        # The controller's: one total over every domain (several Ray nodes) too.
        "peak_memory_bytes": max(int(stats.get("peak_bytes", 0)), parts.pressure.peak_bytes),
        "pressure_events": recorder.pressure_events,
        "run_dir": str(parts.directory.path),
        "stopped_by": stopped_by,
        "time_to_feasible_s": None if best.time_to_feasible is None
        else round(best.time_to_feasible, 3),
        # None: the problem has no hard constraints, or nothing was found.
        "feasible": None if best.feasible_below is None or not best.found
        else bool(best.fitness < best.feasible_below),
        "cleanups": int(stats.get("cleanups", 0)),
        "bytes_freed": int(stats.get("bytes_freed", 0)),
        "migrants": migrants,
        "failed_islands": sorted(parts.supervisor.failed_islands),
        "population": hardware.population,
        "chunk_size": hardware.chunk_size,
        "streaming": hardware.streaming,
        "seed": context.config.seed,
        "solution_file": str(best.solution_file) if best.solution_file and landed else None,
        "solution_pending": not landed,
        "evolution_s": recorder.evolution_seconds(context.stop.get("stopped_at")),
        "population_bytes": int(recorder.peak_population_bytes),
        "cache_bytes": int(recorder.peak_cache_bytes),
        "cache": recorder.cache_summary(),
        "run_id": context.run_id,
        "started_at": _utc(context.started_at),
        "ended_at": _utc(time.time()),
        "version": islands_version(),
        "host": socket.gethostname(),
        "instance_sha256": instance_checksum(context.config.problem),
        "resumed": context.resume_state is not None,
        "island_failures": {str(r.island): r.failures for r in records if r.failures},
    }
    if len(parts.pressure.domains) > 1:  # per node: its budget, its peak, what it holds
        summary["pressure_domains"] = parts.pressure.domain_summary()
    if not landed and best.genome is not None:  # the only copy of the result: print it
        summary["best_genome"] = best.genome.tolist()
    summary.update(best.describe())
    try:
        atomic_write_bytes(parts.directory.path / "summary.json",
                           json.dumps(summary, indent=2, default=str).encode("utf-8"), mode=0o644)
    except OSError as error:  # the summary is still returned (and printed with --json)
        logger.warning("[GA] Could not write summary.json (%s); the summary is printed with "
                       "--json", error)
    # The whole summary is in the stream too (the report and history read it from there).
    parts.bus.publish("summary", workdir=context.config.workdir, **{
        k: v for k, v in summary.items() if k not in ("pressure_events", "best_genome")})
    fitness_text = f"{best.fitness:.6g}" if math.isfinite(best.fitness) else "none"
    logger.info("[GA] Complete: fitness=%s, cleanups=%d, freed=%s (stopped by %s, run dir %s)",
                fitness_text, summary["cleanups"], format_bytes(summary["bytes_freed"]),
                stopped_by, parts.directory.path)
    logger.info("[GA] %s", memory_closing_line(summary))
    if summary["solution_file"] is not None:
        logger.info("[GA] Best solution: %s", best.solution_file)
    elif not landed:
        logger.warning("[GA] The best solution (fitness=%s) could not be written after %d "
                       "attempt(s); its genome is in the summary printed on stdout "
                       "(best_genome)",
                       fitness_text, best.failures)
    return summary


def memory_closing_line(summary: dict[str, Any]) -> str:
    """What the memory manager did: peak against budget, actions, time under pressure."""
    peak, budget = summary["peak_memory_bytes"], summary["budget_bytes"]
    actions: dict[str, int] = {}
    level_since: tuple[str, float] = ("normal", 0.0)
    pressure_s = 0.0
    for event in summary["pressure_events"]:
        if event["action"] != "level_change":
            actions[event["action"]] = actions.get(event["action"], 0) + 1
            continue
        if level_since[0] != "normal":
            pressure_s += event["t"] - level_since[1]
        level_since = (event["level"], event["t"])
    if level_since[0] != "normal":
        pressure_s += max(summary["elapsed_s"] - level_since[1], 0.0)
    names = {"shrink": "shrink(s)", "hibernate": "hibernation(s)", "terminate": "termination(s)",
             "resume": "restart(s)", "grow": "regrowth(s)"}
    done = ", ".join(f"{actions.get(kind, 0)} {name}" for kind, name in names.items()
                     if actions.get(kind) or kind in ("shrink", "hibernate", "resume"))
    share = f" ({peak / budget:.0%})" if budget else ""
    return (f"Memory: peak {format_bytes(peak)} of the {format_bytes(budget)} budget{share}; "
            f"{done}; {pressure_s:.1f}s under pressure")


def islands_version() -> str:
    try:
        return metadata.version("islands")
    except metadata.PackageNotFoundError:  # run from a source tree that was not installed
        return "unknown"


def instance_checksum(spec: str | None) -> str | None:
    """SHA-256 of the instance file a spec names (its `path` parameter), if any."""
    path = parse_spec(spec).params.get("path") if spec else None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else None
    except OSError:
        return None


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


__all__ = ["build_summary", "instance_checksum", "islands_version", "memory_closing_line"]

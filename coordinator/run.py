"""The run loop: one `islands run`, from resolved config to summary, wiring the parts.

Covers: `execute_run(config) -> dict` (the summary) and `Run`, a short loop over the
parts `coordinator.setup.build_run` made: receive what islands say and pass each
message to the parts it concerns (a table by message type), let the supervisor check
liveness, the pressure controller poll memory, the router publish its totals and the
checkpoint writer keep time, and stop on generations, time limit, evaluations, target
fitness, stagnation, a signal, or every island gone (`stop_reason`). On every way out
the islands are asked to stop (then killed), the summary is made and the final
checkpoint written, and the backend, the event log and the run directory lock are
released. `load_resume` / `already_finished` (from `coordinator.state`) continue a
stopped or crashed run (`islands resume`); docs/reliability.md tells what each fault does.

Does not cover: the command line (`coordinator.cli`), config resolution
(`coordinator.config`), the parts (`supervisor`, `router`, `pressure`, `best`, `state`,
`observers`, `events`), islands (`islands`), memory measurement (`memory`).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from coordinator.backend import Backend, Exited
from coordinator.config import RunConfig
from coordinator.local import (
    EXIT_NO_MAIN_GUARD,
    no_main_guard_message,
    quit_if_bootstrapping_island,
)
from coordinator.setup import Parts, RunContext, build_run
from coordinator.signals import GracefulStop
from coordinator.state import already_finished, default_run_dir, island_bests, load_resume
from coordinator.summary import build_summary
from coordinator.supervisor import SpawnFailed
from islands.errors import InputError
from islands.protocol import (
    Ack,
    CheckpointFailed,
    Done,
    Improved,
    IslandState,
    Migrants,
    Started,
    Telemetry,
)
from islands.targets import ProblemObject
from memory.probe import MemoryProbe

logger = logging.getLogger("islands.run")

TICK_S = 0.1
STOP_GRACE_S = 4.0  # a graceful stop (Ctrl-C, SIGTERM, SIGHUP) must end within about 5 s


class Run:
    """One run: `execute()` loops the parts until a stop rule fires, then winds down."""

    def __init__(self, context: RunContext, parts: Parts) -> None:
        self.context = context
        self.parts = parts
        self.summary: dict[str, Any] = {}
        self.handlers: dict[type, Any] = {
            Improved: self.on_improved,
            Migrants: parts.router.route,
            Ack: parts.pressure.on_ack,
            Telemetry: lambda m: parts.router.note_counters(m.island, m.migration),
            Started: parts.router.source_back,
            Done: self.on_done,
            CheckpointFailed: self.on_checkpoint_failed,
        }

    @property
    def run_dir(self) -> Any:
        return self.parts.directory.path

    def elapsed(self) -> float:
        return self.context.clock.elapsed()

    def request_stop(self, reason: str) -> None:
        self.context.stop["stop_requested"] = reason

    # -- messages --------------------------------------------------------------------------
    def dispatch(self, item: Any) -> None:
        if isinstance(item, Exited):
            if item.exitcode == EXIT_NO_MAIN_GUARD and not self.context.stop.get("stop_requested"):
                self.request_stop("no_main_guard")
                self.parts.supervisor.stopping = True  # restarting would fail the same way
                logger.error("[GA] %s", no_main_guard_message())
            self.parts.supervisor.on_exit(item)
            return
        self.parts.supervisor.note(item)
        handler = self.handlers.get(type(item))
        if handler is not None:
            handler(item)

    def on_improved(self, message: Improved) -> None:
        if self.parts.best.offer(message, generation_mark=self.max_generation()):
            # The checkpoint holds the best too, so a resumed run never starts below it.
            self.parts.checkpoints.write(durable=False)

    def on_done(self, message: Done) -> None:
        if message.reason == "hibernated":
            self.parts.checkpoints.write()

    def on_checkpoint_failed(self, message: CheckpointFailed) -> None:
        logger.warning("[GA] Island %d could not write its checkpoint (%s); its previous one is "
                       "kept", message.island, message.error)
        self.parts.bus.publish("checkpoint_failed", island=message.island, error=message.error)

    # -- stopping --------------------------------------------------------------------------
    def max_generation(self) -> int:
        return max((r.generation for r in self.parts.supervisor.records.values()), default=0)

    def stop_reason(self) -> str | None:
        config, parts = self.context.config, self.parts
        records = parts.supervisor.records.values()
        target = config.stop.target if config.stop.target is not None else getattr(
            self.context.problem, "target_fitness", None)
        if self.context.stop.get("stop_requested"):
            return self.context.stop["stop_requested"]
        if target is not None and parts.best.fitness <= target:
            return "target"
        if config.stop.time_limit is not None and self.elapsed() >= config.stop.time_limit:
            return "time_limit"
        if config.stop.evaluations is not None and sum(
                r.evaluations for r in records) >= config.stop.evaluations:
            return "evaluations"
        if config.stop.stagnation is not None and math.isfinite(parts.best.fitness) and (
                self.max_generation() - parts.best.generation_mark >= config.stop.stagnation):
            return "stagnation"
        if parts.supervisor.live_islands() or parts.supervisor.waiting_islands():
            return None
        if any(r.finished == "done:terminated" for r in records):
            return "terminated"  # each island was sent a signal of its own; resume goes on
        if all(r.state == IslandState.FAILED for r in records):
            return "failed"
        return "generations" if config.stop.generations is not None else "finished"

    # -- the whole run ---------------------------------------------------------------------
    def loop(self) -> str:
        parts = self.parts
        try:
            # A signal during the warm-up stops the run before any island starts.
            for island in range(0 if self.context.stop.get("stop_requested") else
                               self.context.plan.islands):
                parts.supervisor.start(island, resume=self.context.resume_state is not None)
        except SpawnFailed as error:
            raise InputError(str(error)) from None
        # A checkpoint from the start: a coordinator killed at once is still resumable.
        parts.checkpoints.write()
        while True:
            for item in parts.backend.receive(min(TICK_S, parts.pressure.next_sample_in())):
                self.dispatch(item)
            parts.supervisor.check_liveness()
            parts.pressure.poll()
            parts.router.publish_totals()
            parts.checkpoints.maybe_write()
            parts.best.retry()  # a best the disk refused is written again until it lands
            reason = self.stop_reason()
            if reason is not None:
                return reason

    def execute(self) -> dict[str, Any]:
        stopped_by = "error"
        try:
            stopped_by = self.loop()
        except KeyboardInterrupt:
            stopped_by = "interrupted"
            raise
        finally:
            try:
                self.context.stop["stopped_at"] = time.monotonic()
                self.parts.supervisor.stop_all(STOP_GRACE_S, self.dispatch)
                self.parts.directory.sweep_temp_files()  # an island killed mid-write left one
                self.context.stop["stopped_by"] = stopped_by
                self.summary = build_summary(self.context, self.parts, stopped_by)
                # Written last: it says how the run stopped and holds the final best.
                self.parts.checkpoints.write()
            finally:
                self.parts.backend.close()
                self.parts.close_records(self.summary)  # events.jsonl, report, history, run.log
                self.parts.directory.close()
        return self.summary


def start_run(config: RunConfig, *, probe: MemoryProbe | None = None,
              backend: Backend | None = None, cores: int | None = None,
              resume_state: dict[str, Any] | None = None,
              stop: dict[str, Any] | None = None, require_limit: bool = False,
              problem_object: ProblemObject | None = None) -> Run:
    """A run with every part built (directory created and locked), not yet started.

    `stop` is the map a `GracefulStop` writes a signal's stop request into.
    """
    context, parts = build_run(config, probe=probe, backend=backend, cores=cores,
                               resume_state=resume_state, stop=stop, require_limit=require_limit,
                               problem_object=problem_object)
    run = Run(context, parts)
    if resume_state:
        try:
            _restore_best(context, parts)
        except BaseException:
            parts.backend.close()
            parts.close_records()
            parts.directory.close()
            raise
        prior = float(resume_state.get("elapsed_s", 0.0))
        parts.bus.publish("resumed", run_id=context.run_id, elapsed_s=prior,
                          best_fitness=parts.best.fitness if parts.best.found else None,
                          events_offset=resume_state.get("events_offset"),
                          previous_stop=resume_state.get("stopped_by"))
        logger.info("[GA] Resuming run %s after %.1fs (best so far %s)", context.run_id, prior,
                    f"{parts.best.fitness:.6g}" if parts.best.found else "none")
    parts.bus.publish("config", **{k: v for k, v in vars(context.plan).items() if k != "reasons"})
    return run


def _restore_best(context: RunContext, parts: Parts) -> None:
    """The best of the coordinator and island checkpoints, scored against the problem now."""
    rescore = not context.stop.get("stop_requested")
    parts.best.restore((context.resume_state or {}).get("best"), parts.directory.checkpoint_path,
                       context.problem_text, rescore=rescore)
    for source, best in island_bests(parts.directory.path / "checkpoint"):
        parts.best.adopt(best, source, rescore=rescore)  # an island may hold a better one
    parts.best.write()  # best.* from the best known now (it may have missed the disk)


def execute_run(config: RunConfig, *, probe: MemoryProbe | None = None,
                backend: Backend | None = None, cores: int | None = None,
                resume_state: dict[str, Any] | None = None,
                require_limit: bool = False) -> dict[str, Any]:
    """Run `config` to the end and return the summary (also in RUN_DIR/summary.json).

    With `resume_state` (from `load_resume`), the run goes on from its checkpoints;
    `require_limit` (the command line) refuses a run that nothing but a signal would stop.
    """
    quit_if_bootstrapping_island()
    stop: dict[str, Any] = {}
    with GracefulStop(stop):  # from the start: a signal during the warm-up stops cleanly too
        run = start_run(config, probe=probe, backend=backend, cores=cores,
                        resume_state=resume_state, stop=stop, require_limit=require_limit)
        return run.execute()


__all__ = ["Run", "already_finished", "default_run_dir", "execute_run", "load_resume",
           "start_run"]

"""The Python API: `islands.run(problem, **options) -> Result`, the same run as `islands run`.

Covers: turning a problem (a spec string such as `"rastrigin:dim=50"`, a Problem class
with `params`, or a Problem instance; classes from a notebook or `__main__` included)
and keyword options (the `islands run` settings by their config names: `islands`,
`population`, `time_limit`, `generations`, `seed`, `memory_budget`, `out`, `sync`, ...)
into a checked config; driving the run loop with an optional progress callback (called in
the calling thread on every new global best and at least every `progress_every`
seconds; returning False stops the run; an exception in it stops the run and is raised
again once the best is saved); the `Result` (best genome and fitness, summary, run
directory, best-over-time history); `RunFailed` when every island failed (with the
islands' error as the cause text) or when a script without a `__main__` guard would
start a run in every island.

Does not cover: the run itself (`coordinator.run`), the command line (`coordinator.cli`),
config checking (`coordinator.config`). `islands/__init__.py` re-exports `run`, `Result`,
`Progress` and `RunFailed` lazily, so island processes never import the coordinator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from coordinator.config import RunConfig, merge_params, resolve_config
from coordinator.events import Event
from coordinator.local import no_main_guard_message, quit_if_bootstrapping_island
from coordinator.run import start_run
from coordinator.signals import GracefulStop
from coordinator.view import RunView
from islands.errors import InputError
from islands.targets import ProblemObject

PROGRESS_EVERY_S = 1.0


class RunFailed(RuntimeError):
    """The run ended without a result: every island failed, or the islands could not start."""

    def __init__(self, message: str, summary: Mapping[str, Any] | None = None,
                 details: str = "") -> None:
        super().__init__(message)
        self.summary = dict(summary or {})
        self.details = details  # the islands' traceback, when one was reported


@dataclass(frozen=True)
class Progress:
    """What a progress callback is given: the run so far."""

    elapsed_s: float
    best_fitness: float | None
    generation: int  # the furthest island's generation
    evaluations: int  # over all islands
    improved: bool  # this call comes with a new global best


@dataclass(frozen=True)
class Result:
    """The outcome of `islands.run`."""

    best_genome: np.ndarray | None
    best_fitness: float | None
    summary: dict[str, Any]
    run_dir: Path
    history: list[tuple[float, float]] = field(default_factory=list)  # (elapsed_s, best)

    @property
    def stopped_by(self) -> str:
        return str(self.summary.get("stopped_by"))


class _Watcher:
    """Event-bus subscriber: best-over-time history, island errors, the progress callback."""

    def __init__(self, view: RunView, callback: Callable[[Progress], Any] | None,
                 every_s: float, request_stop: Callable[[str], None]) -> None:
        self.view = view  # subscribed before this watcher: up to date when it is called
        self.callback = callback
        self.every_s = every_s
        self.request_stop = request_stop
        self.history: list[tuple[float, float]] = []
        self.errors: list[str] = []
        self.last_call = float("-inf")
        self.callback_error: BaseException | None = None

    def __call__(self, event: Event) -> None:
        kind = event["event"]
        improved = kind == "improved" and bool(event.get("global"))
        if improved:
            self.history.append((float(event["t"]), float(event["fitness"])))
        elif kind == "island_error" and event.get("error") != "same as before":
            self.errors.append(str(event["error"]))
        if self.callback is not None and self.callback_error is None and (
                improved or float(event["t"]) - self.last_call >= self.every_s):
            self._call(float(event["t"]), improved)

    def _call(self, now: float, improved: bool) -> None:
        self.last_call = now
        progress = Progress(
            elapsed_s=round(now, 3), best_fitness=self.history[-1][1] if self.history else None,
            generation=self.view.generation(), evaluations=self.view.evaluations(),
            improved=improved)
        try:
            wanted = self.callback(progress)  # type: ignore[misc]
        except Exception as error:  # stop cleanly; raised again once the best is saved
            self.callback_error = error
            self.request_stop("callback_error")
            return
        if wanted is False:
            self.request_stop("callback")


def problem_source(problem: Any, params: Mapping[str, Any] | None) -> str | ProblemObject:
    """A spec string (params added; the spec's own win) or a ProblemObject for a class or
    an instance."""
    params = dict(params or {})
    if isinstance(problem, str):
        return merge_params(problem, params, "islands.run()")
    if isinstance(problem, type):
        return ProblemObject(problem, params)
    if params:
        raise InputError("params= goes with a problem class or spec, not with an instance")
    return ProblemObject(problem)


def make_config(problem: Any, params: Mapping[str, Any] | None,
                options: Mapping[str, Any]) -> tuple[RunConfig, ProblemObject | None]:
    """The checked config for `options` (config names, as in `config.toml`)."""
    if "problem" in options:
        raise InputError("give the problem as the first argument of islands.run, not problem=")
    source = problem_source(problem, params)
    values = {**options, "problem": source if isinstance(source, str) else source.text()}
    config = resolve_config(flags=values, flags_source="islands.run()")
    return config, None if isinstance(source, str) else source


def run(problem: Any, *, params: Mapping[str, Any] | None = None,
        progress: Callable[[Progress], Any] | None = None,
        progress_every: float = PROGRESS_EVERY_S, **options: Any) -> Result:
    """Run the island search on `problem` and return its Result (see the module docstring).

    A stop criterion is needed (`time_limit`, `generations`, `evaluations` or
    `stagnation`). Bad options raise `islands.errors.InputError`; a run that found
    nothing because every island failed raises `RunFailed`.
    """
    quit_if_bootstrapping_island()
    config, problem_object = make_config(problem, params, options)
    stop: dict[str, Any] = {}
    with GracefulStop(stop):
        started = start_run(config, stop=stop, require_limit=True, problem_object=problem_object)
        watch = started.parts.watch
        view = watch.view if watch is not None else RunView(started.context.plan.islands)
        if watch is None:
            started.parts.bus.subscribe(view)
        watcher = _Watcher(view, progress, progress_every, started.request_stop)
        started.parts.bus.subscribe(watcher)
        summary = started.execute()
    if watcher.callback_error is not None:
        raise watcher.callback_error
    stopped_by = summary.get("stopped_by")
    if stopped_by == "no_main_guard":
        raise RunFailed(no_main_guard_message(), summary)
    best = started.parts.best
    if stopped_by == "failed":
        cause = watcher.errors[0].strip().splitlines()[-1] if watcher.errors else "no error text"
        raise RunFailed(f"every island failed ({cause}); see {summary.get('run_dir')}/events.jsonl",
                        summary, details="\n\n".join(watcher.errors))
    return Result(best_genome=None if best.genome is None else best.genome.copy(),
                  best_fitness=summary.get("best_fitness"), summary=summary,
                  run_dir=Path(str(summary["run_dir"])), history=list(watcher.history))


__all__ = ["Progress", "Result", "RunFailed", "make_config", "problem_source", "run"]

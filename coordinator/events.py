"""The run's event stream: one bus the coordinator's parts publish on, and its file.

Covers: `EventBus` (`publish(kind, **fields)` stamps the run time and hands the record
to every subscriber, in order; a failing subscriber is logged, never raised) and
`EventLog` (the `events.jsonl` subscriber: one JSON object a line, flushed, tolerant of
a full disk; transient kinds such as per-island `telemetry` stay off the file).

Event kinds, as published by the parts (fields after the colon):
- run: `config` (the plan), `resumed`, `summary`;
- islands (supervisor): `island_started`, `island_done`, `island_error`, `crash`,
  `stuck`, `restart`, `island_failed`, `hibernated`, `checkpoint_failed`;
  transient `telemetry` (one per Telemetry message: island, generation, evaluations,
  best_fitness, population, population_bytes, cache_bytes, state, migration);
- best keeper: `improved` (island, generation, fitness, global; hard and soft where the
  problem describes them), `feasible`;
- pressure controller: `memory` (used_bytes, budget_bytes, level, coordinator_bytes,
  islands: {id: {pss, uss, slice}}), `pressure` (old, new, used_bytes), `action`
  (level, action, island, arg), `ack`;
- router: `migration` (running totals);
- run state: `checkpoint_failed` (file, error).
`coordinator.observers` has the other subscribers (summary, progress log); the coming
report and history read the same stream.

Does not cover: what the parts decide (their own modules).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger("islands.run")

Event = dict[str, Any]
Subscriber = Callable[[Event], None]
TRANSIENT_KINDS = frozenset({"telemetry"})


class EventBus:
    """Publish events to subscribers; `clock()` gives the run time stamped as `t`."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.append(subscriber)

    def publish(self, kind: str, **fields: Any) -> Event:
        event: Event = {"t": round(self.clock(), 3), "event": kind, **fields}
        for subscriber in self.subscribers:
            try:
                subscriber(event)
            except Exception:  # one broken observer must not stop the run
                logger.exception("[GA] Event subscriber %r failed on %s", subscriber, kind)
        return event


class EventLog:
    """The `events.jsonl` subscriber (appends: a resumed run goes on in the same file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file: Any = open(path, "a", encoding="utf-8")  # noqa: SIM115
        self.failures = 0

    def __call__(self, event: Event) -> None:
        if self.file is None or event["event"] in TRANSIENT_KINDS:
            return
        try:
            self.file.write(json.dumps(event, default=str) + "\n")
            self.file.flush()
        except OSError as error:  # a full disk must not stop the run
            self.failures += 1
            logger.debug("[GA] Could not write event %s: %s", event["event"], error)

    def offset(self) -> int:
        try:
            return self.file.tell() if self.file is not None else 0
        except OSError:
            return 0

    def close(self) -> None:
        if self.file is not None:
            try:
                self.file.close()
            except OSError:
                pass
            self.file = None


def read_events(path: Path) -> list[Event]:
    """Every event of an `events.jsonl` (a line cut short by a crash is skipped)."""
    events: list[Event] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


__all__ = ["TRANSIENT_KINDS", "Event", "EventBus", "EventLog", "Subscriber", "read_events"]

"""The run's event stream: one bus the coordinator's parts publish on, and its file.

Covers: `EventBus` (`publish(kind, **fields)` stamps the run time and hands the record
to every subscriber, in order; a failing subscriber is logged, never raised) and
`EventLog` (the `events.jsonl` subscriber: one JSON object a line, one unbuffered
write each, tolerant of a full disk at every step, close included; transient kinds
such as per-island `telemetry` stay off the file).

Event kinds, as published by the parts (fields after the colon):
- run: `config` (the plan), `resumed`, `summary`;
- islands (supervisor): `island_started`, `island_done`, `island_error`, `crash`,
  `stuck`, `restart`, `restart_deferred` (killed by the kernel under pressure: back once
  its slice fits), `island_failed`, `hibernated`, `checkpoint_failed`;
  transient `telemetry` (one per Telemetry message: island, generation, evaluations,
  best_fitness, population, population_bytes, cache_bytes, cache_hits, cache_misses,
  cache_off, state, migration);
- best keeper: `improved` (island, generation, fitness, global; hard and soft where the
  problem describes them), `feasible`, `best_write_failed` (error, failures, fitness),
  `best_written` (file, fitness, failures: after failed writes);
- pressure controller: `memory` (used_bytes, budget_bytes, level, coordinator_bytes,
  islands: {id: {pss, uss, slice}}), `pressure` (old, new, used_bytes), `action`
  (level, action, island, arg), `ack`;
- router: `migration` (running totals);
- run state: `checkpoint_failed` (file, error);
- watch: `islands` (per island: state, generation, best, population, migrants in / out,
  cache hit rate; at most one a second), and `summary` carries the whole summary.
`coordinator.observers` (summary) and `coordinator.watch` (run.log, progress lines, live
view) have the other subscribers; the report (`coordinator.report`) and the history
(`coordinator.history`) are rebuilt from the same stream.

Does not cover: what the parts decide (their own modules).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from islands.errors import InputError

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
    """The `events.jsonl` subscriber (appends: a resumed run goes on in the same file).

    Unbuffered: each event is one `os.write` of one line, so nothing waits in a buffer
    for `close()` to flush (a full disk cannot fail the close, and an event the disk
    refused is skipped, not written later out of order). A line cut short by a full disk
    (here, or by an earlier process) is ended before the next event, so every other line
    stays one JSON object.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        self.failures = 0  # events the disk refused, in all
        self.streak = 0  # ... since the last one that was written
        self.torn = self._ends_inside_a_line()  # a full disk or a crash may have cut it short

    def _ends_inside_a_line(self) -> bool:
        try:
            size = os.fstat(self.fd).st_size if self.fd is not None else 0
            return size > 0 and os.pread(self.fd, 1, size - 1) != b"\n"
        except OSError:
            return False

    def __call__(self, event: Event) -> None:
        if self.fd is None or event["event"] in TRANSIENT_KINDS:
            return
        data = (json.dumps(event, default=str) + "\n").encode("utf-8")
        if self.torn:
            data = b"\n" + data
        try:
            written = 0
            while written < len(data):
                written += os.write(self.fd, data[written:])
        except OSError as error:  # a full disk must not stop the run
            self.failures += 1
            self.streak += 1
            self.torn = self.torn or written > 0
            if self.streak == 1:
                logger.warning("[GA] Could not write %s (%s); events are skipped until it can "
                               "be written again", self.path, error)
            return
        self.torn = False
        if self.streak:
            logger.info("[GA] %s is written again (%d event(s) skipped)", self.path, self.streak)
            self.streak = 0

    def offset(self) -> int:
        try:
            return os.lseek(self.fd, 0, os.SEEK_END) if self.fd is not None else 0
        except OSError:
            return 0

    def close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            with contextlib.suppress(OSError):
                os.close(fd)


def read_events(path: Path, *, strict: bool = False) -> list[Event]:
    """Every event of an `events.jsonl`. A line that is not one JSON event (cut short by a
    crash or a full disk) is skipped, or with `strict` is an InputError naming the line."""
    events: list[Event] = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            if not isinstance(event, dict) or "event" not in event or "t" not in event:
                raise ValueError("not an event")
        except ValueError:
            if strict:
                raise InputError(f"{path}, line {number}: not a JSON event (cut short by a "
                                 "crash or a full disk?)") from None
            continue
        events.append(event)
    return events


__all__ = ["TRANSIENT_KINDS", "Event", "EventBus", "EventLog", "Subscriber", "read_events"]

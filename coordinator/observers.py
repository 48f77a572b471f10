"""The subscriber of the event bus that the summary is made from.

Covers: `SummaryRecorder` (what the `--json` summary needs beyond the parts' final
state: pressure events with their actions and, with several Ray nodes, their domain, peaks of population and cache bytes over
the live islands, the fitness cache's look-ups and which islands switched it off, when
every island was evolving).

Does not cover: `events.jsonl` (`coordinator.events.EventLog`), building the summary
dict (`coordinator.summary`), progress lines and the live view (`coordinator.watch`,
`coordinator.view`, `coordinator.live`), the report and history (`coordinator.report`,
`coordinator.history`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from coordinator.events import Event

logger = logging.getLogger("islands.run")

PRESSURE_ACTIONS = ("shrink", "hibernate", "terminate", "resume", "grow")


def _domain(event: Event) -> dict[str, Any]:
    # Named only where a run has several pressure domains (Ray nodes).
    return {"domain": event["domain"]} if "domain" in event else {}


class SummaryRecorder:
    def __init__(self, n_islands: int, clock: Callable[[], float]) -> None:
        self.n_islands = n_islands
        self.clock = clock  # monotonic seconds, for evolution_s
        self.pressure_events: list[dict[str, Any]] = []
        self.bytes_of: dict[int, tuple[int, int]] = {}
        self.peak_population_bytes = 0
        self.peak_cache_bytes = 0
        self.cache_of: dict[int, tuple[int, int, bool]] = {}  # island -> hits, misses, off
        self.evolving: set[int] = set()
        self.evolving_since: float | None = None

    def __call__(self, event: Event) -> None:
        kind = event["event"]
        if kind == "telemetry":
            self._telemetry(event)
        elif kind == "pressure":
            self.pressure_events.append({"t": event["t"], "level": event["new"],
                                         "action": "level_change", "island": None,
                                         **_domain(event)})
        elif kind == "action" and event["action"] in PRESSURE_ACTIONS:
            self.pressure_events.append({"t": event["t"], "level": event["level"],
                                         "action": event["action"], "island": event["island"],
                                         **_domain(event)})
        elif kind in ("crash", "hibernated", "island_done") or (
                kind == "action" and event["action"] == "terminate"):
            self.bytes_of.pop(event["island"], None)  # its memory went with its process
        elif kind == "improved" and self.evolving_since is None:
            # `evolution_s` starts once every island has reported a best (start-up excluded).
            self.evolving.add(event["island"])
            if len(self.evolving) >= self.n_islands:
                self.evolving_since = self.clock()

    def _telemetry(self, event: Event) -> None:
        self.bytes_of[event["island"]] = (event["population_bytes"], event["cache_bytes"])
        self.peak_population_bytes = max(self.peak_population_bytes,
                                         sum(p for p, _ in self.bytes_of.values()))
        self.peak_cache_bytes = max(self.peak_cache_bytes, sum(c for _, c in self.bytes_of.values()))
        self.cache_of[event["island"]] = (int(event.get("cache_hits", 0)),
                                          int(event.get("cache_misses", 0)),
                                          bool(event.get("cache_off", False)))

    def cache_summary(self) -> dict[str, Any]:
        """The fitness cache over the run: look-ups, hit rate, islands that switched it off.

        Counts are each island's last report (a restarted island counts from its restart)."""
        hits = sum(h for h, _, _ in self.cache_of.values())
        misses = sum(m for _, m, _ in self.cache_of.values())
        return {"hits": hits, "misses": misses,
                "hit_rate": round(hits / (hits + misses), 4) if hits + misses else None,
                "switched_off": sorted(i for i, (_, _, off) in self.cache_of.items() if off)}

    def evolution_seconds(self, stopped_at: float | None) -> float | None:
        """Seconds from all islands evolving to the stop (None if they never all did)."""
        if self.evolving_since is None:
            return None
        end = stopped_at if stopped_at is not None else self.clock()
        return round(max(end - self.evolving_since, 0.0), 3)


__all__ = ["SummaryRecorder"]

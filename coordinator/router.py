"""The migrant router: emigrants to their targets along the topology, and source news.

Covers: `MigrantRouter`. `route(Migrants)` delivers the payload (opaque migrant wire
bytes) to every target of the sender at that generation (`islands.topology`) whose
worker is live, and counts what could not be delivered. For lockstep (sync) runs it
tells islands when a source stops sending (`SourceGone` with its last generation:
done, hibernated, dead, stuck) and when it sends again (`SourceBack`), and gives a
restarted island its `sync_floor` (per source, the last generation it emitted while
the island was away), so no island reads another's state. `totals()` merges the
islands' own migration counters (from their telemetry) with routed / unroutable, and
`publish_totals()` puts them on the bus at most every MIGRATION_EVENT_S.

Does not cover: the migrant codec (`islands.migration`), choosing and taking migrants
(islands), who is live (`coordinator.supervisor`).
"""

from __future__ import annotations

from collections.abc import Callable

from coordinator.backend import Backend
from coordinator.events import EventBus
from islands.protocol import Deliver, Migrants, SourceBack, SourceGone, Started
from islands.topology import Topology

MIGRATION_EVENT_S = 5.0
COUNTERS = ("sent", "received", "accepted", "dropped", "declined")


class MigrantRouter:
    def __init__(self, topology: Topology, backend: Backend, bus: EventBus,
                 is_live: Callable[[int], bool], clock: Callable[[], float]) -> None:
        self.topology = topology
        self.backend = backend
        self.bus = bus
        self.is_live = is_live
        self.clock = clock
        self.routed = 0
        self.unroutable = 0
        self.last_emitted: dict[int, int] = {}
        self.island_counters: dict[int, dict[str, int]] = {}
        self.last_event_at = clock()
        self.last_published: dict[str, int] = {}

    def route(self, message: Migrants) -> None:
        source, generation = message.island, message.generation
        self.last_emitted[source] = max(generation, self.last_emitted.get(source, -1))
        for target in self.topology.targets(source, generation):
            if self.is_live(target) and self.backend.send(
                    target, Deliver(source, generation, message.payload)):
                self.routed += 1
            else:
                self.unroutable += 1

    def source_gone(self, source: int, generation: int) -> None:
        """`source` sends nothing after `generation`: lockstep neighbours must not wait."""
        for island in self._others(source):
            self.backend.send(island, SourceGone(source, generation))

    def source_back(self, message: Started) -> None:
        if message.restored or message.generation > 0:
            for island in self._others(message.island):
                self.backend.send(island, SourceBack(message.island, message.generation))

    def sync_floor(self, island: int) -> dict[int, int]:
        """Per source, the last generation it emitted (what a restarted island missed)."""
        return {source: gen for source, gen in self.last_emitted.items() if source != island}

    def _others(self, source: int) -> list[int]:
        return [i for i in range(self.topology.n_islands) if i != source and self.is_live(i)]

    # -- totals ----------------------------------------------------------------------------
    def note_counters(self, island: int, migration: dict) -> None:
        self.island_counters[island] = {key: int(migration.get(key, 0)) for key in COUNTERS}

    def totals(self) -> dict[str, int]:
        totals = dict.fromkeys(COUNTERS, 0)
        for counters in self.island_counters.values():
            for key in COUNTERS:
                totals[key] += counters[key]
        totals["routed"] = self.routed
        totals["unroutable"] = self.unroutable
        return totals

    def publish_totals(self, *, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self.last_event_at < MIGRATION_EVENT_S:
            return
        self.last_event_at = now
        totals = self.totals()
        if force or totals != self.last_published:
            self.last_published = totals
            self.bus.publish("migration", **totals)


__all__ = ["MIGRATION_EVENT_S", "MigrantRouter"]

"""The pressure controller: memory samples in, the policy's actions out, one at a time.

Covers: `CommandTracker` (commands to islands with sequence numbers, one in flight per
island, each with a deadline: an island that does not answer in time no longer holds
the controller; the supervisor's heartbeat deals with a stuck one) and
`PressureController`, which acts per pressure domain (the backend's `domains()`: the
whole machine for the local backend, one per node for Ray; `domain_of(island)` says
where each island runs): `poll()` takes one memory reading from the backend every
monitor interval, sooner while usage climbs fast towards a budget (`SampleSchedule`),
feeds each domain's hysteresis (`PressureDomain`; on one machine the MemoryManager's
monitor itself) with that domain's islands (and the coordinator where it runs),
publishes `memory` events every MEMORY_EVENT_S and `pressure` events on level changes
(naming the domain when there are several), and, per domain, when no action on its
islands is in flight (acknowledged and re-measured), asks the pure
`coordinator.policy.decide` what to do about that domain's islands and does it: commands for cache / growth / shrink / grow / hibernate, the
supervisor for terminate (emergency) and resume (calm period). It acts no harder than
the latest sample supports (the hysteresis level lags after memory was freed), at
EMERGENCY it waits for no island's answer, and `AwayIslands` brings an island back
only when its slice fits beside what is in use in its domain, with a doubling backoff; an island
SIGKILLed while memory is HIGH or worse (the kernel's OOM killer, most likely) is sent
away the same way instead of being restarted at once (`defer_restart`).

Does not cover: the thresholds and hysteresis (`memory.monitor`), a domain's own state
(`coordinator.pressure_domains`), the policy table (`coordinator.policy`), starting
processes (`coordinator.supervisor`, the backend), each node's budget (the backend:
`coordinator.ray_nodes` for Ray).
"""

from __future__ import annotations

import logging
import signal
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from coordinator.backend import Backend, Domain, MemoryReading
from coordinator.events import EventBus
from coordinator.policy import Action, ActionKind, decide
from coordinator.pressure_domains import AwayIslands, PressureDomain, SampleSchedule
from coordinator.supervisor import Supervisor
from islands.protocol import Ack, CommandKind
from memory import MemoryManager, PressureLevel
from memory.budget import format_bytes
from memory.monitor import MemoryMonitor

logger = logging.getLogger("islands.run")

COMMAND_DEADLINE_S = 5.0
MEMORY_EVENT_S = 2.0
COMMAND_OF_ACTION = {
    ActionKind.CLEAR_CACHE: CommandKind.CLEAR_CACHE,
    ActionKind.PAUSE_GROWTH: CommandKind.PAUSE_GROWTH,
    ActionKind.RESUME_GROWTH: CommandKind.RESUME_GROWTH,
    ActionKind.SHRINK: CommandKind.SHRINK,
    ActionKind.GROW: CommandKind.GROW,
    ActionKind.HIBERNATE: CommandKind.HIBERNATE,
}
MAJOR_ACTIONS = (ActionKind.SHRINK, ActionKind.HIBERNATE, ActionKind.TERMINATE,
                 ActionKind.RESUME, ActionKind.GROW)


@dataclass
class _InFlight:
    seq: int
    action: Action
    sent_at: float


class CommandTracker:
    """Per-island command queues; one command in flight per island until its Ack or deadline."""

    def __init__(self, supervisor: Supervisor, clock: Callable[[], float],
                 deadline_s: float = COMMAND_DEADLINE_S) -> None:
        self.supervisor = supervisor
        self.clock = clock
        self.deadline_s = deadline_s
        self.queues: dict[int, deque[Action]] = {}
        self.in_flight: dict[int, _InFlight] = {}
        self.next_seq = 0
        self.expired = 0

    def queue(self, action: Action) -> None:
        self.queues.setdefault(action.island, deque()).append(action)

    def forget(self, island: int) -> None:
        """The island's worker is gone: nothing queued for it may reach its successor."""
        self.queues.pop(island, None)
        self.in_flight.pop(island, None)

    def on_ack(self, ack: Ack) -> bool:
        """True if `ack` settled the island's command in flight (a hibernation settles on exit)."""
        flight = self.in_flight.get(ack.island)
        if flight is None or ack.seq < flight.seq or flight.action.kind == ActionKind.HIBERNATE:
            return False
        del self.in_flight[ack.island]
        return True

    def settle(self) -> list[int]:
        """Drop flights whose island is gone or late, send what is queued; the islands settled."""
        settled = []
        now = self.clock()
        for island, flight in list(self.in_flight.items()):
            gone = not self.supervisor.records[island].live
            if gone or now - flight.sent_at > self.deadline_s:
                if not gone:
                    self.expired += 1
                    logger.warning("[GA] Island %d did not answer %s within %.0fs; not waiting "
                                   "for it", island, flight.action.kind, self.deadline_s)
                    # Queued commands go now, untracked: each would otherwise hold the
                    # controller for another full deadline; a slow island takes them in order.
                    for action in self.queues.pop(island, ()):
                        self._send(action, track=False)
                del self.in_flight[island]
                settled.append(island)
        for island, queued in self.queues.items():
            while queued and island not in self.in_flight:
                self._send(queued.popleft())
        return settled

    def _send(self, action: Action, track: bool = True) -> None:
        if not self.supervisor.records[action.island].live:
            return
        self.next_seq += 1
        if self.supervisor.send_command(action.island, COMMAND_OF_ACTION[action.kind],
                                        action.arg, seq=self.next_seq) and track:
            self.in_flight[action.island] = _InFlight(self.next_seq, action, self.clock())

    def busy_with(self, islands: Iterable[int]) -> bool:
        """True while a command to one of `islands` is in flight or queued."""
        return any(i in self.in_flight or self.queues.get(i) for i in islands)


class PressureController:
    """Turn memory samples into actions on islands, per pressure domain (see the module docstring)."""

    def __init__(self, manager: MemoryManager, backend: Backend, supervisor: Supervisor,
                 bus: EventBus, clock: Callable[[], float], *, interval: float,
                 min_population: int, target_population: int, best_island: Callable[[], int | None],
                 command_deadline_s: float = COMMAND_DEADLINE_S) -> None:
        self.manager = manager
        self.backend = backend
        self.supervisor = supervisor
        self.bus = bus
        self.clock = clock
        self.interval = interval
        self.populations = (min_population, target_population)
        self.best_island = best_island
        self.commands = CommandTracker(supervisor, clock, command_deadline_s)
        self.domains: dict[str, PressureDomain] = {}  # made at the first poll that sees each
        self.memory_event_at = -float("inf")
        self.peak_bytes = 0  # the highest PSS total of one reading, every domain together
        self.away = AwayIslands(3 * interval)

    # -- domains ---------------------------------------------------------------------------
    def current_domains(self) -> list[PressureDomain]:
        """The backend's domains now; one seen for the first time (a node that joined) gets
        its own monitor, with the run's thresholds and hysteresis."""
        current = []
        for domain in self.backend.domains():
            part = self.domains.get(domain.name)
            if part is None:
                part = PressureDomain(domain.name, self._monitor_for(domain), self.interval)
                self.domains[domain.name] = part
            current.append(part)
        return current

    def _monitor_for(self, domain: Domain) -> MemoryMonitor:
        run = self.manager.monitor
        if domain.budget_bytes is None:
            return run  # the run's own budget: one machine, as always
        reserve = run.reserve_bytes if domain.reserve_bytes is None else domain.reserve_bytes
        return MemoryMonitor(None, domain.budget_bytes, interval=self.interval,
                             thresholds=run.thresholds, reserve_bytes=reserve)

    def domain_of(self, island: int) -> PressureDomain | None:
        """The domain whose islands `island` was counted in at the last reading."""
        return next((d for d in self.domains.values() if island in d.islands),
                    self.domains.get(self.backend.domain_of(island) or ""))

    def _assign(self, current: list[PressureDomain]) -> None:
        # Live islands belong where they run; one waiting to come back whose domain is
        # unknown or gone (a lost node) waits in the domain with the most room.
        by_name = {d.name: d for d in current}
        homeless = []
        for part in current:
            part.islands = []
        for island, record in self.supervisor.records.items():
            name = self.backend.domain_of(island)
            if name in by_name:
                by_name[name].islands.append(island)
            elif not record.live:
                homeless.append(island)
        if homeless and current:
            max(current, key=lambda d: d.budget_bytes - d.used_bytes).islands.extend(homeless)

    def _fresh(self, islands: Iterable[int]) -> None:
        """Actions on `islands` settled: their domains measure again before the next one."""
        for island in islands:
            part = self.domain_of(island)
            if part is not None:
                part.samples_after_action = 0

    # -- sampling --------------------------------------------------------------------------
    def next_sample_in(self) -> float:
        """Seconds until the next memory sample is due: the run loop waits no longer."""
        now = self.clock()
        return min((d.schedule.wait_s(now) for d in self.domains.values()), default=0.0)

    def poll(self) -> None:
        now = self.clock()
        self._fresh(self.commands.settle())
        current = self.current_domains()
        if not any(d.schedule.due(now) for d in current):
            return
        try:
            reading = self.backend.memory()
        except Exception as error:  # a failed reading keeps the level; the run goes on
            for part in current:
                part.schedule.sampled(now, None)
            logger.warning("[GA] Memory reading failed, keeping level %s: %s", self.level, error)
            return
        for island, measured in reading.workers.items():
            self.supervisor.records[island].measured_bytes = measured.uss
        changed = [self._observe(part, reading, now, many=len(current) > 1) for part in current]
        self._assign(current)
        used = reading.to_sample().pss_total
        self.peak_bytes = max(self.peak_bytes, used)
        if now - self.memory_event_at >= MEMORY_EVENT_S or any(changed):
            self.memory_event_at = now
            self._memory_event(reading, current, used)
        for part in current:
            self._act_on(part)

    def _observe(self, part: PressureDomain, reading: MemoryReading, now: float, *,
                 many: bool) -> bool:
        """Feed the domain's monitor its share of `reading`; True if its level changed."""
        workers = [w for w in reading.workers if self.backend.domain_of(w) == part.name]
        sample = reading.to_sample(part.name, workers)
        old = part.level
        level = part.monitor.observe(sample)
        part.samples_after_action += 1
        part.schedule.sampled(now, sample.pss_total)
        if level == old:
            return False
        where = {"domain": part.name} if many else {}
        if many:
            logger.info("[GA] Memory on %s: %s -> %s (%s of %s)", part.name[:12], old, level,
                        format_bytes(sample.pss_total), format_bytes(part.budget_bytes))
        self.bus.publish("pressure", old=str(old), new=str(level), used_bytes=sample.pss_total,
                         **where)
        if level > old and part.name == reading.own_domain:  # the coordinator runs there
            self.manager.cleanup("aggressive" if level >= PressureLevel.HIGH else "normal")
        return True

    def _memory_event(self, reading: MemoryReading, current: list[PressureDomain],
                      used: int) -> None:
        extra: dict[str, Any] = {}
        budget = self.manager.budget_bytes
        if len(current) > 1:
            budget = sum(d.budget_bytes for d in current)
            extra["domains"] = {d.name: {"used_bytes": d.used_bytes, "budget_bytes": d.budget_bytes,
                                         "level": str(d.level), "islands": sorted(d.islands)}
                                for d in current}
        self.bus.publish("memory", used_bytes=used, budget_bytes=budget,
                         level=str(self.level), coordinator_bytes=reading.own.pss, islands={
                             str(i): {"pss": m.pss, "uss": m.uss,
                                      "slice": self.manager.slice_bytes(i)}
                             for i, m in sorted(reading.workers.items())}, **extra)

    def _act_on(self, part: PressureDomain) -> None:
        sample = part.monitor.last_sample
        if sample is None:
            return
        instant = part.instant_level(sample)
        if instant == PressureLevel.NORMAL < part.level:
            return  # the pressure is gone in the latest reading: relief waits for the level
        if sample.pss_total >= part.budget_bytes:
            # Over the budget is no spike to smooth: the hysteresis' second sample could
            # come 100-200 MB later at the growth rates that get here.
            self.act(part, PressureLevel.EMERGENCY)
            return
        self.act(part, min(part.level, instant))

    def domain_summary(self) -> dict[str, dict[str, Any]]:
        """Per domain: its budget, the peak of its own PSS total, the islands last in it."""
        return {d.name: {"budget_bytes": d.budget_bytes, "peak_bytes": d.monitor.peak_bytes,
                         "islands": sorted(d.islands)} for d in self.domains.values()}

    @property
    def level(self) -> PressureLevel:
        """The highest level of any domain (one machine: the run's level)."""
        return max((d.level for d in self.domains.values()), default=self.manager.level)

    def on_ack(self, ack: Ack) -> None:
        self.bus.publish("ack", island=ack.island, command=str(CommandKind(ack.command)),
                         seq=ack.seq, population=ack.population, generation=ack.generation)
        if self.commands.on_ack(ack):
            self._fresh([ack.island])

    # -- acting ----------------------------------------------------------------------------
    def act(self, part: PressureDomain, level: PressureLevel) -> None:
        """Ask the policy what `level` in `part` calls for, on that domain's islands only."""
        # An action settles when answered and measured again: the next one sees its effect.
        # At EMERGENCY nothing waits on an island's answer: the kill needs none.
        busy = self.commands.busy_with(part.islands) and level < PressureLevel.EMERGENCY
        if busy or part.samples_after_action < 1:
            return
        changed = level != part.policy_level
        now = self.clock()
        if changed:
            part.last_action_at = now
        elif level == PressureLevel.NORMAL and now - part.last_action_at < 3 * self.interval:
            return  # one step per calm period
        min_population, target = self.populations
        actions = decide(level, self.supervisor.snapshot(), min_population=min_population,
                         target_population=target, level_changed=changed,
                         best_island=self.best_island(), islands=part.islands)
        part.policy_level = level
        for action in actions:
            if action.kind == ActionKind.RESUME and not self.may_return(part, action.island):
                continue  # its slice does not fit yet, or it is backing off
            self.perform(part, level, action)

    def defer_restart(self, island: int, exitcode: int | None) -> bool:
        """The supervisor's question for a crashed island: wait for room before restarting?"""
        part = self.domain_of(island)
        level = part.level if part is not None else self.level
        if exitcode != -signal.SIGKILL or level < PressureLevel.HIGH:
            return False
        self.commands.forget(island)
        self.away.leave(island, self.clock(), shrink=True)
        self._fresh([island])
        return True

    def may_return(self, part: PressureDomain, island: int) -> bool:
        return self.away.may_return(island, self.clock(), part.used_bytes,
                                    self.manager.slice_bytes(island), part.budget_bytes)

    def perform(self, part: PressureDomain, level: PressureLevel, action: Action) -> None:
        island = action.island
        many = len(self.domains) > 1
        if action.kind in MAJOR_ACTIONS:
            (logger.warning if level >= PressureLevel.HIGH else logger.info)(
                "[GA] Memory %s%s: %s island %d (%s of %s)", level,
                f" on {part.name[:12]}" if many else "", action.kind, island,
                format_bytes(part.used_bytes), format_bytes(part.budget_bytes))
            part.last_action_at = self.clock()
        self.bus.publish("action", level=str(level), action=str(action.kind), island=island,
                         arg=action.arg, **({"domain": part.name} if many else {}))
        if action.kind == ActionKind.TERMINATE:
            self.commands.forget(island)
            self.supervisor.terminate(island)
            self.away.leave(island, self.clock(), shrink=True)
            part.samples_after_action = 0
        elif action.kind == ActionKind.RESUME:
            self.commands.forget(island)
            from_checkpoint = self.supervisor.restart(island)
            if from_checkpoint is None:
                return
            self.bus.publish("restart", island=island, reason="resume",
                             from_checkpoint=from_checkpoint)
            if self.away.returned(island):
                # Queued before its first generation, so it runs shrunk from the start.
                self.commands.queue(Action(ActionKind.SHRINK, island, 0.5))
            part.samples_after_action = 0
        else:
            if action.kind == ActionKind.HIBERNATE:
                self.away.leave(island, self.clock(), shrink=False)
            self.commands.queue(action)
        self.commands.settle()


__all__ = ["COMMAND_DEADLINE_S", "AwayIslands", "CommandTracker", "PressureController",
           "PressureDomain", "SampleSchedule"]

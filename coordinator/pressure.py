"""The pressure controller: memory samples in, the policy's actions out, one at a time.

Covers: `CommandTracker` (commands to islands with sequence numbers, one in flight per
island, each with a deadline: an island that does not answer in time no longer holds
the controller; the supervisor's heartbeat deals with a stuck one) and
`PressureController`: `poll()` takes a memory sample from the backend every monitor
interval, sooner while usage climbs fast towards the budget (`SampleSchedule`), feeds the MemoryManager's hysteresis, publishes `memory` events every
MEMORY_EVENT_S and `pressure` events on level changes, and, when no action is in
flight (acknowledged and re-measured), asks the pure `coordinator.policy.decide` what
to do and does it: commands for cache / growth / shrink / grow / hibernate, the
supervisor for terminate (emergency) and resume (calm period). It acts no harder than
the latest sample supports (the hysteresis level lags after memory was freed), at
EMERGENCY it waits for no island's answer, and `AwayIslands` brings an island back
only when its slice fits beside what is in use, with a doubling backoff; an island
SIGKILLed while memory is HIGH or worse (the kernel's OOM killer, most likely) is sent
away the same way instead of being restarted at once (`defer_restart`).

Does not cover: the thresholds and hysteresis (`memory.monitor`), the policy table
(`coordinator.policy`), starting processes (`coordinator.supervisor`, the backend).
"""

from __future__ import annotations

import logging
import signal
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from coordinator.backend import Backend
from coordinator.events import EventBus
from coordinator.policy import Action, ActionKind, decide
from coordinator.supervisor import Supervisor
from islands.protocol import Ack, CommandKind
from memory import MemoryManager, MemorySample, PressureLevel
from memory.budget import format_bytes

logger = logging.getLogger("islands.run")

COMMAND_DEADLINE_S = 5.0
FASTEST_SAMPLE_S = 0.05  # the run loop waits no longer than the next sample (`next_sample_in`)
RATE_HALF_LIFE_S = 10.0
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

    def settle(self) -> bool:
        """Drop flights whose island is gone or late, send what is queued; True if any settled."""
        settled = False
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
                settled = True
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

    @property
    def busy(self) -> bool:
        return bool(self.in_flight) or any(self.queues.values())


class SampleSchedule:
    """When to sample memory next: every `interval`, sooner while usage may climb towards
    the budget: at the fastest growth seen lately (a rate remembered with a 10 s half-life,
    so an island restarted after a kill is watched closely from its first second), at
    least two samples before the budget would be reached; never more often than
    `fastest`. A problem that grows 1 GB/s overshot a 600 MB budget by a third between
    0.5 s samples."""

    def __init__(self, interval: float, budget_bytes: int, fastest: float = FASTEST_SAMPLE_S) -> None:
        self.interval = interval
        self.budget_bytes = budget_bytes
        self.fastest = min(fastest, interval)
        self.last_t = -float("inf")
        self.last_used: int | None = None
        self.rate = 0.0  # bytes per second, remembered (see the class docstring)
        self.delay = interval

    def due(self, now: float) -> bool:
        return now - self.last_t >= self.delay

    def wait_s(self, now: float) -> float:
        """Seconds until the next sample is due (0 if it is)."""
        return max(0.0, self.last_t + self.delay - now)

    def sampled(self, now: float, used_bytes: int | None) -> None:
        """A sample was taken at `now` (`None`: the reading failed)."""
        self.delay = self.interval
        last_t, last_used = self.last_t, self.last_used
        if used_bytes is None or last_used is None or now <= last_t:
            self.last_t, self.last_used = now, used_bytes if used_bytes is not None else last_used
            return
        growth = max(used_bytes - last_used, 0) / (now - last_t)
        self.rate = max(growth, self.rate * 0.5 ** ((now - last_t) / RATE_HALF_LIFE_S))
        if self.rate > 0:
            room = max(self.budget_bytes - used_bytes, 0)
            self.delay = min(self.interval, max(self.fastest, room / self.rate / 2))
        self.last_t, self.last_used = now, used_bytes


class AwayIslands:
    """Islands the controller sent away (hibernated, terminated) and when each may come back.

    One comes back only when its slice fits beside what is in use now, and not before
    its backoff: a calm period, doubled each further time it has been sent away, so an
    island that rebuilds the same peak does not thrash in and out.
    """

    def __init__(self, calm_s: float) -> None:
        self.calm_s = calm_s
        self.times_away: dict[int, int] = {}
        self.not_before: dict[int, float] = {}
        self.shrink_on_return: set[int] = set()

    def leave(self, island: int, now: float, *, shrink: bool) -> None:
        self.times_away[island] = times = self.times_away.get(island, 0) + 1
        self.not_before[island] = now + self.calm_s * 2 ** (times - 1)
        if shrink:  # it would rebuild the same peak at once at full size
            self.shrink_on_return.add(island)

    def may_return(self, island: int, now: float, used_bytes: int, slice_bytes: int,
                   budget_bytes: int) -> bool:
        return now >= self.not_before.get(island, now) and used_bytes + slice_bytes <= budget_bytes

    def returned(self, island: int) -> bool:
        """True if it should come back shrunk."""
        self.not_before.pop(island, None)
        shrink = island in self.shrink_on_return
        self.shrink_on_return.discard(island)
        return shrink


class PressureController:
    """Turn memory samples into actions on islands (see the module docstring)."""

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
        self.schedule = SampleSchedule(interval, manager.budget_bytes)
        self.memory_event_at = -float("inf")
        self.samples_after_action = 1  # fresh samples since the last action settled
        self.policy_level = PressureLevel.NORMAL
        self.last_action_at = 0.0
        self.away = AwayIslands(3 * interval)

    # -- sampling --------------------------------------------------------------------------
    def next_sample_in(self) -> float:
        """Seconds until the next memory sample is due: the run loop waits no longer."""
        return self.schedule.wait_s(self.clock())

    def poll(self) -> None:
        now = self.clock()
        if self.commands.settle():
            self.samples_after_action = 0
        if not self.schedule.due(now):
            return
        try:
            reading = self.backend.memory()
        except Exception as error:  # a failed reading keeps the level; the run goes on
            self.schedule.sampled(now, None)
            logger.warning("[GA] Memory reading failed, keeping level %s: %s", self.level, error)
            return
        old = self.manager.level
        sample = reading.to_sample()
        level = self.manager.observe(sample)
        self.samples_after_action += 1
        for island, measured in reading.workers.items():
            self.supervisor.records[island].measured_bytes = measured.uss
        used = sample.pss_total
        self.schedule.sampled(now, used)
        if level != old:
            self.bus.publish("pressure", old=str(old), new=str(level), used_bytes=used)
            if level > old:
                self.manager.cleanup("aggressive" if level >= PressureLevel.HIGH else "normal")
        if now - self.memory_event_at >= MEMORY_EVENT_S or level != old:
            self.memory_event_at = now
            self.bus.publish("memory", used_bytes=used, budget_bytes=self.manager.budget_bytes,
                             level=str(level), coordinator_bytes=reading.own.pss, islands={
                                 str(i): {"pss": m.pss, "uss": m.uss,
                                          "slice": self.manager.slice_bytes(i)}
                                 for i, m in sorted(reading.workers.items())})
        instant = self.instant_level(sample)
        if instant == PressureLevel.NORMAL < level:
            return  # the pressure is gone in the latest reading: relief waits for the level
        if used >= self.manager.budget_bytes:
            # Over the budget is no spike to smooth: the hysteresis' second sample could
            # come 100-200 MB later at the growth rates that get here.
            self.act(PressureLevel.EMERGENCY)
            return
        self.act(min(level, instant))

    @property
    def level(self) -> PressureLevel:
        return self.manager.level

    def instant_level(self, sample: MemorySample) -> PressureLevel:
        """What this one sample stands for: the controller acts no harder than the latest
        reading supports (the hysteresis level may lag after an action freed memory)."""
        monitor = self.manager.monitor
        level = monitor.thresholds.level_of(sample.pss_total / monitor.budget_bytes)
        if monitor.reserve_bytes > 0 and sample.host_available_bytes < monitor.reserve_bytes:
            level = max(level, PressureLevel.CRITICAL)
        return level

    def on_ack(self, ack: Ack) -> None:
        self.bus.publish("ack", island=ack.island, command=str(CommandKind(ack.command)),
                         seq=ack.seq, population=ack.population, generation=ack.generation)
        if self.commands.on_ack(ack):
            self.samples_after_action = 0

    # -- acting ----------------------------------------------------------------------------
    def act(self, level: PressureLevel) -> None:
        # An action settles when answered and measured again: the next one sees its effect.
        # At EMERGENCY nothing waits on an island's answer: the kill needs none.
        busy = self.commands.busy and level < PressureLevel.EMERGENCY
        if busy or self.samples_after_action < 1:
            return
        changed = level != self.policy_level
        now = self.clock()
        if changed:
            self.last_action_at = now
        elif level == PressureLevel.NORMAL and now - self.last_action_at < 3 * self.interval:
            return  # one step per calm period
        min_population, target = self.populations
        actions = decide(level, self.supervisor.snapshot(), min_population=min_population,
                         target_population=target, level_changed=changed,
                         best_island=self.best_island())
        self.policy_level = level
        for action in actions:
            if action.kind == ActionKind.RESUME and not self.may_return(action.island):
                continue  # its slice does not fit yet, or it is backing off
            self.perform(level, action)

    def defer_restart(self, island: int, exitcode: int | None) -> bool:
        """The supervisor's question for a crashed island: wait for room before restarting?"""
        if exitcode != -signal.SIGKILL or self.level < PressureLevel.HIGH:
            return False
        self.commands.forget(island)
        self.away.leave(island, self.clock(), shrink=True)
        self.samples_after_action = 0
        return True

    def may_return(self, island: int) -> bool:
        sample = self.manager.monitor.last_sample
        used = sample.pss_total if sample is not None else 0
        return self.away.may_return(island, self.clock(), used, self.manager.slice_bytes(island),
                                    self.manager.budget_bytes)

    def perform(self, level: PressureLevel, action: Action) -> None:
        island = action.island
        if action.kind in MAJOR_ACTIONS:
            (logger.warning if level >= PressureLevel.HIGH else logger.info)(
                "[GA] Memory %s: %s island %d (%s of %s)", level, action.kind, island,
                format_bytes(self.manager.monitor.last_sample.pss_total
                             if self.manager.monitor.last_sample else 0),
                format_bytes(self.manager.budget_bytes))
            self.last_action_at = self.clock()
        self.bus.publish("action", level=str(level), action=str(action.kind), island=island,
                         arg=action.arg)
        if action.kind == ActionKind.TERMINATE:
            self.commands.forget(island)
            self.supervisor.terminate(island)
            self.away.leave(island, self.clock(), shrink=True)
            self.samples_after_action = 0
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
            self.samples_after_action = 0
        else:
            if action.kind == ActionKind.HIBERNATE:
                self.away.leave(island, self.clock(), shrink=False)
            self.commands.queue(action)
        self.commands.settle()


__all__ = ["COMMAND_DEADLINE_S", "CommandTracker", "PressureController", "SampleSchedule"]

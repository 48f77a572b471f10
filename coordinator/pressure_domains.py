"""One pressure domain's part of the pressure controller, and what it keeps per island.

Covers: `PressureDomain` (the islands that share one memory budget: this machine, or
one Ray node; its own `MemoryMonitor` (same thresholds and hysteresis as the run's),
when to sample it, and the pacing of its actions: samples since its last action, the
level the policy last saw, when it last acted), `SampleSchedule` (when to sample
next, sooner while usage climbs fast towards the budget) and `AwayIslands` (islands
sent away and when each may come back).

Does not cover: taking readings and acting on them (`coordinator.pressure`), which
domain an island is in (the backend's `domains()` / `domain_of()`), the hysteresis
itself (`memory.monitor`), the policy (`coordinator.policy`).
"""

from __future__ import annotations

from memory import MemorySample, PressureLevel
from memory.monitor import MemoryMonitor

FASTEST_SAMPLE_S = 0.05  # the run loop waits no longer than the next sample (`next_sample_in`)
RATE_HALF_LIFE_S = 10.0


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


class PressureDomain:
    """One domain's monitor, sample schedule and action pacing (see the module docstring)."""

    def __init__(self, name: str, monitor: MemoryMonitor, interval: float) -> None:
        self.name = name
        self.monitor = monitor
        self.schedule = SampleSchedule(interval, monitor.budget_bytes)
        self.islands: list[int] = []  # in it at the last reading (or last seen there)
        self.samples_after_action = 1  # fresh samples since its last action settled
        self.policy_level = PressureLevel.NORMAL
        self.last_action_at = 0.0

    @property
    def level(self) -> PressureLevel:
        return self.monitor.level

    @property
    def budget_bytes(self) -> int:
        return self.monitor.budget_bytes

    @property
    def used_bytes(self) -> int:
        """PSS total of the last sample (0 before the first)."""
        sample = self.monitor.last_sample
        return sample.pss_total if sample is not None else 0

    def instant_level(self, sample: MemorySample) -> PressureLevel:
        """What this one sample stands for: the controller acts no harder than the latest
        reading supports (the hysteresis level may lag after an action freed memory)."""
        monitor = self.monitor
        level = monitor.thresholds.level_of(sample.pss_total / monitor.budget_bytes)
        if monitor.reserve_bytes > 0 and sample.host_available_bytes < monitor.reserve_bytes:
            level = max(level, PressureLevel.CRITICAL)
        return level


__all__ = ["AwayIslands", "PressureDomain", "SampleSchedule"]

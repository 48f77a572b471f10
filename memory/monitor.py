"""Memory pressure: turning samples into a level with hysteresis, on a background thread.

Covers: `PressureLevel` (NORMAL < ELEVATED < HIGH < CRITICAL < EMERGENCY), `Thresholds`
(fractions of the budget and the hysteresis counts, validated once), `Hysteresis` (the
level as samples come, written out in plain loops), and `MemoryMonitor`,
which keeps the level, the last sample and the peak, and calls subscribers when the level
changes. It is fed in one of two ways: `observe(sample)` with a sample taken elsewhere (e.g.
built from numbers other processes reported), or, given a `MemoryProbe` and a `pids`
callable, by sampling itself on `tick()` or every `interval` seconds after `start()`.

Does not cover: what to do at a level (the coordinator's policy maps the level and what it
knows about its workers to actions), measuring (`memory.probe`), or the budget itself
(`memory.budget`).

Hysteresis, per sample with ratio = PSS total / budget:
- going up: a level is entered after `enter_samples` consecutive samples at or above its
  threshold; when several levels are sustained, the highest one is entered directly;
- going down: a level is left after `leave_samples` consecutive samples below its threshold
  minus `leave_margin`; the level keeps dropping while the next lower level was also left;
- host available RAM under `reserve_bytes` makes CRITICAL at once (unless already higher),
  and holds it until `leave_samples` samples in a row have the host above the reserve;
- a probe error is logged and counted, and the level stays as it was.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from memory.budget import BudgetError, NamedIntEnum, format_bytes
from memory.probe import MemoryProbe, MemorySample

_LOGGER = logging.getLogger("islands.memory")


class PressureLevel(NamedIntEnum):
    NORMAL = 0
    ELEVATED = 1
    HIGH = 2
    CRITICAL = 3
    EMERGENCY = 4


@dataclass(frozen=True)
class Thresholds:
    """Level thresholds as fractions of the budget, and the hysteresis counts."""

    elevated: float = 0.60
    high: float = 0.75
    critical: float = 0.85
    emergency: float = 0.95
    enter_samples: int = 2
    leave_samples: int = 3
    leave_margin: float = 0.10

    def __post_init__(self) -> None:
        fractions = [
            ("elevated", self.elevated),
            ("high", self.high),
            ("critical", self.critical),
            ("emergency", self.emergency),
        ]
        for name, value in fractions:
            if not (isinstance(value, (int, float)) and 0 < value <= 1):
                raise BudgetError(f"invalid {name} threshold {value!r}: must be in (0, 1]")
        for (low_name, low), (high_name, high) in zip(fractions, fractions[1:], strict=False):
            if not low < high:
                raise BudgetError(
                    f"thresholds out of order: {low_name} ({low}) must be below "
                    f"{high_name} ({high})"
                )
        if not (isinstance(self.enter_samples, int) and self.enter_samples >= 1):
            raise BudgetError(f"invalid enter_samples {self.enter_samples!r}: must be >= 1")
        if not (isinstance(self.leave_samples, int) and self.leave_samples >= 1):
            raise BudgetError(f"invalid leave_samples {self.leave_samples!r}: must be >= 1")
        if not (isinstance(self.leave_margin, (int, float)) and 0 <= self.leave_margin < 1):
            raise BudgetError(f"invalid leave_margin {self.leave_margin!r}: must be in [0, 1)")

    def level_of(self, ratio: float) -> PressureLevel:
        """The level one sample at `ratio` of the budget stands for, without hysteresis."""
        reached = PressureLevel.NORMAL
        for level in _RAISED_LEVELS:
            if ratio >= self.threshold(level):
                reached = level
        return reached

    def threshold(self, level: PressureLevel) -> float:
        """The fraction of the budget at which `level` starts (0.0 for NORMAL)."""
        return {
            PressureLevel.NORMAL: 0.0,
            PressureLevel.ELEVATED: self.elevated,
            PressureLevel.HIGH: self.high,
            PressureLevel.CRITICAL: self.critical,
            PressureLevel.EMERGENCY: self.emergency,
        }[level]


LevelCallback = Callable[[PressureLevel, PressureLevel, MemorySample], None]

_RAISED_LEVELS = [level for level in PressureLevel if level > PressureLevel.NORMAL]


class Hysteresis:
    """The level as samples come: thresholds, consecutive counts, the host reserve rule."""

    def __init__(self, budget_bytes: int, thresholds: Thresholds, reserve_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.thresholds = thresholds
        self.reserve_bytes = reserve_bytes
        self.level = PressureLevel.NORMAL
        self.last_change_t: float | None = None
        # Consecutive samples at/above each level's threshold, and below its leave mark.
        self.above = {level: 0 for level in _RAISED_LEVELS}
        self.below = {level: 0 for level in _RAISED_LEVELS}

    def update(self, sample: MemorySample) -> PressureLevel:
        ratio = sample.pss_total / self.budget_bytes
        thresholds = self.thresholds
        for level in _RAISED_LEVELS:
            if ratio >= thresholds.threshold(level):
                self.above[level] += 1
            else:
                self.above[level] = 0
            if ratio < thresholds.threshold(level) - thresholds.leave_margin:
                self.below[level] += 1
            else:
                self.below[level] = 0

        host_low = self.reserve_bytes > 0 and sample.host_available_bytes < self.reserve_bytes
        if host_low:
            # Leaving CRITICAL or below needs a fresh run of calm samples with the host fine.
            for level in _RAISED_LEVELS:
                if level <= PressureLevel.CRITICAL:
                    self.below[level] = 0

        level = self.level
        sustained = PressureLevel.NORMAL
        for candidate in _RAISED_LEVELS:
            if self.above[candidate] >= thresholds.enter_samples:
                sustained = candidate
        if sustained > level:
            level = sustained
        else:
            while level > PressureLevel.NORMAL and self.below[level] >= thresholds.leave_samples:
                level = PressureLevel(level - 1)
        if host_low and level < PressureLevel.CRITICAL:
            level = PressureLevel.CRITICAL

        if level != self.level:
            self.last_change_t = sample.t
        self.level = level
        return level


class MemoryMonitor:
    """Keeps the pressure level: `observe()` feeds it a sample; with a probe and `pids`,
    `tick()` samples and observes once and `start()` does so on a thread."""

    def __init__(
        self,
        probe: MemoryProbe | None,
        budget_bytes: int,
        *,
        pids: Callable[[], Iterable[int]] | None = None,
        interval: float = 0.5,
        thresholds: Thresholds | None = None,
        reserve_bytes: int = 0,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger | None = None,
    ):
        if budget_bytes <= 0:
            raise BudgetError(f"invalid memory budget {budget_bytes}: must be positive")
        if interval <= 0:
            raise BudgetError(f"invalid monitor interval {interval!r}: must be positive")
        if reserve_bytes < 0:
            raise BudgetError(f"invalid memory reserve {reserve_bytes}: cannot be negative")
        self.probe = probe
        self.interval = float(interval)
        self.hysteresis = Hysteresis(int(budget_bytes), thresholds or Thresholds(), int(reserve_bytes))
        self._pids = pids
        self._clock = clock
        self._log = logger if logger is not None else _LOGGER

        self._last_sample: MemorySample | None = None
        self._peak_bytes = 0
        self.samples_taken = 0
        self.probe_errors = 0
        self._subscribers: list[LevelCallback] = []
        self._state_lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None

    # --- state -------------------------------------------------------------------------
    @property
    def level(self) -> PressureLevel:
        return self.hysteresis.level

    @property
    def budget_bytes(self) -> int:
        return self.hysteresis.budget_bytes

    @property
    def thresholds(self) -> Thresholds:
        return self.hysteresis.thresholds

    @property
    def reserve_bytes(self) -> int:
        return self.hysteresis.reserve_bytes

    @property
    def last_change_t(self) -> float | None:
        return self.hysteresis.last_change_t

    @property
    def last_sample(self) -> MemorySample | None:
        return self._last_sample

    @property
    def peak_bytes(self) -> int:
        """The highest PSS total seen so far."""
        return self._peak_bytes

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def can_sample(self) -> bool:
        """True when this monitor has a probe and `pids`, so `tick()` and `start()` work."""
        return self.probe is not None and self._pids is not None

    def subscribe(self, callback: LevelCallback) -> None:
        """Call `callback(old, new, sample)` on every level change (from the thread that
        called `observe()` or `tick()`; the monitor's own thread after `start()`)."""
        self._subscribers.append(callback)

    # --- one step ----------------------------------------------------------------------
    def _require_probe(self, action: str) -> tuple[MemoryProbe, Callable[[], Iterable[int]]]:
        if self.probe is None or self._pids is None:
            missing = " and no ".join(
                name
                for name, value in (("probe", self.probe), ("pids", self._pids))
                if value is None
            )
            raise ValueError(
                f"cannot {action}: this memory monitor has no {missing} to sample with; "
                "feed it samples with observe() instead"
            )
        return self.probe, self._pids

    def tick(self) -> PressureLevel:
        """Take one sample and `observe()` it; a probe error keeps the level (and is counted).

        Raises ValueError when the monitor has no probe or no `pids`.
        """
        probe, pids = self._require_probe("tick")
        try:
            sample = probe.sample(list(pids()))
        except Exception as error:
            self.probe_errors += 1
            self._log.warning(
                "[MONITOR] Memory probe failed, keeping level %s: %s", self.level, error
            )
            return self.level
        return self.observe(sample)

    def observe(self, sample: MemorySample) -> PressureLevel:
        """Update the level from one sample taken elsewhere; return the level after it.

        Same hysteresis, peak tracking, logging and subscriber calls as `tick()`; safe to
        call from any thread (updates are serialized).
        """
        with self._state_lock:
            old = self.level
            self.samples_taken += 1
            self._last_sample = sample
            self._peak_bytes = max(self._peak_bytes, sample.pss_total)
            new = self.hysteresis.update(sample)
        if new != old:
            ratio = sample.pss_total / self.budget_bytes
            self._log.info(
                "[MONITOR] Memory pressure: %s -> %s (PSS %s of budget %s, %.0f%%; host available %s)",
                old,
                new,
                format_bytes(sample.pss_total),
                format_bytes(self.budget_bytes),
                100 * ratio,
                format_bytes(sample.host_available_bytes),
            )
            for callback in list(self._subscribers):
                try:
                    callback(old, new, sample)
                except Exception:
                    self._log.exception("[MONITOR] Pressure subscriber %r failed", callback)
        return new

    # --- background thread ---------------------------------------------------------------
    def start(self) -> None:
        """Sample every `interval` seconds on a daemon thread until `stop()`.

        Raises ValueError when the monitor has no probe or no `pids`.
        """
        self._require_probe("start")
        if self.running:
            return
        self._stop_event.clear()
        self._thread = threading.Thread(
            target=self._run, name="islands-memory-monitor", daemon=True
        )
        self._thread.start()
        self._log.info(
            "[MONITOR] Memory pressure monitor started (budget %s, every %gs)",
            format_bytes(self.budget_bytes),
            self.interval,
        )

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the thread and wait for it to finish (it is mid-sample at most)."""
        thread = self._thread
        if thread is None:
            return
        self._stop_event.set()
        if thread is not threading.current_thread():  # a subscriber may call stop()
            thread.join(timeout)
        self._thread = None
        self._log.info("[MONITOR] Memory pressure monitor stopped")

    def _run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.tick()
            except Exception:
                # Never let the monitor thread die silently; the next tick tries again.
                self._log.exception("[MONITOR] Unexpected error in memory monitor")
            self._stop_event.wait(self.interval)


__all__ = ["Hysteresis", "LevelCallback", "MemoryMonitor", "PressureLevel", "Thresholds"]

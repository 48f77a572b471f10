"""memory.monitor: hysteresis driven by tick() on a scripted probe and by observe(); one
real-thread test."""

import logging
import threading

import pytest

from memory.budget import BudgetError
from memory.monitor import MemoryMonitor, PressureLevel, Thresholds
from memory.probe import MemorySample, ProcessProbe, ScriptedProbe

BUDGET = 1000
N, E, H, C, X = (
    PressureLevel.NORMAL,
    PressureLevel.ELEVATED,
    PressureLevel.HIGH,
    PressureLevel.CRITICAL,
    PressureLevel.EMERGENCY,
)


def make_monitor(items, **kwargs):
    probe = ScriptedProbe(items, host_available_bytes=kwargs.pop("host_available", 1 << 40))
    return MemoryMonitor(probe, BUDGET, pids=lambda: [1], **kwargs)


def run(monitor, n):
    return [monitor.tick() for _ in range(n)]


def test_level_names():
    assert str(PressureLevel.HIGH) == "high"
    assert f"{PressureLevel.EMERGENCY}" == "emergency"
    assert PressureLevel.CRITICAL > PressureLevel.HIGH


@pytest.mark.parametrize(
    ("ratio", "level"),
    [(0.60, E), (0.75, H), (0.85, C), (0.95, X)],
)
def test_each_level_entered_after_two_samples_and_left_after_three(ratio, level):
    pss = int(ratio * BUDGET)
    # Just below the leave mark (threshold - 0.10) of this level.
    calm = int((ratio - 0.10) * BUDGET) - 1
    monitor = make_monitor([pss, pss, calm, calm, calm])
    assert run(monitor, 2) == [N, level]
    levels = run(monitor, 3)
    assert levels[:2] == [level, level]
    assert levels[2] < level


def test_stays_between_threshold_and_leave_mark():
    # 0.70 is below HIGH (0.75) but above its leave mark (0.65): HIGH holds.
    monitor = make_monitor([800, 800] + [700] * 10)
    assert run(monitor, 12) == [N, H] + [H] * 10


def test_drops_one_level_at_a_time_as_marks_are_crossed():
    # From CRITICAL, 0.60 is below the leave marks of CRITICAL (0.75) and HIGH (0.65), but
    # not of ELEVATED (0.50): after three samples the level lands on ELEVATED.
    monitor = make_monitor([900, 900, 600, 600, 600, 100, 100, 100])
    assert run(monitor, 8) == [N, C, C, C, E, E, E, N]


def test_from_emergency_straight_to_normal_when_usage_collapses():
    monitor = make_monitor([990, 990, 10, 10, 10])
    assert run(monitor, 5) == [N, X, X, X, N]


def test_single_spike_ignored():
    monitor = make_monitor([100, 990, 100, 990, 100, 100])
    assert run(monitor, 6) == [N] * 6


def test_jumps_to_highest_sustained_level():
    # Two samples both >= HIGH, the second also >= EMERGENCY once: HIGH, not EMERGENCY.
    monitor = make_monitor([800, 990, 990])
    assert run(monitor, 3) == [N, H, X]


def test_probe_error_keeps_level_and_is_counted(caplog):
    monitor = make_monitor([900, 900, RuntimeError("smaps unreadable"), 900])
    with caplog.at_level(logging.WARNING, logger="islands.memory"):
        assert run(monitor, 4) == [N, C, C, C]
    assert monitor.probe_errors == 1
    assert monitor.samples_taken == 3
    assert "[MONITOR] Memory probe failed, keeping level critical: smaps unreadable" in caplog.text


def test_probe_error_does_not_count_as_a_calm_sample():
    monitor = make_monitor([900, 900, 100, 100, OSError("gone"), 100])
    assert run(monitor, 6) == [N, C, C, C, C, N]


def test_host_available_under_reserve_forces_critical_at_once():
    low_host = MemorySample(t=0, pss_by_pid={1: 100}, host_available_bytes=50)
    ok_host = MemorySample(t=0, pss_by_pid={1: 100}, host_available_bytes=10_000)
    probe = ScriptedProbe([ok_host, low_host, low_host, ok_host, ok_host, ok_host])
    monitor = MemoryMonitor(probe, BUDGET, pids=lambda: [1], reserve_bytes=1000)
    # No two-sample wait; held while the host is low; left after three good samples.
    assert run(monitor, 6) == [N, C, C, C, C, N]


def test_host_under_reserve_does_not_lower_emergency():
    high = MemorySample(t=0, pss_by_pid={1: 990}, host_available_bytes=50)
    monitor = MemoryMonitor(ScriptedProbe([high]), BUDGET, pids=lambda: [1], reserve_bytes=1000)
    assert run(monitor, 3) == [C, X, X]


def test_subscribers_get_every_change(caplog):
    monitor = make_monitor([800, 800, 100, 100, 100])
    changes = []
    monitor.subscribe(lambda old, new, sample: changes.append((old, new, sample.pss_total)))
    with caplog.at_level(logging.INFO, logger="islands.memory"):
        run(monitor, 5)
    assert changes == [(N, H, 800), (H, N, 100)]
    assert "[MONITOR] Memory pressure: normal -> high" in caplog.text
    assert "[MONITOR] Memory pressure: high -> normal" in caplog.text


def test_failing_subscriber_does_not_stop_the_others():
    monitor = make_monitor([800, 800])
    seen = []

    def broken(old, new, sample):
        raise ValueError("boom")

    monitor.subscribe(broken)
    monitor.subscribe(lambda old, new, sample: seen.append(new))
    run(monitor, 2)
    assert seen == [H]
    assert monitor.level == H


def test_peak_and_last_sample():
    monitor = make_monitor([300, 700, 200])
    run(monitor, 3)
    assert monitor.peak_bytes == 700
    assert monitor.last_sample.pss_total == 200


def test_custom_hysteresis_counts():
    thresholds = Thresholds(enter_samples=1, leave_samples=1, leave_margin=0.0)
    monitor = make_monitor([800, 700, 590], thresholds=thresholds)
    assert run(monitor, 3) == [H, E, N]


def test_thresholds_out_of_order_rejected():
    with pytest.raises(BudgetError) as info:
        Thresholds(elevated=0.8, high=0.75)
    assert str(info.value) == "thresholds out of order: elevated (0.8) must be below high (0.75)"


@pytest.mark.parametrize("value", [0, -0.1, 1.5])
def test_threshold_outside_unit_interval_rejected(value):
    with pytest.raises(BudgetError, match=r"invalid elevated threshold .*: must be in \(0, 1\]"):
        Thresholds(elevated=value)


def test_monitor_rejects_bad_budget():
    with pytest.raises(BudgetError, match="invalid memory budget -5: must be positive"):
        MemoryMonitor(ScriptedProbe([1]), -5, pids=lambda: [])


# --- observe(): samples taken elsewhere ------------------------------------------------------
def observed(pss_by_key, host_available=1 << 40, t=0.0):
    return MemorySample(t=t, pss_by_pid=dict(pss_by_key), host_available_bytes=host_available)


def test_observe_enters_after_two_and_leaves_after_three_like_tick():
    # Keys are worker ids, not pids; the total is what counts.
    script = [{0: 400, 1: 400}] * 2 + [{0: 660}] * 5 + [{-1: 60, 3: 40}] * 3
    # 800 = HIGH; 660 is under HIGH but above its leave mark (0.65): HIGH holds. 100 is
    # under every leave mark: after three such samples the level drops to NORMAL.
    expected = [N, H, H, H, H, H, H, H, H, N]
    fed = MemoryMonitor(None, BUDGET)
    assert [fed.observe(observed(item)) for item in script] == expected
    ticked = make_monitor([sum(item.values()) for item in script])
    assert run(ticked, len(script)) == expected
    assert fed.samples_taken == ticked.samples_taken == len(script)
    assert fed.peak_bytes == ticked.peak_bytes == 800
    assert fed.level == N and fed.last_sample.pss_total == 100


def test_observe_leaves_only_after_three_samples_below_the_leave_mark():
    fed = MemoryMonitor(None, BUDGET)
    assert [fed.observe(observed({0: 900})) for _ in range(2)] == [N, C]
    # 0.76 is under CRITICAL (0.85) but not under its leave mark (0.75): a calm sample
    # only counts below the mark, and the count restarts when one is above it.
    levels = [fed.observe(observed({0: p})) for p in (749, 749, 760, 749, 749, 749)]
    assert levels == [C, C, C, C, C, H]


def test_observe_fires_subscribers_logs_and_tracks_time(caplog):
    fed = MemoryMonitor(None, BUDGET)
    changes = []
    fed.subscribe(lambda old, new, sample: changes.append((old, new, sample.pss_total, sample.t)))
    with caplog.at_level(logging.INFO, logger="islands.memory"):
        for t, pss in enumerate([990, 990, 10, 10, 10]):
            fed.observe(observed({7: pss}, t=float(t)))
    assert changes == [(N, X, 990, 1.0), (X, N, 10, 4.0)]
    assert fed.last_change_t == 4.0
    assert "[MONITOR] Memory pressure: normal -> emergency" in caplog.text
    assert "[MONITOR] Memory pressure: emergency -> normal" in caplog.text


def test_observe_applies_the_host_reserve():
    fed = MemoryMonitor(None, BUDGET, reserve_bytes=1000)
    assert fed.observe(observed({0: 1}, host_available=10)) == C
    assert [fed.observe(observed({0: 1}, host_available=10_000)) for _ in range(3)] == [C, C, N]


def test_observe_and_tick_feed_the_same_state():
    monitor = make_monitor([900])
    assert monitor.observe(observed({5: 900})) == N
    assert monitor.tick() == C  # the second sustained sample, whichever way it came
    assert monitor.samples_taken == 2


def test_observe_from_many_threads_counts_every_sample():
    fed = MemoryMonitor(None, BUDGET)

    def feed():
        for _ in range(500):
            fed.observe(observed({0: 100}))

    threads = [threading.Thread(target=feed) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fed.samples_taken == 2000
    assert fed.level == N


def test_tick_and_start_without_a_probe_raise():
    fed = MemoryMonitor(None, BUDGET)
    assert not fed.can_sample
    with pytest.raises(
        ValueError, match="cannot tick: this memory monitor has no probe and no pids to sample with"
    ):
        fed.tick()
    with pytest.raises(ValueError, match="cannot start: .*observe"):
        fed.start()
    assert not fed.running
    fed.stop()  # nothing to stop: fine
    no_pids = MemoryMonitor(ScriptedProbe([1]), BUDGET)
    with pytest.raises(ValueError, match="has no pids to sample with"):
        no_pids.tick()
    assert no_pids.probe_errors == 0 and no_pids.samples_taken == 0
    assert make_monitor([1]).can_sample


def test_background_thread_samples_real_process_and_stop_joins(caplog):
    import os

    ticked = threading.Event()
    monitor = MemoryMonitor(ProcessProbe(), 1 << 40, pids=lambda: [os.getpid()], interval=0.01)
    original_tick = monitor.tick

    def counting_tick():
        level = original_tick()
        if monitor.samples_taken >= 3:
            ticked.set()
        return level

    monitor.tick = counting_tick
    with caplog.at_level(logging.INFO, logger="islands.memory"):
        monitor.start()
        thread = monitor._thread
        assert monitor.running
        assert ticked.wait(10), "monitor thread took no samples"
        monitor.stop()
    assert not thread.is_alive()
    assert not monitor.running
    assert monitor.samples_taken >= 3
    assert monitor.last_sample.pss_by_pid[os.getpid()] > 0
    assert monitor.level == N
    assert "[MONITOR] Memory pressure monitor started" in caplog.text
    assert "[MONITOR] Memory pressure monitor stopped" in caplog.text


def test_level_of_a_single_ratio():
    thresholds = Thresholds()
    assert [thresholds.level_of(r) for r in (0.1, 0.6, 0.8, 0.85, 0.99)] == [
        PressureLevel.NORMAL, PressureLevel.ELEVATED, PressureLevel.HIGH, PressureLevel.CRITICAL,
        PressureLevel.EMERGENCY]

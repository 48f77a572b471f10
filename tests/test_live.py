"""Watching a run (coordinator.watch, coordinator.view, coordinator.live): one plain
progress line per interval whatever the island count, run.log, and the rich live view
driven for real on a pseudo-terminal."""

import logging
import os
import pty
import re
import select
import subprocess
import sys

from coordinator.config import RunConfig
from coordinator.events import EventBus
from coordinator.view import RunView
from coordinator.watch import RunWatch

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def set_field(config, group, name, value):
    setattr(getattr(config, group, config), name, value)


def telemetry(island, t, generation):
    return {"island": island, "state": "running", "generation": generation,
            "evaluations": 10 * generation, "best_fitness": 100.0 - generation, "population": 8,
            "population_bytes": 1000, "cache_bytes": 10, "cache_hits": 3, "cache_misses": 1,
            "migration": {"sent": generation, "accepted": 1}}


def test_plain_mode_logs_one_line_per_interval_whatever_the_island_count(tmp_path, caplog):
    config = RunConfig()
    set_field(config, "output", "progress_interval", 5.0)
    now = [0.0]
    bus = EventBus(lambda: now[0])
    watch = RunWatch(config, tmp_path, bus, n_islands=16, live=False)
    caplog.set_level(logging.INFO, logger="islands")
    bus.publish("memory", used_bytes=300 * 2**20, budget_bytes=2**30, level="normal",
                coordinator_bytes=1, islands={})
    for step in range(120):  # 30 s of telemetry: every island, four times a second
        now[0] = step * 0.25
        for island in range(16):
            bus.publish("telemetry", **telemetry(island, now[0], step))
    watch.close_log()
    lines = [r.getMessage() for r in caplog.records if " gen " in r.getMessage()]
    assert 5 <= len(lines) <= 30 / 5 + 1, lines
    assert "islands 16 running, 0 hibernated" in lines[-1]
    assert "memory 300MB/1.0GB" in lines[-1] and "(29%, normal)" in lines[-1]
    logged = (tmp_path / "run.log").read_text().splitlines()
    assert len([x for x in logged if " gen " in x]) == len(lines)
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO ", logged[0])  # timestamped


def test_the_view_keeps_hard_soft_feasibility_and_island_states():
    view = RunView(2, time_limit=60.0)
    view({"t": 1.0, "event": "improved", "island": 0, "fitness": 100004.0, "global": True,
          "hard_violations": 1, "soft_cost": 4})
    view({"t": 2.1, "event": "improved", "island": 1, "fitness": 7.0, "global": True,
          "hard_violations": 0, "soft_cost": 7})
    view({"t": 2.1, "event": "feasible", "island": 1, "fitness": 7.0})
    view({"t": 3.0, "event": "hibernated", "island": 0})
    line = view.progress_line()
    assert "3.0s/60s" in line and "best 7 (hard 0, soft 7), feasible since 2.1s" in line
    assert "1 hibernated" in line and view.islands[0].state == "hibernated"


def test_the_live_view_on_a_terminal_shows_the_header_and_one_row_per_island(tmp_path):
    primary, secondary = pty.openpty()
    env = {**os.environ, "COLUMNS": "140", "LINES": "40", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "coordinator", "run", "rastrigin:dim=10", "--islands", "3",
         "--generations", "60", "--out", str(tmp_path / "run"), "--no-history"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=secondary, env=env)
    os.close(secondary)
    chunks = []
    while True:  # read the terminal until the process closes it
        ready, _, _ = select.select([primary], [], [], 120)
        if not ready:
            break
        try:
            data = os.read(primary, 65536)
        except OSError:  # EIO: the other end is closed
            break
        if not data:
            break
        chunks.append(data)
    assert process.wait(timeout=60) == 0
    os.close(primary)
    screen = ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))
    assert "elapsed" in screen and "best" in screen and "memory" in screen
    assert re.search(r"\d+(\.\d)?%?\s*\)?\s*(normal|elevated|high|critical)", screen)
    header = [x for x in screen.splitlines() if "island" in x and "state" in x and "gen" in x]
    assert header, screen[-3000:]
    final = screen[screen.rindex(header[-1].strip()):]  # the last frame
    rows = [x.split() for x in final.splitlines()[1:] if re.match(r"\s*\d+\s+[a-z]+\s+\d+", x)]
    assert sorted(int(r[0]) for r in rows[:3]) == [0, 1, 2], final
    assert all(r[1] in ("running", "done", "shrunk", "starting") for r in rows[:3])
    assert "[GA] Complete:" in screen  # the closing lines come below the last frame
    assert not (tmp_path / "run" / "run.log").read_text().count(" gen ")  # no plain lines

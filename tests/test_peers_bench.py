"""benchmarks/peers.py (issue 10): its measuring parts on real processes, without the peers.

Covers: the tree PSS sampler on a real child process tree, the verdicts (hung after the
timeout, crashed by a signal), the SIGKILL of the busiest descendant, the memory limit on a
real tree, the one-line message for a peer that cannot be imported (pygmo and DEAP are
shadowed by modules that raise ImportError, so this runs the same whether the bench extra
is installed or not) beside one real 2 s `islands` arm, and the RESULTS.md writer keeping
the human analysis block. CI does not install the bench extra: nothing here needs it.

Does not cover: the peers' runners themselves (they need pygmo and DEAP; run
`python benchmarks/peers.py --seconds 3 --repeats 1` with the extra installed).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.peers import write_results
from benchmarks.peers_faults import MemoryLimit
from benchmarks.peers_systems import kill_busiest_descendant, launch, verdict

REPO_ROOT = Path(__file__).resolve().parent.parent
MB = 1 << 20
ALLOCATE_50_MB = ("import time; b = bytearray(50 << 20); b[::4096] = b'x' * len(b[::4096]); "
                  "time.sleep({sleep})")


def test_the_sampler_sums_pss_over_the_whole_process_tree():
    # The 50 MB live in a grandchild: the launched process itself stays small.
    parent = ("import subprocess, sys; sys.exit(subprocess.call([sys.executable, '-c', "
              f"{ALLOCATE_50_MB.format(sleep=2)!r}]))")
    outcome = launch([sys.executable, "-c", parent], timeout=30)
    assert outcome.returncode == 0, outcome.stderr
    assert outcome.peak_pss > 40 * MB, outcome.peak_pss


def test_a_run_past_its_timeout_is_hung_and_its_session_killed():
    outcome = launch([sys.executable, "-c", "import time; time.sleep(60)"], timeout=1)
    assert outcome.timed_out and verdict(outcome) == "hung"
    assert outcome.wall < 10


def test_a_run_killed_by_a_signal_is_a_crash_naming_it():
    code = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    outcome = launch([sys.executable, "-c", code], timeout=30)
    assert verdict(outcome) == "crashed (signal SIGKILL)"


def test_the_fault_kills_the_busiest_worker_not_the_launched_process():
    worker = "while True: pass"
    idle = "import time; time.sleep(30)"
    parent = ("import subprocess, sys; "
              f"idle = subprocess.Popen([sys.executable, '-c', {idle!r}]); "
              f"code = subprocess.call([sys.executable, '-c', {worker!r}]); "
              "idle.kill(); print('worker', code)")
    outcome = launch([sys.executable, "-c", parent], timeout=30, fault_at=1.5,
                     fault=kill_busiest_descendant)
    assert outcome.notes and outcome.notes[0].startswith("killed pid"), outcome.notes
    assert outcome.returncode == 0 and "worker -9" in outcome.stdout, outcome.stdout


def test_a_lone_process_has_no_worker_to_kill():
    outcome = launch([sys.executable, "-c", "import time; time.sleep(2)"], timeout=30,
                     fault_at=0.5, fault=kill_busiest_descendant)
    assert outcome.notes[0].startswith("n/a") and outcome.returncode == 0


def test_the_memory_limit_stops_a_tree_that_needs_more():
    limit = MemoryLimit(100 * MB)
    try:
        code = "b = bytearray(300 << 20); b[::4096] = b'x' * len(b[::4096]); print('survived')"
        outcome = launch([sys.executable, "-c", code], timeout=30, preexec=limit.preexec)
        kills = limit.oom_kills()
    finally:
        limit.close()
    assert "survived" not in outcome.stdout
    assert verdict(outcome).startswith("crashed"), verdict(outcome)
    assert ("cgroup" in limit.how) == (kills is not None)
    if kills is not None:
        assert kills >= 1


def test_missing_peers_are_named_once_and_islands_still_runs(tmp_path):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    for module in ("pygmo", "deap"):
        (shadow / f"{module}.py").write_text("raise ImportError('not installed (test)')\n")
    env = dict(os.environ, PYTHONPATH=str(shadow))
    results = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, "benchmarks/peers.py", "--tables", "a", "--systems",
         "islands,pygmo-mp,deap", "--seconds", "2", "--repeats", "1", "--write", str(results)],
        capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    missing = [line for line in done.stdout.splitlines() if "pip install -e '.[bench]'" in line]
    assert [line.split(":")[0] for line in missing] == ["pygmo-mp", "deap"], done.stdout
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("islands ")]
    assert len(rows) == 1, done.stdout
    assert float(rows[0][1]) > 0 and float(rows[0][2]) > 0  # evals/s wall, own clock
    written = results.read_text()
    assert "## (a) Rastrigin" in written and "| islands |" in written
    assert "| deap |" not in written and "Machine:" in written


def test_the_writer_keeps_the_analysis_and_the_sections_not_rerun(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# old header\n\n## (a) old table a\n\n| old |\n\n<!-- analysis -->\n"
                    "We lose on start-up: the plots.\n<!-- /analysis -->\n\n"
                    "## (b) old table b\n\nkept as it was\n")
    args = argparse.Namespace(population=50, seconds=30.0)
    table = (["system", "evals/s"], [["islands", "123"]], ["a note"])
    write_results(path, {"a": ("(a) new table a", *table), "c": ("(c) new table c", *table)},
                  ["benchmarks/peers.py", "--tables", "a,c"], args)
    text = path.read_text()
    section_a = text.split("## (a)")[1].split("## (")[0]
    assert "| islands | 123 |" in section_a and "| old |" not in section_a
    assert "We lose on start-up: the plots." in section_a
    assert "## (b) old table b\n\nkept as it was" in text
    section_c = text.split("## (c)")[1]
    assert "<!-- analysis -->\n(analysis: see the issue note)\n<!-- /analysis -->" in section_c
    assert text.index("## (a)") < text.index("## (b)") < text.index("## (c)")

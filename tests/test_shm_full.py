"""A full /dev/shm, for real: a tiny tmpfs mounted over /dev/shm in a private mount namespace.

At start: one clear line and exit 2. At a restart: the run goes on without that island
and ends with its summary. Skipped where this machine cannot make a mount namespace
(needs root and `unshare`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest

REPO = __import__("pathlib").Path(__file__).resolve().parent.parent


def in_small_shm(size: str, command: str, timeout: float = 180.0) -> subprocess.CompletedProcess:
    script = f"mount -t tmpfs -o size={size} tmpfs /dev/shm && exec {command}"
    return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, check=False)


def namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    try:
        return in_small_shm("64k", "true", timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not namespaces_work(),
                                 reason="cannot mount a private /dev/shm here (needs root and "
                                        "unshare -m)")]


def test_a_full_dev_shm_at_start_is_one_line_and_exit_2(tmp_path):
    done = in_small_shm("4k", f"{sys.executable} -m coordinator run rastrigin:dim=20 --islands 2 "
                               f"--generations 20 --quiet --out {tmp_path / 'run'}")
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("islands: error: cannot start island 0:")
    assert "/dev/shm" in lines[-1] and "Traceback" not in done.stderr


def test_a_full_dev_shm_at_a_restart_loses_that_island_not_the_run(tmp_path):
    # In the namespace: start a run, fill /dev/shm, SIGKILL island 1: its restart cannot
    # get the shared memory a new process needs.
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(f"""
        import json, os, signal, threading, time
        from coordinator.config import flat_config
        from coordinator.run import start_run

        def main():
            run = start_run(flat_config(problem="rastrigin:dim=20", islands=2, time_limit=6.0,
                                      seed=1, out={str(tmp_path / 'run')!r}, quiet=True))

            def fill_and_kill():
                while len(run.parts.supervisor.live_islands()) < 2 or min(
                        r.generation for r in run.parts.supervisor.records.values()) < 1:
                    time.sleep(0.05)
                free = os.statvfs("/dev/shm")
                with open("/dev/shm/filler", "wb") as handle:
                    try:
                        handle.write(b"x" * (free.f_bavail * free.f_frsize))
                    except OSError:
                        pass
                os.kill(run.parts.backend.workers[1].process.pid, signal.SIGKILL)

            threading.Thread(target=fill_and_kill, daemon=True).start()
            summary = run.execute()
            os.remove("/dev/shm/filler")
            print(json.dumps(summary))

        if __name__ == "__main__":  # spawned islands import this file too
            main()
    """))
    done = in_small_shm("256k", f"{sys.executable} {driver}")
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["stopped_by"] == "time_limit"
    assert summary["failed_islands"] == [1]
    assert summary["best_fitness"] is not None
    assert "cannot start island 1" in done.stderr and "Traceback" not in done.stderr

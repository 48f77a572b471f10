"""Runs inside a real 1 GiB memory cgroup (issue 11 items 3 and 4): the budget never
exceeds what the cgroup gives, and a memory-hungry run is not killed by the kernel.

The test makes a child of this process's own memory cgroup (v1 `memory.limit_in_bytes`,
with `memory.memsw.limit_in_bytes` where swap accounting exists; v2 `memory.max`) and
starts `islands run` in it, so the coordinator and every island it spawns count against
the limit. Where the machine does not let this process make one (no permission, v2
without the memory controller delegated) each test skips with the reason.

Slow: real coordinator subprocesses in a real cgroup.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
GIB = 1 << 30
pytestmark = pytest.mark.slow


class MemoryCgroup:
    """A child memory cgroup with a hard limit; processes join it at exec."""

    def __init__(self, limit_bytes: int, root: Path = Path("/sys/fs/cgroup")) -> None:
        name = f"islands-test-{uuid.uuid4().hex[:8]}"
        self.path, self.limit_files = self._make(root, name)
        for limit_file in self.limit_files:
            (self.path / limit_file).write_text(str(limit_bytes))

    @staticmethod
    def _make(root: Path, name: str) -> tuple[Path, list[str]]:
        own = {}
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            own[controllers] = path.lstrip("/")
        errors = []
        v1 = next((p for c, p in own.items() if "memory" in c.split(",")), None)
        if v1 is not None and (root / "memory").is_dir():
            try:
                path = root / "memory" / v1 / name
                path.mkdir()
                files = ["memory.limit_in_bytes"]
                if (path / "memory.memsw.limit_in_bytes").exists():
                    files.append("memory.memsw.limit_in_bytes")  # no escape into swap
                return path, files
            except OSError as error:
                errors.append(f"v1: {error}")
        if "" in own and (root / "cgroup.controllers").exists():
            try:
                path = root / own[""] / name
                path.mkdir()
                if not (path / "memory.max").exists():
                    path.rmdir()
                    raise OSError("the memory controller is not delegated here")
                (path / "memory.swap.max").exists() and (path / "memory.swap.max").write_text("0")
                return path, ["memory.max"]
            except OSError as error:
                errors.append(f"v2: {error}")
        raise RuntimeError("; ".join(errors) or "no cgroup memory controller")

    def join(self) -> None:
        """In a child before exec (preexec_fn): move it into this cgroup."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def oom_kills(self) -> int | None:
        for name in ("memory.oom_control", "memory.events"):
            control = self.path / name
            if control.exists():
                for line in control.read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        return None

    def close(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                self.path.rmdir()
                return
            except OSError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.2)


@pytest.fixture
def one_gib_cgroup():
    try:
        cgroup = MemoryCgroup(GIB)
    except (RuntimeError, OSError) as reason:
        pytest.skip(f"cannot make a memory cgroup here: {reason}")
    yield cgroup
    cgroup.close()


def run_in(cgroup: MemoryCgroup, *arguments: str, timeout: float = 240):
    command = [sys.executable, "-m", "coordinator", "run", *arguments, "--json"]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT,
                          timeout=timeout, preexec_fn=cgroup.join)


def kernel_kills(run_dir: Path) -> list[dict]:
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()
              if line.strip()]
    return [e for e in events if e["event"] == "crash" and e.get("exitcode") == -9]


def test_a_budget_above_the_cgroup_limit_is_capped_with_one_warning(tmp_path, one_gib_cgroup):
    run_dir = tmp_path / "run"
    result = run_in(one_gib_cgroup, "rastrigin:dim=20", "--islands", "2", "--generations", "50",
                    "--memory-budget", "4G", "--out", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines()
                if "more than this machine and its cgroup can give" in line]
    assert len(warnings) == 1, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["budget_bytes"] < GIB
    assert summary["best_fitness"] is not None
    assert kernel_kills(run_dir) == [] and one_gib_cgroup.oom_kills() in (0, None)


def test_a_memory_hungry_run_in_the_cgroup_is_never_killed_by_the_kernel(tmp_path,
                                                                         one_gib_cgroup):
    run_dir = tmp_path / "run"
    result = run_in(one_gib_cgroup, "heavy:mb=20", "--islands", "2", "--population", "40",
                    "--no-streaming", "--generations", "15", "--out", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    summary = json.loads(result.stdout)
    assert summary["budget_bytes"] < GIB and summary["best_fitness"] is not None
    assert summary["failed_islands"] == []
    assert kernel_kills(run_dir) == []
    assert one_gib_cgroup.oom_kills() in (0, None)

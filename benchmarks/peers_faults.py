"""Helpers of benchmarks/peers.py for table (d): faults injected into islands and its peers.

Covers: (d1) SIGKILL of one worker process part-way through a run (the descendant of the
launched process that has used the most CPU, so a worker and not a helper process), and
(d2) a run given less memory than its configuration needs: `MemoryLimit` puts the whole
process tree in a fresh child memory cgroup of this process's own (cgroup v2 `memory.max`
with `memory.swap.max` 0; v1 `memory.limit_in_bytes` plus `memory.memsw.limit_in_bytes`
where swap accounting exists), joined at exec so every descendant counts against it; where
no cgroup can be made here it falls back to `RLIMIT_AS` per process (address space, not
resident memory; each process gets the whole limit) and says so. Each run is bounded by a
timeout (3x its time limit): past it the run counts as hung and its session is SIGKILLed.

Does not cover: launching and measuring a run (benchmarks/peers_systems.py), the tables
(benchmarks/peers.py), the faults of islands alone (benchmarks/faults.py).
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
import uuid
from pathlib import Path

from benchmarks.peers_systems import Config, Outcome, kill_busiest_descendant, launch

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _own_cgroups() -> dict[str, str]:
    own = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            own[controllers] = path.lstrip("/")
    return own


class MemoryLimit:
    """A memory limit for one launched process tree; `how` says how it is imposed."""

    def __init__(self, limit_bytes: int, root: Path = CGROUP_ROOT) -> None:
        self.limit = int(limit_bytes)
        self.path: Path | None = None
        self.files: list[str] = []
        errors = []
        own = _own_cgroups()
        name = f"islands-peers-{uuid.uuid4().hex[:8]}"
        v1 = next((p for c, p in own.items() if "memory" in c.split(",")), None)
        if v1 is not None and (root / "memory").is_dir():
            try:
                self._make(root / "memory" / v1 / name, ["memory.limit_in_bytes",
                                                         "memory.memsw.limit_in_bytes"])
            except OSError as error:
                errors.append(f"v1: {error}")
        if self.path is None and "" in own and (root / "cgroup.controllers").exists():
            try:
                self._make(root / own[""] / name, ["memory.max", "memory.swap.max"])
            except OSError as error:
                errors.append(f"v2: {error}")
        mb = self.limit >> 20
        if self.path is not None:
            version = "v2" if "memory.max" in self.files else "v1"
            self.how = f"cgroup {version} {' + '.join(self.files)} = {mb} MB on the whole tree"
        else:
            self.how = (f"RLIMIT_AS = {mb} MB per process (no memory cgroup here: "
                        f"{'; '.join(errors) or 'no memory controller'})")

    def _make(self, path: Path, files: list[str]) -> None:
        path.mkdir()
        written = []
        try:
            for file in files:
                if file == "memory.swap.max":
                    if (path / file).exists():
                        (path / file).write_text("0")
                        written.append(file)
                elif (path / file).exists():
                    (path / file).write_text(str(self.limit))
                    written.append(file)
            if not any(f in written for f in ("memory.max", "memory.limit_in_bytes")):
                raise OSError("the memory controller is not delegated here")
        except OSError:
            path.rmdir()
            raise
        self.path, self.files = path, written

    def preexec(self) -> None:
        """In the child before exec: join the cgroup (or set the rlimit)."""
        if self.path is not None:
            (self.path / "cgroup.procs").write_text(str(os.getpid()))
        else:
            resource.setrlimit(resource.RLIMIT_AS, (self.limit, self.limit))

    def oom_kills(self) -> int | None:
        if self.path is None:
            return None
        for name in ("memory.events", "memory.oom_control"):
            with contextlib.suppress(OSError):
                for line in (self.path / name).read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        return None

    def close(self) -> None:
        if self.path is None:
            return
        deadline = time.monotonic() + 10
        while self.path.exists():
            try:
                self.path.rmdir()
            except OSError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.2)


def sigkill_worker(argv: list[str], config: Config, parse) -> Outcome:
    """(d1) one run with its busiest worker SIGKILLed at 40% of the time limit."""
    outcome = launch(argv, 3 * config.seconds, fault_at=0.4 * config.seconds,
                     fault=kill_busiest_descendant)
    outcome.result = parse(outcome.stdout)
    return outcome


def under_limit(argv: list[str], config: Config, limit_bytes: int, parse) -> tuple[Outcome, str]:
    """(d2) one run of `argv` with its whole tree under a memory limit of `limit_bytes`."""
    limit = MemoryLimit(limit_bytes)
    try:
        outcome = launch(argv, 3 * config.seconds, preexec=limit.preexec)
        outcome.result = parse(outcome.stdout)
        kills = limit.oom_kills()
        if kills is not None:
            outcome.notes.append(f"{kills} OOM kill{'s' if kills != 1 else ''}")
    finally:
        limit.close()
    return outcome, limit.how

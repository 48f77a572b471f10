"""Island checkpoints that travel with the messages, for Ray actors on other machines.

Covers: `ShippedCheckpoint`, the actor's side: the island writes its checkpoint to a
node-local file (under the node's temp directory, per run), which is first filled with the
checkpoint the coordinator handed over when the island restarts or resumes; `take()` gives
the file's bytes once each time it changed (the island writes atomically, so each read is
a whole checkpoint). The coordinator's side is `land(path, data)`: the bytes written
atomically at the checkpoint's place in the run directory, where restarts, `islands
resume` and the best keeper read it. `RayBackend` ships checkpoints this way when the Ray
cluster has more than one node (or when told to); on one machine islands write into the
run directory themselves.

Does not cover: the actor and its calls (`coordinator.ray_backend`), the checkpoint format
(`islands.checkpoint`, `islands.island.Island.state`).
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from islands.checkpoint import atomic_write_bytes
from islands.params import WorkerSpec


class ShippedCheckpoint:
    """The actor's node-local checkpoint file and what of it was already shipped."""

    def __init__(self, spec: WorkerSpec, handed: bytes | None) -> None:
        name = Path(spec.checkpoint_path).name
        self.path = Path(tempfile.gettempdir()) / "islands-checkpoints" / spec.run_id / name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.shipped: tuple[int, int] | None = None  # (inode, mtime): each write renames
        if handed is not None:
            atomic_write_bytes(self.path, handed)
            self.shipped = self._version()  # the coordinator has this one
        else:
            self.path.unlink(missing_ok=True)  # an older run's island of this name
        self.spec = dataclasses.replace(spec, checkpoint_path=str(self.path),
                                        resume_from=str(self.path) if handed is not None else None)

    def take(self) -> bytes | None:
        """The checkpoint's bytes if it changed since the last call, else None."""
        try:
            changed = self._version()
        except FileNotFoundError:
            return None
        if changed == self.shipped:
            return None
        data = self.path.read_bytes()
        self.shipped = changed
        return data


    def _version(self) -> tuple[int, int]:
        stat = self.path.stat()
        return stat.st_ino, stat.st_mtime_ns


def land(path: str, data: bytes) -> None:
    """A shipped checkpoint written atomically at its place in the run directory."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, data)


def handed_over(spec: WorkerSpec) -> bytes | None:
    """The checkpoint a restarting island starts from, read on the coordinator's side."""
    if spec.resume_from is None or not Path(spec.resume_from).exists():
        return None
    return Path(spec.resume_from).read_bytes()


__all__ = ["ShippedCheckpoint", "handed_over", "land"]

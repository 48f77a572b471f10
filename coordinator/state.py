"""The run's state on disk: run directory, its lock, the coordinator checkpoint, resume.

Covers: `default_run_dir`; `RunDirectory` (creates `checkpoint/`, writes the resolved
`config.toml`, and holds an exclusive lock on `RUN_DIR/.lock` while a coordinator
works there: the kernel drops it when the process dies, so a crashed run can be
resumed and a live one cannot be entered twice; a new run refuses a directory that
holds another run unless told to overwrite it, and then removes that run's files
first, so nothing of it mixes into the new one; the temp files of writers killed
mid-write are swept once the lock is held and after the islands stopped);
`CheckpointWriter` (the coordinator checkpoint `checkpoint/coordinator.msgpack`: config, run id, plan, best, per-island
counts, elapsed time, how it stopped; written atomically at start, on each new best
without fsync, every `checkpoint_interval` seconds and at the end; a failed write keeps
the previous file and the run going); `load_resume` / `already_finished` for
`islands resume`, `check_island_checkpoints` (each island checkpoint fits the problem
as it is now, checked before anything starts: a file of another instance or a damaged
one is one line and exit 2, not three crashes), and `island_bests` (the best genome
each island checkpoint holds: resume starts from the best of these and the coordinator checkpoint's, which may be
older when the disk refused its writes).

Does not cover: island checkpoints (the islands write them, `islands.checkpoint` is
the format), what goes into the state (the run loop assembles it from its parts).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import weakref
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from coordinator.config import RunConfig, build, nest, with_flat
from coordinator.config_model import check_ranges
from coordinator.events import EventBus
from islands import checkpoint as checkpoint_io
from islands.errors import InputError
from islands.island import Island

logger = logging.getLogger("islands.run")

COORDINATOR_CHECKPOINT = "coordinator.msgpack"
LOCK_FILE = ".lock"
# Stop reasons after which `islands resume` has nothing left to do (unless given a new limit).
FINISHED_REASONS = ("generations", "finished", "target", "evaluations", "stagnation",
                    "time_limit", "failed")


def default_run_dir(problem_text: str, root: str | Path = "runs") -> Path:
    """`runs/<timestamp>-<problem>`, made unique if that exists."""
    name = re.sub(r"[^A-Za-z0-9_.=-]+", "-", problem_text.split(":")[0].split("/")[-1]) or "run"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{stamp}-{name}"
    candidate, counter = base, 1
    while candidate.exists():
        counter += 1
        candidate = Path(f"{base}-{counter}")
    return candidate


class RunDirectory:
    """The run directory, locked for this process from `open()` to `close()`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lock_handle: Any = None

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint" / COORDINATOR_CHECKPOINT

    def island_checkpoint(self, island: int) -> Path:
        return self.path / "checkpoint" / f"island-{island}.msgpack"

    def open(self, config_toml: str, *, fresh: bool = False, overwrite: bool = False) -> None:
        """Create and lock the directory; `fresh` (a new run, not a resume): refuse one that
        holds another run unless `overwrite`, which removes that run's files."""
        try:
            (self.path / "checkpoint").mkdir(parents=True, exist_ok=True)
            self.lock_handle = acquire_lock(self.path)
            self.sweep_temp_files()
            if fresh:
                self._make_room(overwrite)
            try:  # atomic: a full disk leaves the previous config.toml whole
                checkpoint_io.atomic_write_bytes(self.path / "config.toml", config_toml.encode(),
                                                 mode=0o644)
            except OSError as error:
                if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                logger.warning("[GA] Could not write %s (%s); the run goes on (its config is "
                               "in the coordinator checkpoint once the disk has room)",
                               self.path / "config.toml", error)
        except OSError as error:
            self.close()
            raise InputError(f"cannot use run directory {self.path}: {error.strerror}") from None

    def run_files(self) -> list[Path]:
        """The files a run writes here (never the user's own, such as a .ctt beside them)."""
        names = ["events.jsonl", "summary.json", "config.toml"]
        found = [self.path / name for name in names if (self.path / name).exists()]
        found += sorted(self.path.glob("best.*")) + sorted(self.path.glob("best-writing.*"))
        return found + sorted((self.path / "checkpoint").glob("*.msgpack"))

    def _make_room(self, overwrite: bool) -> None:
        held = [p for p in self.run_files() if p.name in ("coordinator.msgpack", "events.jsonl")]
        if not held:
            return
        if not overwrite:
            self.close()
            raise InputError(f"{self.path} holds another run; `islands resume {self.path}` "
                             "continues it, --overwrite starts a new run there (its files "
                             "are replaced)")
        for path in self.run_files():
            path.unlink()
        logger.info("[GA] --overwrite: removed the previous run's files from %s", self.path)

    def sweep_temp_files(self) -> None:
        """Remove the temp files of killed writers (call only while none is alive)."""
        removed = [*checkpoint_io.sweep_temp_files(self.path),
                   *checkpoint_io.sweep_temp_files(self.path / "checkpoint")]
        if removed:
            logger.info("[GA] Removed %d temp file(s) left by writes cut short (%s)", len(removed),
                        ", ".join(path.name for path in removed[:3]))

    def close(self) -> None:
        if self.lock_handle is not None:
            self.lock_handle.close()  # closing the file drops the lock
            self.lock_handle = None


# Lock files this process holds. A forked island inherits their descriptors, and a flock
# lasts while any descriptor of it is open: an island outliving a killed coordinator would
# keep the run locked. Children close their copies at once (the parent's lock stays).
_held_locks: weakref.WeakSet[Any] = weakref.WeakSet()


def _close_inherited_locks() -> None:
    for handle in list(_held_locks):
        with contextlib.suppress(OSError, ValueError):
            handle.close()  # this process's copy only: the parent's descriptor keeps the lock


os.register_at_fork(after_in_child=_close_inherited_locks)


def acquire_lock(run_dir: Path) -> Any:
    """Lock `run_dir` for this process; InputError if another process holds it."""
    handle = open(run_dir / LOCK_FILE, "a+")  # noqa: SIM115
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise InputError(f"{run_dir}: the run is still going (another islands process holds "
                         f"{LOCK_FILE}); stop it first (Ctrl-C or SIGTERM)") from None
    _held_locks.add(handle)
    with contextlib.suppress(OSError):  # for people: which process works here (a full disk
        os.ftruncate(handle.fileno(), 0)  # leaves it empty; the lock is what counts)
        os.write(handle.fileno(), f"{os.getpid()}\n".encode())
    return handle


class CheckpointWriter:
    """Writes the coordinator checkpoint from `state()` (atomic; failures counted, not raised)."""

    def __init__(self, path: Path, interval_s: float, bus: EventBus,
                 state: Callable[[], dict[str, Any]], clock: Callable[[], float]) -> None:
        self.path = path
        self.interval_s = interval_s
        self.bus = bus
        self.state = state
        self.clock = clock
        self.last_durable = clock()
        self.failures = 0

    def write(self, *, durable: bool = True) -> bool:
        """`durable=False` (each new best) skips the fsync: the periodic write follows soon."""
        if durable:
            self.last_durable = self.clock()
        try:
            checkpoint_io.save_state(self.path, self.state(), durable=durable)
        except OSError as error:
            self.failures += 1
            # Once per failure streak in the log; every failure in events.jsonl.
            if self.failures == 1:
                logger.warning("[GA] Could not write the checkpoint %s (%s); the previous one "
                               "is kept and the run goes on", self.path, error)
            self.bus.publish("checkpoint_failed", file=str(self.path), error=str(error))
            return False
        self.failures = 0
        return True

    def maybe_write(self) -> None:
        if self.clock() - self.last_durable >= self.interval_s:
            self.write()


def load_resume(
    run_dir: str | Path, *, generations: int | None = None, time_limit: float | None = None
) -> tuple[RunConfig, dict[str, Any]]:
    """The config and coordinator state to resume `run_dir`; InputError if there is none.

    `generations` / `time_limit`, when given, replace the run's own limits (the time
    limit counts the time already spent).
    """
    run_dir = Path(run_dir)
    path = run_dir / "checkpoint" / COORDINATOR_CHECKPOINT
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such run directory")
    if not path.exists():
        raise InputError(f"{run_dir}: no checkpoint to resume from ({path} is missing)")
    state = checkpoint_io.load_state(path)
    if state.get("kind") != "coordinator" or not isinstance(state.get("config"), dict):
        raise InputError("not a coordinator checkpoint", path=path)
    try:
        plan = state.get("plan") or {}
        # The same islands as before: their checkpoints are per island.
        config = with_flat(build(nest(state["config"], source=str(path)), source=str(path)),
                           **{key: plan[key] for key in ("islands", "population", "chunk_size",
                                                         "streaming") if plan.get(key) is not None})
        str(state["run_id"])
        float(state.get("elapsed_s", 0.0))
    except (TypeError, ValueError, KeyError) as error:
        raise InputError(f"checkpoint is malformed ({error})", path=path) from None
    acquire_lock(run_dir).close()  # refuses while the run's coordinator still works there
    # Damaged or foreign island checkpoints: `check_island_checkpoints`, once the problem exists.
    config.out = str(run_dir.resolve())
    if generations is not None:
        config.stop.generations = generations
    if time_limit is not None:
        config.stop.time_limit = time_limit
    check_ranges(config, str(path))
    return config, state


def check_island_checkpoints(problem: Any, checkpoint_dir: Path) -> None:
    """InputError naming the first island checkpoint that does not fit `problem`."""
    for path in sorted(Path(checkpoint_dir).glob("island-*.msgpack")):
        try:
            Island.from_state(problem, checkpoint_io.load_state(path))
        except InputError as error:
            where = "" if str(path) in str(error) else f"{path}: "
            raise InputError(f"cannot resume: {where}{error} (the instance changed since the "
                             "run started, or the file is damaged; start a new run)") from None


def island_bests(checkpoint_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(file, best) for each island checkpoint that holds a best genome, in the
    `BestKeeper.state()` form; a file that cannot be read is left out (resume checks them)."""
    found = []
    for path in sorted(Path(checkpoint_dir).glob("island-*.msgpack")):
        try:
            state = checkpoint_io.load_state(path)
            if state.get("best_genome") is None or state.get("best_fitness") is None:
                continue
            genome = checkpoint_io.unpack_array(state["best_genome"])
            best = {"genome": genome.tobytes(), "dtype": genome.dtype.str,
                    "shape": list(genome.shape), "fitness": float(state["best_fitness"]),
                    "island": state.get("island_id"), "generation": state.get("generation")}
        except (InputError, KeyError, TypeError, ValueError) as error:
            logger.warning("[GA] %s: no best genome read (%s)", path, error)
            continue
        found.append((path, best))
    return found


def already_finished(state: dict[str, Any]) -> str | None:
    """The stop reason if the checkpointed run finished (nothing left to resume)."""
    reason = state.get("stopped_by")
    return reason if reason in FINISHED_REASONS else None


__all__ = ["COORDINATOR_CHECKPOINT", "FINISHED_REASONS", "CheckpointWriter", "RunDirectory",
           "acquire_lock", "already_finished", "check_island_checkpoints", "default_run_dir",
           "island_bests", "load_resume"]

"""The local backend: island worker processes on this machine.

Covers: `LocalBackend`, the `Backend` protocol over `multiprocess`. Islands start by
`fork` by default: a child shares every page the coordinator loaded (the interpreter,
numpy, compiled kernels) until it writes to it, so an idle island costs a few MB instead
of a fresh interpreter's 25 MB, and no resource tracker process is needed (fork-context
queues use unnamed semaphores). A forked child uses nothing of the coordinator's but its
own arguments, so the coordinator's threads (queue feeders) cannot hand it a held lock it
needs; `spawn` (fresh interpreters, which re-import the main script) and `forkserver` stay
available (`--start-method`). A child's watchdog exits it once its parent changes (the
coordinator, or the fork server, which ends with the coordinator). The problem's arrays go once into POSIX
shared memory (segments of dead runs are swept first). Each worker gets a queue in and
the write end of a one-way pipe out (a killed island can break only its own channels);
`receive` waits on pipes and process sentinels together, reads every message before it
reports an exit, and reports each exit once. `kill` asks (SIGTERM), waits, then kills
(SIGKILL). `memory` measures the coordinator and every live worker with a `MemoryProbe`
(PSS/USS/RSS; injectable: tests replay pressure). `island_process_main` is the worker
process's entry: run one step nicer than the coordinator (its memory watch must not
starve on busy cores), ignore SIGINT (the coordinator turns Ctrl-C into a graceful stop),
turn SIGTERM and SIGHUP into the island's own graceful stop (checkpoint, then exit: a
SIGTERM to the whole process group, as `timeout` and systemd send, is a clean stop and
the "ask" of `kill`), exit when the parent dies, attach the shared arrays, run
`islands.worker.serve_island`.

Does not cover: what the messages mean (the coordinator's parts), the worker loop
(`islands.worker`), measuring one process (`memory.probe`).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import multiprocess
import numpy as np
import psutil
from multiprocess.connection import wait as wait_objects

from coordinator.backend import WHOLE_RUN, Domain, Exited, MemoryReading, Received
from islands.channel import PipeChannel
from islands.protocol import TO_COORDINATOR, ProtocolStats, ToIsland, decode, encode
from islands.worker import WorkerSpec, serve_island
from memory.probe import MemoryProbe, ProcessMemory, ProcessProbe
from memory.shared import SharedArray, SharedArrayHandle, sweep_dead_segments

logger = logging.getLogger("islands.run")


EXIT_NO_MAIN_GUARD = 4  # an island process found its script starting a run again


def quit_if_bootstrapping_island() -> None:
    """End an island process quietly if its start-up re-ran a script that starts a run.

    Spawned islands re-run the main script to rebuild its definitions; a run started at
    the script's top level (no `if __name__ == "__main__":`) would start again in every
    island. The exit code tells the coordinator, which says it once (`coordinator.run`).
    """
    for module in (multiprocess, sys.modules.get("multiprocessing")):
        if module is not None and getattr(module.current_process(), "_inheriting", False):
            os._exit(EXIT_NO_MAIN_GUARD)


def no_main_guard_message() -> str:
    script = getattr(sys.modules.get("__main__"), "__file__", None) or "the main script"
    return (f"the islands could not start: {script} starts a run at its top level, and each "
            "island process re-runs it on start; put the call under "
            "`if __name__ == \"__main__\":`")


def name_process(name: str) -> None:
    """This process's name as `ps`, `top` and psutil show it (a forked island would
    otherwise look exactly like its coordinator)."""
    with contextlib.suppress(OSError):
        with open("/proc/self/comm", "w") as comm:
            comm.write(name[:15])


def _watch_parent(coordinator: int, interval: float = 0.5) -> None:
    parent = os.getppid()  # the coordinator, or the fork server that ends with it
    if parent != coordinator and not psutil.pid_exists(coordinator):
        os._exit(0)  # orphaned before it could watch

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def island_process_main(spec: WorkerSpec, handles: dict[str, SharedArrayHandle], inbox: Any,
                        outbox: Any, parent: int) -> None:
    """Entry point of one island process (see the module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    name_process(f"island-{spec.island_id}")
    # One step nicer than the coordinator: on busy cores its memory watch must not starve.
    with contextlib.suppress(OSError):
        os.nice(1)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())
    _watch_parent(parent)
    shared = {name: SharedArray.attach(handle) for name, handle in handles.items()}
    channel = PipeChannel(inbox, outbox)
    code = serve_island(spec, channel, {name: s.array for name, s in shared.items()}, stop.is_set)
    # Views into shared segments must be gone before the segments close.
    gc.collect()
    for segment in shared.values():
        try:
            segment.close()
        except BufferError:
            pass
    channel.close()
    sys.exit(code)


@dataclass
class _Process:
    process: Any
    inbox: Any
    outbox: Any
    outbox_open: bool = True
    reported: bool = False


class LocalBackend:
    """Island processes on this machine (see the module docstring)."""

    name = "local"

    def __init__(self, probe: MemoryProbe | None = None, start_method: str = "fork") -> None:
        self.context = multiprocess.get_context(start_method)
        self.probe = probe if probe is not None else ProcessProbe()
        self.stats = ProtocolStats()
        self.shared: dict[str, SharedArray] = {}
        self.workers: dict[int, _Process] = {}

    # -- set-up ----------------------------------------------------------------------------
    def share(self, arrays: Mapping[str, np.ndarray]) -> None:
        removed = sweep_dead_segments()
        if removed:
            logger.info("[GA] Removed %d shared-memory segment(s) left by dead runs", len(removed))
        for index, (name, array) in enumerate(arrays.items()):
            # Segment tags are short alphanumerics; the name travels in the handle map.
            self.shared[name] = SharedArray.from_array(np.ascontiguousarray(array), tag=f"p{index}")

    def spawn(self, spec: WorkerSpec) -> None:
        old = self.workers.pop(spec.island_id, None)
        if old is not None:
            self._close_channels(old)
        reader, writer = self.context.Pipe(duplex=False)
        inbox = self.context.Queue()
        handles = {name: array.handle for name, array in self.shared.items()}
        process = self.context.Process(
            target=island_process_main, args=(spec, handles, inbox, writer, os.getpid()),
            name=f"island-{spec.island_id}", daemon=True)
        # Frozen objects are never traversed by the child's collector, so their pages
        # (shared with the coordinator after a fork) are not copied just to be scanned.
        gc.freeze()
        try:
            process.start()
        finally:
            gc.unfreeze()
        # Our copy of the write end must go, else a dead island never reads as EOF.
        writer.close()
        self.workers[spec.island_id] = _Process(process, inbox, reader)

    # -- messages --------------------------------------------------------------------------
    def send(self, worker: int, message: ToIsland) -> bool:
        record = self.workers.get(worker)
        if record is None or record.reported:
            return False
        try:
            record.inbox.put(encode(message))
        except (OSError, ValueError):
            return False
        return True

    def receive(self, timeout: float) -> list[Received]:
        waiting: list[Any] = []
        for record in self.workers.values():
            if record.outbox_open:
                waiting.append(record.outbox)
            elif not record.reported:
                waiting.append(record.process.sentinel)
        if waiting:
            wait_objects(waiting, timeout=timeout)
        received: list[Received] = []
        for worker, record in self.workers.items():
            self._read(worker, record, received)
            if not record.reported and not record.outbox_open and not record.process.is_alive():
                record.reported = True
                received.append(Exited(worker, record.process.exitcode))
        return received

    def _read(self, worker: int, record: _Process, into: list[Received]) -> None:
        while record.outbox_open:
            try:
                if not record.outbox.poll():
                    return
                data = record.outbox.recv_bytes()
            except (EOFError, OSError):
                record.outbox_open = False  # the island's end closed: it exited or is exiting
                return
            message = decode(data, self.stats, expect=TO_COORDINATOR)
            if message is not None and message.island == worker:
                into.append(message)
            elif message is not None:
                self.stats.drop("wrong island")

    def kill(self, worker: int, grace: float) -> None:
        record = self.workers.get(worker)
        if record is None or record.reported:
            return
        try:
            if not record.process.is_alive():
                return
            record.process.terminate()  # SIGTERM
            record.process.join(grace)
            if record.process.is_alive():
                record.process.kill()
                record.process.join(5.0)
        except (OSError, ValueError):
            pass

    # -- memory ----------------------------------------------------------------------------
    def memory(self) -> MemoryReading:
        keys = {os.getpid(): None}
        for worker, record in self.workers.items():
            if not record.reported and record.process.pid is not None:
                keys[record.process.pid] = worker
        sample = self.probe.sample(list(keys))
        reading = MemoryReading(t=sample.t, own=ProcessMemory(0, 0, 0),
                                host_available_bytes=sample.host_available_bytes)
        for process_id, worker in keys.items():
            if process_id not in sample.pss_by_pid:
                continue
            measured = ProcessMemory(sample.pss_by_pid[process_id],
                                     sample.uss_by_pid.get(process_id, 0),
                                     sample.rss_by_pid.get(process_id, 0))
            if worker is None:
                reading.own = measured
            else:
                reading.workers[worker] = measured
        if not reading.host_available_bytes:
            reading.host_available_bytes = int(psutil.virtual_memory().available)
        return reading

    def domains(self) -> list[Domain]:
        return [WHOLE_RUN]  # one machine: one budget

    def domain_of(self, worker: int) -> str | None:
        return WHOLE_RUN.name

    # -- the end ---------------------------------------------------------------------------
    @staticmethod
    def _close_channels(record: _Process) -> None:
        try:
            record.inbox.cancel_join_thread()
            record.inbox.close()
        except (OSError, ValueError, AttributeError):
            pass
        try:
            record.outbox.close()
        except OSError:
            pass
        record.outbox_open = False
        try:
            record.process.join(0.1)
            if not record.process.is_alive():
                record.process.close()
        except (ValueError, AssertionError):
            pass

    def close(self) -> None:
        for worker in list(self.workers):
            self.kill(worker, 1.0)
            self._close_channels(self.workers[worker])
        for segment in self.shared.values():
            try:
                segment.close()
            except BufferError:
                pass  # a numpy view is still alive somewhere; unlinking frees the name anyway
            finally:
                segment.unlink()
        self.shared.clear()


__all__ = ["LocalBackend", "island_process_main"]

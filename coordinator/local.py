"""The local backend: island worker processes on this machine.

Covers: starting one island process (`multiprocess`, spawn context: the coordinator
runs a monitor thread, and spawned children see the coordinator as their parent, which
their watchdog relies on), its channels (a queue into the island, a one-way pipe out of
it, so a killed island can only break its own channels), waiting on pipes and process
sentinels together with a timeout, and stopping a process (SIGTERM, then SIGKILL).

Does not cover: what the messages mean (`coordinator.run`), the worker loop
(`islands.worker`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import multiprocess
from multiprocess.connection import wait as wait_objects

from islands.worker import WorkerSpec, run_island


@dataclass
class WorkerHandle:
    """One running (or finished) island process and its channels."""

    island_id: int
    process: Any
    inbox: Any
    outbox: Any
    spec: WorkerSpec
    finished: str | None = None  # why it ended: done reason, "crashed", "terminated"
    messages: list[Any] = field(default_factory=list)
    outbox_open: bool = True
    reaped: bool = False  # its exit has been noticed by the run loop

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.is_alive()


class LocalBackend:
    """Starts and stops island processes on this machine."""

    name = "local"

    def __init__(self) -> None:
        self.context = multiprocess.get_context("spawn")

    def start(self, spec: WorkerSpec) -> WorkerHandle:
        reader, writer = self.context.Pipe(duplex=False)
        inbox = self.context.Queue()
        process = self.context.Process(
            target=run_island, args=(spec, inbox, writer), name=f"island-{spec.island_id}",
            daemon=True,
        )
        process.start()
        # Our copy of the write end must go, else a dead island never reads as EOF.
        writer.close()
        return WorkerHandle(spec.island_id, process, inbox, reader, spec)

    @staticmethod
    def wait(handles: Iterable[WorkerHandle], timeout: float) -> list[Any]:
        """Pipes with data and sentinels of exited processes, or [] after `timeout`."""
        objects: list[Any] = []
        for handle in handles:
            if handle.outbox_open:
                objects.append(handle.outbox)
            if handle.finished is None:
                objects.append(handle.process.sentinel)
        if not objects:
            return []
        return wait_objects(objects, timeout=timeout)

    @staticmethod
    def receive(handle: WorkerHandle) -> list[Any]:
        """Every message waiting in the island's pipe (never blocks)."""
        messages: list[Any] = []
        while handle.outbox_open:
            try:
                if not handle.outbox.poll():
                    break
                messages.append(handle.outbox.recv())
            except (EOFError, OSError):
                handle.outbox_open = False
            except Exception:  # a message cut short by a killed island
                handle.outbox_open = False
        return messages

    @staticmethod
    def send(handle: WorkerHandle, message: Any) -> bool:
        if handle.finished is not None:
            return False
        try:
            handle.inbox.put(message)
        except (OSError, ValueError):
            return False
        return True

    @staticmethod
    def terminate(handle: WorkerHandle, grace_s: float = 2.0) -> None:
        """SIGTERM, wait `grace_s`, then SIGKILL."""
        process = handle.process
        if process.is_alive():
            try:
                process.terminate()  # SIGTERM
            except (OSError, ValueError):
                pass
            process.join(grace_s)
        if process.is_alive():
            process.kill()
            process.join(5.0)

    @staticmethod
    def close(handle: WorkerHandle) -> None:
        try:
            handle.inbox.cancel_join_thread()
            handle.inbox.close()
        except (OSError, ValueError, AttributeError):
            pass
        try:
            handle.outbox.close()
        except OSError:
            pass
        handle.outbox_open = False
        try:
            handle.process.join(0.1)
            if not handle.process.is_alive():
                handle.process.close()
        except (ValueError, AssertionError):
            pass

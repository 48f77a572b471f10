"""The island's end of its link to the coordinator: bytes out, bytes in, nothing else.

Covers: `Channel` (what the worker loop needs: `send(bytes)`, `receive(timeout)`),
`CoordinatorGone` (the other end is closed), and the two transports the backends use:
`PipeChannel` (a process: a multiprocess queue in, the write end of a one-way pipe out)
and `QueueChannel` (a thread: two `queue.Queue`s, for the in-thread backend).

Does not cover: what the bytes mean (`islands.protocol`), the coordinator's end
(`coordinator.backend`, `coordinator.local`).
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Protocol


class CoordinatorGone(Exception):
    """The coordinator's end of the channel is closed or its process is gone."""


class Channel(Protocol):
    def send(self, data: bytes) -> None:
        """Send one message; CoordinatorGone if nobody can read it any more."""

    def receive(self, timeout: float) -> bytes | None:
        """One message, or None if none came within `timeout` seconds (0: do not wait)."""


class PipeChannel:
    """A worker process's channel: `inbox` a multiprocess Queue, `outbox` a pipe's write end."""

    def __init__(self, inbox: Any, outbox: Any) -> None:
        self.inbox = inbox
        self.outbox = outbox

    def send(self, data: bytes) -> None:
        try:
            self.outbox.send_bytes(data)
        except (BrokenPipeError, EOFError, ConnectionResetError, OSError) as error:
            raise CoordinatorGone(str(error)) from error

    def receive(self, timeout: float) -> bytes | None:
        try:
            if timeout > 0:
                return self.inbox.get(timeout=timeout)
            return self.inbox.get_nowait()
        except queue.Empty:
            return None
        except (EOFError, OSError, ValueError) as error:
            raise CoordinatorGone(str(error)) from error

    def close(self) -> None:
        try:
            self.outbox.close()
        except OSError:
            pass


class QueueChannel:
    """An in-thread island's channel; `closed` (set by the coordinator's side) ends it."""

    def __init__(self) -> None:
        self.to_island: queue.Queue[bytes] = queue.Queue()
        self.to_coordinator: queue.Queue[bytes] = queue.Queue()
        self.closed = threading.Event()

    def send(self, data: bytes) -> None:
        if self.closed.is_set():
            raise CoordinatorGone("channel closed")
        self.to_coordinator.put(bytes(data))

    def receive(self, timeout: float) -> bytes | None:
        if self.closed.is_set():
            raise CoordinatorGone("channel closed")
        try:
            if timeout > 0:
                return self.to_island.get(timeout=timeout)
            return self.to_island.get_nowait()
        except queue.Empty:
            return None


__all__ = ["Channel", "CoordinatorGone", "PipeChannel", "QueueChannel"]

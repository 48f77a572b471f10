"""The Backend protocol: the coordinator's only way to its islands; and the in-thread backend.

Covers: `Backend` (share arrays once, spawn a worker, send it a message, receive what
workers said and which exited, kill one, read memory per worker, close; and its pressure
domains: `domains()` and `domain_of(worker)`), `Exited` (a worker's end, reported once,
after its last message), `Domain` (workers that share one memory budget: this machine, a
Ray node; `WHOLE_RUN` is the one domain of a backend on one machine), `MemoryReading`
(one memory sample: the coordinator, each worker, the host or each domain's available
memory), and `InThreadBackend`: islands as threads in this process, over
`QueueChannel`s and the real encoding, so component tests drive the coordinator's parts
without processes (given `domains` and a `placement`, as if on several nodes).

Does not cover: island processes (`coordinator.local.LocalBackend`), what the messages
mean (`islands.protocol`, the coordinator's parts), the worker loop (`islands.worker`).
Workers are named by their island id; nothing outside a backend sees a process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from islands.channel import QueueChannel
from islands.protocol import TO_COORDINATOR, ProtocolStats, ToCoordinator, ToIsland, decode, encode
from islands.worker import WorkerSpec, serve_island
from memory.probe import MemorySample, ProcessMemory, own_memory

COORDINATOR_KEY = -1  # the coordinator's own process in a MemorySample built from a reading
UNMEASURED_AVAILABLE = 1 << 62  # a domain nobody measured: not taken as short of memory


@dataclass(frozen=True)
class Domain:
    """Workers that share one memory budget; the pressure controller acts per domain.

    `budget_bytes` / `reserve_bytes` None: the run's own (the MemoryManager's), as for
    the one domain of a backend on one machine.
    """

    name: str
    budget_bytes: int | None = None
    reserve_bytes: int | None = None


WHOLE_RUN = Domain("local")  # every worker on this machine, under the run's budget


@dataclass(frozen=True)
class Exited:
    """Worker `worker` ended; `exitcode` as a process's (negative: killed by that signal)."""

    worker: int
    exitcode: int | None


Received = ToCoordinator | Exited


@dataclass
class MemoryReading:
    """One memory sample: the coordinator's own process, each live worker, the host.

    `own_domain` is the domain the coordinator runs in; `available_by_domain` the
    available memory of each domain that was measured (several nodes), where
    `host_available_bytes` is the tightest of them.
    """

    t: float
    own: ProcessMemory
    workers: dict[int, ProcessMemory] = field(default_factory=dict)
    host_available_bytes: int = 0
    own_domain: str = WHOLE_RUN.name
    available_by_domain: dict[str, int] = field(default_factory=dict)

    def to_sample(self, domain: str | None = None,
                  workers: Collection[int] | None = None) -> MemorySample:
        """The monitor's form: processes keyed by worker id, the coordinator by COORDINATOR_KEY.

        With `domain`: that domain's sample only: the `workers` in it, the coordinator if
        it runs there, and that domain's available memory.
        """
        chosen = self.workers if workers is None else {
            w: m for w, m in self.workers.items() if w in workers}
        every = dict(chosen)
        if domain is None or domain == self.own_domain:
            every[COORDINATOR_KEY] = self.own
        available = self.host_available_bytes
        if domain in self.available_by_domain:
            available = self.available_by_domain[domain]
        elif domain is not None and domain != self.own_domain:
            available = UNMEASURED_AVAILABLE
        return MemorySample(
            t=self.t,
            pss_by_pid={key: m.pss for key, m in every.items()},
            uss_by_pid={key: m.uss for key, m in every.items()},
            rss_by_pid={key: m.rss for key, m in every.items()},
            host_available_bytes=available,
        )


class Backend(Protocol):
    name: str
    stats: ProtocolStats  # messages from workers decoded / dropped

    def share(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Make the problem's read-only arrays available to every worker (once, before spawn)."""

    def spawn(self, spec: WorkerSpec) -> None:
        """Start worker `spec.island_id` (an earlier worker of that id must have exited)."""

    def send(self, worker: int, message: ToIsland) -> bool:
        """Queue `message` for `worker`; False if it cannot take messages (gone)."""

    def receive(self, timeout: float) -> list[Received]:
        """What workers said and which exited, waiting up to `timeout` s for the first."""

    def kill(self, worker: int, grace: float) -> None:
        """Ask `worker` to end, wait up to `grace` s, then end it; its Exited comes later."""

    def memory(self) -> MemoryReading:
        """One memory sample of the coordinator and every live worker."""

    def domains(self) -> list[Domain]:
        """The pressure domains now (one machine: `[WHOLE_RUN]`; Ray: one per node)."""

    def domain_of(self, worker: int) -> str | None:
        """The domain `worker` runs in (or ran in last); None while not known yet."""

    def close(self) -> None:
        """End every worker and free what `share` made."""


@dataclass
class _Thread:
    channel: QueueChannel
    thread: threading.Thread
    exitcode: list[int] = field(default_factory=list)
    reported: bool = False


class InThreadBackend:
    """Islands as threads of this process (tests): real worker loop, real encoding.

    A thread cannot be killed: `kill` closes its channel, so the worker ends at its next
    message, and the exit is reported at once either way (a stuck thread is abandoned).
    `memory_reader(workers)` may replace the zero readings, to replay pressure;
    `domains` and `placement` (worker -> domain name) make it several pressure domains,
    as a cluster's nodes are (default: `WHOLE_RUN`).
    """

    name = "thread"

    def __init__(self, memory_reader: Callable[[list[int]], MemoryReading] | None = None,
                 clock: Callable[[], float] = time.monotonic, *,
                 domains: Collection[Domain] = (WHOLE_RUN,),
                 placement: Mapping[int, str] | None = None) -> None:
        self.placement = placement
        self.pressure_domains = list(domains)
        self.stats = ProtocolStats()
        self.memory_reader = memory_reader
        self.clock = clock
        self.arrays: dict[str, np.ndarray] = {}
        self.workers: dict[int, _Thread] = {}
        self.killed: set[int] = set()

    def share(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.arrays = {name: np.asarray(array) for name, array in arrays.items()}

    def spawn(self, spec: WorkerSpec) -> None:
        channel = QueueChannel()
        record = _Thread(channel, threading.Thread())
        record.thread = threading.Thread(
            target=lambda: record.exitcode.append(serve_island(spec, channel, self.arrays)),
            name=f"island-{spec.island_id}", daemon=True)
        self.workers[spec.island_id] = record
        self.killed.discard(spec.island_id)
        record.thread.start()

    def send(self, worker: int, message: ToIsland) -> bool:
        record = self.workers.get(worker)
        if record is None or record.reported or record.channel.closed.is_set():
            return False
        record.channel.to_island.put(encode(message))
        return True

    def receive(self, timeout: float) -> list[Received]:
        deadline = self.clock() + timeout
        while True:
            received = self._collect()
            if received or self.clock() >= deadline:
                return received
            time.sleep(0.002)

    def _collect(self) -> list[Received]:
        received: list[Received] = []
        for worker, record in self.workers.items():
            if record.reported:
                continue
            ended = not record.thread.is_alive() or worker in self.killed
            while not record.channel.to_coordinator.empty():
                message = decode(record.channel.to_coordinator.get_nowait(), self.stats,
                                 expect=TO_COORDINATOR)
                if message is not None and message.island == worker:
                    received.append(message)
                elif message is not None:
                    self.stats.drop("wrong island")
            if ended:
                record.reported = True
                code = record.exitcode[0] if record.exitcode else -15
                received.append(Exited(worker, code))
        return received

    def kill(self, worker: int, grace: float) -> None:
        record = self.workers.get(worker)
        if record is None or record.reported:
            return
        record.channel.closed.set()
        record.thread.join(grace)
        self.killed.add(worker)

    def memory(self) -> MemoryReading:
        live = [w for w, r in self.workers.items() if not r.reported]
        if self.memory_reader is not None:
            return self.memory_reader(live)
        zero = ProcessMemory(0, 0, 0)
        return MemoryReading(self.clock(), own_memory(), dict.fromkeys(live, zero), 1 << 50)

    def domains(self) -> list[Domain]:
        return list(self.pressure_domains)

    def domain_of(self, worker: int) -> str | None:
        return WHOLE_RUN.name if self.placement is None else self.placement.get(worker)

    def close(self) -> None:
        for worker in list(self.workers):
            self.kill(worker, 1.0)


__all__ = ["COORDINATOR_KEY", "WHOLE_RUN", "Backend", "Domain", "Exited", "InThreadBackend",
           "MemoryReading", "Received"]

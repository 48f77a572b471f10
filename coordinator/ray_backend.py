"""The Ray backend: each island a Ray actor, on this machine or across a Ray cluster.

Covers: `RayBackend`, the `Backend` protocol over Ray (`--backend ray [--address A]`), and
`IslandActor`, the actor one island lives in. Without an address the backend starts a
local Ray instance when it first needs one (`share`) and shuts it down at `close`; with
one it connects and only disconnects; a Ray this process had already started (tests) is
used and left running. The problem's arrays go once into Ray's object store (`ray.put`);
each actor receives them as zero-copy read-only views (one copy per node) and rebuilds
the problem from them. An actor asks Ray for `num_cpus=1` and `memory=` its slice, so Ray
places islands where their memory fits (admission only: Ray does not cap real use; our
pressure controller does). The actor runs the same `islands.worker.serve_island` loop in
a thread, over a `QueueChannel` (islands.channel) of two in-process queues; the coordinator pushes
messages in with `push` calls (numbered: a threaded actor may run calls out of order,
the actor puts them back in order) and long-polls `pull` (one call in flight per
actor, answered at the first message or after `PULL_WAIT_S`), which returns everything
waiting and, once the loop ended, its exit code after its last message. So `receive`
reports each exit once, after the worker's last message; an actor that died (killed,
OOM-killed by Ray or the kernel, its node lost: `RayActorError` and its kinds,
`OutOfMemoryError`) is an `Exited` with code -SIGKILL, like a SIGKILLed local process.
`kill` asks (`terminate`: the island checkpoints and ends, as on SIGTERM), waits `grace`
seconds, then `ray.kill`s. `memory` asks every live actor for its own PSS/USS/RSS and its
node's available memory (psutil inside the actor) and returns one `MemoryReading`.
Each Ray node is a pressure domain (`domains()`: its budget computed on it by
`coordinator.ray_nodes`, an explicit `--memory-budget` capping each node's; `domain_of`:
the node an island's actor ran on at the last reading), so the pressure controller
compares a node's islands (and the coordinator, on its node) with that node's budget.

Does not cover: what the messages mean (the coordinator's parts), the worker loop
(`islands.worker`), processes on this machine without Ray (`coordinator.local`),
per-node budgets (`coordinator.ray_nodes`, computed on each node at `share`), acting on
pressure (`coordinator.pressure`), running on a cluster (docs/cluster.md).
On one machine islands write their checkpoints into the run directory themselves; on a
cluster of several nodes each actor writes a node-local file and its changes come back
with `pull` and land in the run directory (`coordinator.ray_checkpoints`), so restarts
and `islands resume` find them on the coordinator's machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import ray
from ray.exceptions import GetTimeoutError, OutOfMemoryError, RayActorError, RayError

from coordinator.backend import WHOLE_RUN, Domain, Exited, MemoryReading, Received
from coordinator.ray_checkpoints import ShippedCheckpoint, handed_over, land
from coordinator.ray_nodes import NodeBudget, node_budgets
from islands.channel import QueueChannel
from islands.errors import InputError
from islands.protocol import TO_COORDINATOR, ProtocolStats, ToIsland, decode, encode
from islands.worker import EXIT_ERROR, WorkerSpec, serve_island
from memory.budget import format_bytes
from memory.probe import ProcessMemory, own_memory

logger = logging.getLogger("islands.run")

PULL_WAIT_S = 0.5  # how long one `pull` waits in the actor for a first message
MEMORY_WAIT_S = 2.0  # an actor that does not answer a memory call by then is left out
KILLED = -signal.SIGKILL  # an actor that died: reported like a SIGKILLed process
_NOTHING = object()


class IslandActor:
    """One island inside a Ray actor (see the module docstring); made remote below."""

    def __init__(self, spec: WorkerSpec, arrays: Mapping[str, np.ndarray], workdir: str,
                 ship: bool = False, handed: bytes | None = None) -> None:
        if os.path.isdir(workdir):  # relative problem paths mean the coordinator's directory
            os.chdir(workdir)
        with contextlib.suppress(OSError):
            os.nice(1)  # as local islands: the coordinator's memory watch must not starve
        # Shipped checkpoints: a node-local file, its changes sent back with `pull`.
        self.shipper = ShippedCheckpoint(spec, handed) if ship else None
        spec = self.shipper.spec if self.shipper is not None else spec
        self.channel = QueueChannel()  # the in-thread islands' channel, filled by actor calls
        self.stop = threading.Event()
        self.exitcode: int | None = None
        self.next_seq = 0
        self.held: dict[int, bytes] = {}
        self.order = threading.Lock()
        self.thread = threading.Thread(target=self._serve, args=(spec, dict(arrays)),
                                       name=f"island-{spec.island_id}", daemon=True)
        self.thread.start()

    def _serve(self, spec: WorkerSpec, arrays: dict[str, np.ndarray]) -> None:
        try:
            code = serve_island(spec, self.channel, arrays, self.stop.is_set)
        except BaseException:  # serve_island reports its own errors; this is a last resort
            code = EXIT_ERROR
        del arrays
        gc.collect()
        self.exitcode = code
        self.channel.to_coordinator.put(None)  # after its last message: the end

    def push(self, seq: int, data: bytes) -> None:
        """Message number `seq` for the island; held until every earlier one was queued."""
        with self.order:
            self.held[seq] = data
            while self.next_seq in self.held:
                self.channel.to_island.put(self.held.pop(self.next_seq))
                self.next_seq += 1

    def pull(self, wait: float) -> tuple[list[bytes], int | None, bytes | None]:
        """Every message waiting (waiting up to `wait` s for a first); the exit code once
        the loop has ended and its last message is in the list, else None; the island's
        checkpoint if shipped and changed since the last pull, else None."""
        messages, code = self._messages(wait)
        return messages, code, self.shipper.take() if self.shipper is not None else None

    def _messages(self, wait: float) -> tuple[list[bytes], int | None]:
        outbox, messages = self.channel.to_coordinator, []
        try:
            item = outbox.get(timeout=wait) if wait > 0 else outbox.get_nowait()
        except queue.Empty:
            item = _NOTHING
        while item is not _NOTHING:
            if item is None:
                return messages, self.exitcode
            messages.append(item)
            try:
                item = outbox.get_nowait()
            except queue.Empty:
                item = _NOTHING
        return messages, None

    def terminate(self) -> None:
        """As SIGTERM to a local island: checkpoint at the next generation, then end."""
        self.stop.set()

    def memory(self) -> tuple[int, int, int, int, str]:
        """(PSS, USS, RSS) of this actor's process, its node's available bytes, its node id."""
        mine = own_memory()
        return (mine.pss, mine.uss, mine.rss, int(psutil.virtual_memory().available),
                ray.get_runtime_context().get_node_id())


RemoteIsland = ray.remote(max_concurrency=4)(IslandActor)


@dataclass
class _Actor:
    handle: Any
    checkpoint_path: str  # where its shipped checkpoints land (the coordinator's side)
    pending: Any = None  # the `pull` in flight; None once the actor's end was seen
    seq: int = 0
    received: list[Received] = field(default_factory=list)  # collected, not yet returned
    reported: bool = False


class RayBackend:
    """Islands as Ray actors (see the module docstring).

    `slice_bytes` is each island's `memory=` request; `cpus` the CPUs a local Ray instance
    is started with (at least the island count, else actors would wait for a CPU);
    `island_resources(island)` adds custom resources to an island's request (to pin
    islands to nodes); without it islands are spread over the nodes (`SPREAD`).
    `ship_checkpoints` (None: when the cluster has more than one node) sends island
    checkpoints back with the messages (`coordinator.ray_checkpoints`). `budget` (the
    `--memory-budget` size, None: automatic) is applied on each node as a local run
    applies it: never more than that node can give.
    """

    name = "ray"

    def __init__(self, *, address: str | None = None, slice_bytes: int = 0, cpus: int = 1,
                 island_resources: Callable[[int], dict[str, float]] | None = None,
                 ship_checkpoints: bool | None = None, budget: str | int | None = None) -> None:
        self.ship_checkpoints = ship_checkpoints
        self.budget = budget
        self.address = address
        self.slice_bytes = int(slice_bytes)
        self.cpus = max(int(cpus), os.cpu_count() or 1)
        self.island_resources = island_resources
        self.stats = ProtocolStats()
        self.actors: dict[int, _Actor] = {}
        self.arrays: Any = None  # the ObjectRef of the shared arrays
        self.started_ray = False  # this backend started Ray (or connected): it shuts it down
        self.node_of: dict[int, str] = {}  # island -> node id, from the last memory reading
        self.nodes: dict[str, NodeBudget] = {}  # node id -> its budget, computed there
        self.own_node = WHOLE_RUN.name  # the node this coordinator (the driver) runs on

    # -- set-up ----------------------------------------------------------------------------
    def connect(self) -> None:
        """Start a local Ray instance, or connect to `address`, unless Ray is up already."""
        if ray.is_initialized():
            return
        try:
            if self.address is None:
                ray.init(address="local", num_cpus=self.cpus, include_dashboard=False,
                         log_to_driver=False,
                         _memory=self.slice_bytes * (self.cpus + 1) or None)
            else:
                ray.init(address=self.address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
            raise InputError(f"cannot start or reach {where}: {str(error).splitlines()[0]}") from None
        self.started_ray = True

    def check_room(self) -> None:
        """InputError if no node could ever hold one island's memory request."""
        if not self.slice_bytes:
            return
        largest = max((node.get("Resources", {}).get("memory", 0.0)
                       for node in ray.nodes() if node.get("Alive")), default=0.0)
        if largest < self.slice_bytes:
            raise InputError(f"no Ray node offers {self.slice_bytes} bytes of memory for one "
                             f"island (largest: {int(largest)}); lower --memory-budget or add "
                             "nodes with more memory")

    def share(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.connect()
        self.check_room()
        self.nodes = node_budgets(self.budget)
        self.own_node = ray.get_runtime_context().get_node_id()
        for node in self.nodes.values():
            logger.info("[GA] Ray node %s (%s): budget %s of %s, %g CPUs", node.node_id[:8],
                        node.address, format_bytes(node.budget_bytes),
                        format_bytes(node.total_bytes), node.cpus)
        self.arrays = ray.put({name: np.ascontiguousarray(a) for name, a in arrays.items()})

    def spawn(self, spec: WorkerSpec) -> None:
        old = self.actors.pop(spec.island_id, None)
        if old is not None and not old.reported:
            self._end(old)
        if self.arrays is None:
            self.share({})
        # Actors may run in another directory (another node): paths go absolute.
        spec = dataclasses.replace(
            spec, checkpoint_path=str(Path(spec.checkpoint_path).absolute()),
            resume_from=None if spec.resume_from is None else str(Path(spec.resume_from).absolute()))
        options: dict[str, Any] = {"num_cpus": 1, "max_restarts": 0,
                                   "name": f"island-{spec.run_id}-{spec.island_id}-{time.monotonic_ns()}"}
        if self.slice_bytes:
            options["memory"] = self.slice_bytes
        if self.island_resources is not None:
            options["resources"] = dict(self.island_resources(spec.island_id))
        else:
            options["scheduling_strategy"] = "SPREAD"
        ship = self.ship_checkpoints if self.ship_checkpoints is not None else len(self.nodes) > 1
        handle = RemoteIsland.options(**options).remote(
            spec, self.arrays, os.getcwd(), ship, handed_over(spec) if ship else None)
        record = _Actor(handle, spec.checkpoint_path)
        record.pending = handle.pull.remote(PULL_WAIT_S)
        self.actors[spec.island_id] = record

    # -- messages --------------------------------------------------------------------------
    def send(self, worker: int, message: ToIsland) -> bool:
        record = self.actors.get(worker)
        if record is None or record.reported or record.pending is None:
            return False
        record.handle.push.remote(record.seq, encode(message))
        record.seq += 1
        return True

    def receive(self, timeout: float) -> list[Received]:
        waiting = {r.pending: w for w, r in self.actors.items() if r.pending is not None}
        if waiting and not any(r.received for r in self.actors.values()):
            ray.wait(list(waiting), num_returns=1, timeout=timeout)
        if waiting:
            ready, _ = ray.wait(list(waiting), num_returns=len(waiting), timeout=0)
            for ref in ready:
                self._collect(waiting[ref], self.actors[waiting[ref]])
        received: list[Received] = []
        for record in self.actors.values():
            received += record.received
            record.received.clear()
        return received

    def _collect(self, worker: int, record: _Actor) -> None:
        """Take the answer of the `pull` in flight (it is ready) and ask again, or end."""
        try:
            messages, code, checkpoint = ray.get(record.pending)
        except (RayActorError, OutOfMemoryError) as error:
            logger.info("[GA] Island %d's actor died: %s", worker, type(error).__name__)
            messages, code, checkpoint = [], KILLED, None
        except RayError as error:  # the pull itself failed: the channel is gone
            logger.warning("[GA] Island %d's actor failed: %s", worker, error)
            messages, code, checkpoint = [], EXIT_ERROR, None
        if checkpoint is not None:  # before its messages: a restart after them reads it
            try:
                land(record.checkpoint_path, checkpoint)
            except OSError as error:
                logger.warning("[GA] Island %d's shipped checkpoint was not written: %s",
                               worker, error)
        for data in messages:
            message = decode(data, self.stats, expect=TO_COORDINATOR)
            if message is not None and message.island == worker:
                record.received.append(message)
            elif message is not None:
                self.stats.drop("wrong island")
        if code is None:
            record.pending = record.handle.pull.remote(PULL_WAIT_S)
            return
        record.pending = None
        record.reported = True
        record.received.append(Exited(worker, code))
        self._end(record)  # the loop has ended: free its CPU and memory for a restart

    def kill(self, worker: int, grace: float) -> None:
        record = self.actors.get(worker)
        if record is None or record.reported or record.pending is None:
            return
        if grace > 0:
            record.handle.terminate.remote()
            deadline = time.monotonic() + grace
            while record.pending is not None and time.monotonic() < deadline:
                ready, _ = ray.wait([record.pending], timeout=max(deadline - time.monotonic(), 0))
                if ready:
                    self._collect(worker, record)
        if record.pending is not None:
            self._end(record)  # its pull then fails: the Exited comes from `receive`

    @staticmethod
    def _end(record: _Actor) -> None:
        with contextlib.suppress(RayError, ValueError):
            ray.kill(record.handle, no_restart=True)

    # -- memory ----------------------------------------------------------------------------
    def memory(self) -> MemoryReading:
        asked = {r.handle.memory.remote(): w for w, r in self.actors.items()
                 if r.pending is not None}
        here = int(psutil.virtual_memory().available)
        reading = MemoryReading(t=time.monotonic(), own=own_memory(), host_available_bytes=here,
                                own_domain=self.own_node, available_by_domain={self.own_node: here})
        by_node = reading.available_by_domain
        ready = ray.wait(list(asked), num_returns=len(asked), timeout=MEMORY_WAIT_S)[0] if asked else []
        for ref in ready:
            try:
                pss, uss, rss, available, node = ray.get(ref)
            except (RayError, GetTimeoutError):
                continue  # dying: its exit comes through `receive`
            reading.workers[asked[ref]] = ProcessMemory(pss, uss, rss)
            by_node[node] = min(by_node.get(node, available), available)
            # The tightest node speaks for "the host" where one number is wanted.
            reading.host_available_bytes = min(reading.host_available_bytes, available)
            self.node_of[asked[ref]] = node
        return reading

    def domains(self) -> list[Domain]:
        """One per node (before `share`: the whole run). A node whose budget was not
        computed (it joined later, or did not answer in time) but runs islands is held to
        the smallest budget that was."""
        if not self.nodes:
            return [WHOLE_RUN]
        known = [Domain(node.node_id, node.budget_bytes, node.reserve_bytes)
                 for node in self.nodes.values()]
        smallest = min(known, key=lambda domain: domain.budget_bytes)
        unknown = sorted(set(self.node_of.values()) - set(self.nodes))
        return known + [dataclasses.replace(smallest, name=node) for node in unknown]

    def domain_of(self, worker: int) -> str | None:
        if not self.nodes:
            return WHOLE_RUN.name
        return self.node_of.get(worker)

    # -- the end ---------------------------------------------------------------------------
    def close(self) -> None:
        for worker, record in self.actors.items():
            if record.pending is not None:
                self.kill(worker, 1.0)
            self._end(record)
        self.actors.clear()
        self.arrays = None
        if self.started_ray and ray.is_initialized():
            ray.shutdown()  # a local instance stops; a cluster is only left
        self.started_ray = False


__all__ = ["IslandActor", "RayBackend"]

"""The island worker loop, driven through real channels by typed messages, no coordinator.

The toy problem is the built-in `sphere` (cheap generations). Most tests run
`serve_island` in a thread behind a `QueueChannel`: they put encoded protocol messages
into `channel.to_island` and decode what comes out of `channel.to_coordinator`. One test
starts a real island process the way the coordinator does (`coordinator.local.LocalBackend`).
"""

import itertools
import queue
import threading
import time

import numpy as np
import pytest

from coordinator.backend import Exited
from coordinator.local import LocalBackend
from islands import protocol
from islands.channel import QueueChannel
from islands.checkpoint import load_state
from islands.migration import encode_migrants
from islands.params import IslandParams
from islands.protocol import CommandKind, IslandState
from islands.worker import EXIT_OK, MigrationSettings, WorkerSpec, serve_island

WAIT_S = 60.0
SEQ = itertools.count(1)  # command sequence numbers


def make_spec(tmp_path, **overrides):
    values = dict(
        island_id=0, n_islands=2, run_id="test-run", problem_spec="sphere:dim=8",
        params=IslandParams(population=16), checkpoint_path=str(tmp_path / "island-0.msgpack"),
        run_seed=3, best_report_s=0.0, telemetry_s=0.0,
    )
    migration = {"interval": 2, "migrants": 2}
    for key in ("sync", "sync_timeout", "topology", "period_s"):
        if key in overrides:
            migration[key] = overrides.pop(key)
    values.update(overrides)
    return WorkerSpec(**values, migration=MigrationSettings(**migration))


class ServedIsland:
    """One island served in a thread, and the coordinator's end of its channel."""

    def __init__(self, spec, before=()):
        self.spec = spec
        self.channel = QueueChannel()
        self.received = []  # everything the island sent, decoded, in order
        self.read = 0  # how much of `received` `until` has gone through
        self.exit_code = None
        for message in before:  # waiting for the island's first look at its channel
            self.send(message)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.exit_code = serve_island(self.spec, self.channel, {})

    def send(self, message):
        self.channel.to_island.put(message if isinstance(message, bytes) else protocol.encode(message))

    def _pull(self, timeout):
        try:
            data = self.channel.to_coordinator.get(timeout=timeout)
        except queue.Empty:
            return False
        message = protocol.decode(data, expect=protocol.TO_COORDINATOR)
        assert message is not None, data
        self.received.append(message)
        return True

    def until(self, predicate, timeout=WAIT_S):
        """Messages not yet gone through, up to the first that satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        start = self.read
        while time.monotonic() < deadline:
            while self.read < len(self.received):
                self.read += 1
                if predicate(self.received[self.read - 1]):
                    return self.received[start:self.read]
            if not self._pull(0.1) and not self.thread.is_alive() and self.channel.to_coordinator.empty():
                break
        kinds = [type(m).__name__ for m in self.received[start:][-10:]]
        raise AssertionError(f"no matching message; last ones: {kinds}")

    def telemetry(self, generation=0, **fields):
        """The next Telemetry at or after `generation` whose fields match `fields`."""
        return self.until(lambda m: isinstance(m, protocol.Telemetry) and m.generation >= generation
                          and all(getattr(m, k) == v for k, v in fields.items()))[-1]

    def command(self, kind, arg=0.0):
        seq = next(SEQ)
        self.send(protocol.Command(kind, float(arg), seq))
        ack = self.until(lambda m: isinstance(m, protocol.Ack) and m.seq == seq)[-1]
        assert ack.command == kind
        return ack

    def done(self):
        """The island's Done message, after which its thread must end with exit code 0."""
        done = self.until(lambda m: isinstance(m, protocol.Done))[-1]
        self.join()
        return done

    def join(self):
        self.thread.join(WAIT_S)
        assert not self.thread.is_alive()
        assert self.exit_code == EXIT_OK
        return self.exit_code

    def latest_generation(self):
        while self._pull(0):
            pass
        return max((m.generation for m in self.received if isinstance(m, protocol.Telemetry)), default=0)


@pytest.fixture
def start():
    islands = []

    def start_island(spec, before=()):
        island = ServedIsland(spec, before)
        islands.append(island)
        return island

    yield start_island
    for island in islands:
        island.channel.closed.set()
        island.thread.join(WAIT_S)


def test_shrink_grow_clear_cache_and_stop(start, tmp_path):
    island = start(make_spec(tmp_path))
    started = island.until(lambda m: isinstance(m, protocol.Started))[-1]
    assert started == protocol.Started(0, 0, 16, False)
    telemetry = island.telemetry(3)
    assert telemetry.state == IslandState.RUNNING and telemetry.population == 16
    assert telemetry.population_bytes > 0 and telemetry.evaluations > 0

    ack = island.command(CommandKind.SHRINK, 0.5)
    assert ack.population == 8
    assert island.telemetry(ack.generation, population=8).state == IslandState.SHRUNK

    ack = island.command(CommandKind.GROW, 2.0)
    assert ack.population == 16
    assert island.telemetry(ack.generation, population=16).state == IslandState.RUNNING

    ack = island.command(CommandKind.CLEAR_CACHE)
    island.telemetry(ack.generation + 2)  # still evolving after the commands

    ack = island.command(CommandKind.STOP)
    after = island.until(lambda m: isinstance(m, protocol.Done))
    assert after[-1].reason == "stopped" and after[-1].generation == ack.generation
    assert [m.state for m in after if isinstance(m, protocol.Telemetry)][-1] == IslandState.STOPPED
    island.join()
    assert load_state(tmp_path / "island-0.msgpack")["generation"] == ack.generation


def test_pause_growth_blocks_grow_until_resumed(start, tmp_path):
    island = start(make_spec(tmp_path))
    island.telemetry(1)
    island.command(CommandKind.SHRINK, 0.5)
    island.command(CommandKind.PAUSE_GROWTH)
    assert island.command(CommandKind.GROW, 2.0).population == 8
    island.command(CommandKind.RESUME_GROWTH)
    assert island.command(CommandKind.GROW, 2.0).population == 16


def test_paused_island_declines_immigrants(start, tmp_path):
    island = start(make_spec(tmp_path))
    island.telemetry(1)
    island.command(CommandKind.PAUSE_GROWTH)
    island.send(protocol.Deliver(1, 2, encode_migrants("test-run", 1, 2, np.zeros((2, 8)), np.zeros(2))))
    migration = island.until(lambda m: isinstance(m, protocol.Telemetry)
                             and m.migration["declined"] == 2)[-1].migration
    assert migration["received"] == 2 and migration["accepted"] == 0


def test_hibernate_writes_checkpoint_and_the_island_resumes_from_it(start, tmp_path):
    spec = make_spec(tmp_path)
    island = start(spec)
    island.telemetry(4)
    island.command(CommandKind.HIBERNATE)
    done = island.done()
    assert done.reason == "hibernated"
    assert island.received[-2].state == IslandState.HIBERNATED
    saved_generation = done.generation
    state = load_state(tmp_path / "island-0.msgpack")
    assert state["generation"] == saved_generation  # a real, readable checkpoint

    resumed = start(make_spec(tmp_path, resume_from=spec.checkpoint_path,
                              max_generations=saved_generation + 3))
    assert resumed.until(lambda m: isinstance(m, protocol.Started))[-1] == protocol.Started(
        0, saved_generation, 16, True)
    done = resumed.done()
    assert done.reason == "generations"
    # It went on from the checkpoint: exactly three more generations, not from zero.
    assert done.generation == saved_generation + 3
    assert resumed.received[-2].state == IslandState.DONE


def test_bad_migrants_are_dropped_and_counted_good_ones_taken(start, tmp_path):
    island = start(make_spec(tmp_path))
    island.telemetry(1)
    good = encode_migrants("test-run", 1, 2, np.zeros((2, 8)), np.zeros(2))
    wrong_run = encode_migrants("other-run", 1, 2, np.zeros((2, 8)), np.zeros(2))
    wrong_shape = encode_migrants("test-run", 1, 2, np.zeros((2, 5)), np.zeros(2))
    for payload in (b"\x00garbage", wrong_run, wrong_shape, good):
        island.send(protocol.Deliver(1, 2, payload))
    island.send(b"\x93not a migrant message")
    telemetry = island.until(lambda m: isinstance(m, protocol.Telemetry)
                             and m.migration["dropped"] + m.migration["bad_messages"] >= 4
                             and m.migration["accepted"])[-1]
    stats = telemetry.migration
    assert stats["dropped"] == 3 and stats["bad_messages"] == 1
    assert stats["received"] == 2 and stats["accepted"] == 2
    # The zero genome is sphere's optimum: the island must report it as its best.
    is_zero_best = lambda m: isinstance(m, protocol.Improved) and m.fitness == 0.0  # noqa: E731
    best = next((m for m in island.received if is_zero_best(m)), None) or island.until(is_zero_best)[-1]
    genome = np.frombuffer(best.genome, dtype=np.dtype(best.dtype)).reshape(best.shape)
    np.testing.assert_array_equal(genome, np.zeros(8))


def test_migrants_that_come_before_the_first_generation_are_taken_after_it(start, tmp_path):
    good = encode_migrants("test-run", 1, 5, np.zeros((2, 8)), np.zeros(2))
    island = start(make_spec(tmp_path, max_generations=1), before=[protocol.Deliver(1, 5, good)])
    island.done()
    final = [m for m in island.received if isinstance(m, protocol.Telemetry)][-1]
    assert final.migration["received"] == 2 and final.migration["accepted"] == 2
    assert final.best_fitness == 0.0


def test_bad_messages_are_dropped_and_counted(start, tmp_path):
    island = start(make_spec(tmp_path))
    island.telemetry(1)
    island.send(b"\x00garbage")
    # A message meant for the coordinator is no command for an island.
    island.send(protocol.Telemetry(1, IslandState.RUNNING, 0, 0, 0.0, 0, 0, 0, 0, 0))
    island.until(lambda m: isinstance(m, protocol.Telemetry) and m.migration["bad_messages"] == 2)
    assert island.command(CommandKind.CLEAR_CACHE).population == 16  # still listening


def test_sends_emigrants_and_best(start, tmp_path):
    island = start(make_spec(tmp_path, max_generations=6))
    island.done()
    messages = island.received
    assert isinstance(messages[0], protocol.Started)
    assert [m.generation for m in messages if isinstance(m, protocol.Migrants)] == [2, 4, 6]
    bests = [m.fitness for m in messages if isinstance(m, protocol.Improved)]
    assert bests and bests == sorted(bests, reverse=True)
    assert messages[-1] == protocol.Done(0, "generations", 6)


def test_worker_exits_when_the_coordinator_end_closes(start, tmp_path):
    island = start(make_spec(tmp_path))
    island.telemetry(2)
    island.channel.closed.set()
    island.join()


def test_an_exception_is_sent_once_as_failed_and_exits_with_1(start, tmp_path):
    island = start(make_spec(tmp_path, problem_spec="no-such-problem"))
    island.thread.join(WAIT_S)
    assert island.exit_code == 1
    failed = island.until(lambda m: isinstance(m, protocol.Failed))
    assert len(failed) == 1 and "no-such-problem" in failed[0].error


def test_sync_worker_waits_for_its_neighbour_then_goes_on_when_it_is_gone(start, tmp_path):
    # Island 1 never runs: until it is reported gone, island 0 waits at generation 2.
    island = start(make_spec(tmp_path, sync=True, max_generations=4))
    island.telemetry(2)
    time.sleep(0.5)
    assert island.latest_generation() == 2
    island.send(protocol.SourceGone(1, 1))
    done = island.done()
    assert done == protocol.Done(0, "generations", 4)
    assert [m.generation for m in island.received if isinstance(m, protocol.Migrants)] == [2, 4]


def test_sync_worker_holds_early_migrants_until_their_generation(start, tmp_path):
    def payload(generation):
        return encode_migrants("test-run", 1, generation, np.zeros((1, 8)), np.zeros(1))

    # Both arrive before the island evolves: no wait at generation 2 or 4.
    early = [protocol.Deliver(1, 4, payload(4)), protocol.Deliver(1, 2, payload(2))]
    island = start(make_spec(tmp_path, sync=True, max_generations=4), before=early)
    assert island.done() == protocol.Done(0, "generations", 4)
    final = [m for m in island.received if isinstance(m, protocol.Telemetry)][-1]
    assert final.migration["received"] == 2 and final.migration["dropped"] == 0


def test_sync_worker_takes_commands_while_it_waits(start, tmp_path):
    island = start(make_spec(tmp_path, sync=True))
    island.telemetry(2)
    assert island.command(CommandKind.SHRINK, 0.5).generation == 2
    island.command(CommandKind.STOP)
    assert island.done() == protocol.Done(0, "stopped", 2)


def test_sync_floor_skips_the_wait_for_what_a_source_sent_while_away(start, tmp_path):
    # Source 1 sent its migrants of generations <= 4 while this island was away.
    island = start(make_spec(tmp_path, sync=True, max_generations=4, sync_floor={1: 4}))
    assert island.done().generation == 4

    waits = start(make_spec(tmp_path, sync=True, sync_floor={1: 2},
                            checkpoint_path=str(tmp_path / "other.msgpack")))
    waits.telemetry(4)
    time.sleep(0.5)
    assert waits.latest_generation() == 4


def test_source_back_makes_it_wait_again(start, tmp_path):
    island = start(make_spec(tmp_path, sync=True), before=[protocol.SourceGone(1, 0)])
    generation = island.telemetry(10).generation  # not waiting: source 1 is gone
    island.send(protocol.SourceBack(1, generation))
    deadline = time.monotonic() + WAIT_S
    waiting_at, previous = None, -1
    while time.monotonic() < deadline:
        time.sleep(0.3)
        waiting_at = island.latest_generation()
        if waiting_at == previous:
            break
        previous = waiting_at
    assert waiting_at == previous and waiting_at > generation and waiting_at % 2 == 0
    sent = [m.generation for m in island.received if isinstance(m, protocol.Migrants)]
    assert sent[-1] == waiting_at
    # Its migrants of that generation end the wait.
    payload = encode_migrants("test-run", 1, waiting_at, np.zeros((2, 8)), np.zeros(2))
    island.send(protocol.Deliver(1, waiting_at, payload))
    island.telemetry(waiting_at + 1)


def test_hibernate_then_resume_restores_the_island_exactly(start, tmp_path):
    # One island (no migrants): what it does next depends on its state alone.
    spec = make_spec(tmp_path, n_islands=1)
    island = start(spec)
    island.telemetry(4)
    island.command(CommandKind.HIBERNATE)
    island.done()
    hibernated = load_state(tmp_path / "island-0.msgpack")
    generation = hibernated["generation"]

    # Resumed with no generation left to run, it saves exactly the state it was given.
    resumed_path = tmp_path / "resumed.msgpack"
    resumed = start(make_spec(tmp_path, n_islands=1, resume_from=spec.checkpoint_path,
                              checkpoint_path=str(resumed_path), max_generations=generation))
    assert resumed.done().reason == "generations"
    assert load_state(resumed_path) == hibernated

    # And going on from it gives the same genomes as an island that was never stopped.
    continued_path = tmp_path / "continued.msgpack"
    start(make_spec(tmp_path, n_islands=1, resume_from=spec.checkpoint_path,
                    checkpoint_path=str(continued_path), max_generations=generation + 3)).done()
    straight_path = tmp_path / "straight.msgpack"
    start(make_spec(tmp_path, n_islands=1, checkpoint_path=str(straight_path),
                    max_generations=generation + 3)).done()
    after_resume, uninterrupted = load_state(continued_path), load_state(straight_path)
    for key in ("generation", "genomes", "fitness", "rng", "best_genome", "best_fitness"):
        assert after_resume[key] == uninterrupted[key], key


def test_checkpoints_itself_every_checkpoint_interval_seconds(start, tmp_path):
    island = start(make_spec(tmp_path, checkpoint_interval=0.3))
    path = tmp_path / "island-0.msgpack"
    island.telemetry(1)
    deadline = time.monotonic() + WAIT_S
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    first = load_state(path)["generation"]
    saved = {first}
    while len(saved) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
        saved.add(load_state(path)["generation"])  # always a whole file: atomic writes
    assert len(saved) >= 3 and max(saved) > first
    assert island.thread.is_alive()


def test_failed_checkpoint_is_reported_and_the_island_evolves_on(start, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    island = start(make_spec(tmp_path, checkpoint_path=str(blocker / "island-0.msgpack"),
                             max_generations=5))
    failed = island.until(lambda m: isinstance(m, protocol.CheckpointFailed))[-1]
    assert failed.island == 0 and failed.error
    assert island.done().reason == "generations"


def test_island_process_through_the_local_backend(tmp_path):
    backend = LocalBackend()

    def collect(predicate):
        deadline = time.monotonic() + WAIT_S
        collected = []
        while time.monotonic() < deadline:
            for item in backend.receive(0.2):
                collected.append(item)
                if predicate(item):
                    return collected
        raise AssertionError(f"no matching message; last ones: {collected[-10:]}")

    try:
        backend.spawn(make_spec(tmp_path))
        started = collect(lambda m: isinstance(m, protocol.Started))
        assert started == [protocol.Started(0, 0, 16, False)]
        collect(lambda m: isinstance(m, protocol.Telemetry) and m.generation >= 2)
        backend.send(0, protocol.Command(CommandKind.SHRINK, 0.5, 1))
        assert collect(lambda m: isinstance(m, protocol.Ack))[-1].population == 8
        backend.send(0, protocol.Command(CommandKind.STOP, 0.0, 2))
        ending = collect(lambda m: isinstance(m, Exited))
        done = [m for m in ending if isinstance(m, protocol.Done)]
        assert [d.reason for d in done] == ["stopped"]
        assert ending[-1] == Exited(0, 0)
        assert load_state(tmp_path / "island-0.msgpack")["generation"] == done[0].generation
    finally:
        backend.close()


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
def test_migration_period_limits_async_migrations_per_second_not_lockstep(tmp_path, sync):
    # A neighbour that answers every lockstep generation: island 1 is "gone" from the start.
    spec = make_spec(tmp_path, max_generations=200, period_s=3600.0, sync=sync)
    island = ServedIsland(spec, before=[protocol.SourceGone(1, 0)] if sync else ())
    island.done()
    sent = [m for m in island.received if isinstance(m, protocol.Migrants)]
    # Interval 2 over 200 generations: 100 migrations, unless the period holds them back.
    assert len(sent) == (100 if sync else 1)
    assert sent[0].generation == 2

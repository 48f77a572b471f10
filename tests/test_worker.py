"""The island worker loop in real processes, driven through a real ledger and pipes.

The toy problem is the built-in `sphere` (cheap generations); the worker is started
the way the coordinator starts it (`coordinator.local.LocalBackend`, spawn context).
"""

import time

import pytest

from coordinator.local import LocalBackend
from islands.checkpoint import load_state
from islands.migration import encode_migrants
from islands.worker import WorkerSpec
from memory.shared import Command, IslandState, Ledger

WAIT_S = 60.0


@pytest.fixture
def ledger():
    table = Ledger.create(2)
    yield table
    table.close()
    table.unlink()


@pytest.fixture
def backend():
    started = []
    local = LocalBackend()
    original = local.start

    def start(spec):
        handle = original(spec)
        started.append(handle)
        return handle

    local.start = start
    yield local
    for handle in started:
        local.terminate(handle, grace_s=1.0)
        local.close(handle)


def make_spec(ledger, tmp_path, **overrides):
    values = dict(
        island_id=0, n_islands=2, run_id="test-run", problem_spec="sphere:dim=8",
        ledger_handle=ledger.handle, checkpoint_path=str(tmp_path / "island-0.msgpack"),
        population=16, run_seed=3, migration_interval=2, migrants=2,
        best_report_seconds=0.0, telemetry_seconds=0.0,
    )
    values.update(overrides)
    return WorkerSpec(**values)


def messages_until(backend, handle, predicate, timeout=WAIT_S):
    """Collect messages until one satisfies `predicate`; return all collected up to it.

    Messages after the match stay in `handle.messages` for the next call.
    """
    collected = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        while handle.messages:
            message = handle.messages.pop(0)
            collected.append(message)
            if predicate(message):
                return collected
        backend.wait([handle], 0.1)
        handle.messages.extend(backend.receive(handle))
        if not handle.messages and not handle.outbox_open:
            break
    raise AssertionError(f"no matching message; last ones: {[m[0] for m in collected[-10:]]}")


def wait_for_generation(ledger, island, generation, timeout=WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ledger.row(island)["generation"] >= generation:
            return
        time.sleep(0.02)
    raise AssertionError(f"island {island} never reached generation {generation}")


def command(backend, handle, ledger, kind, arg=0.0):
    seq = ledger.send_command(handle.island_id, kind, arg)
    return messages_until(backend, handle, lambda m: m[0] == "ack" and m[3] == seq)[-1]


def test_shrink_grow_clear_cache_and_stop(ledger, backend, tmp_path):
    handle = backend.start(make_spec(ledger, tmp_path))
    wait_for_generation(ledger, 0, 3)
    assert ledger.row(0)["state"] == IslandState.RUNNING
    assert ledger.row(0)["pid"] == handle.pid
    assert ledger.row(0)["measured_bytes"] > 0

    ack = command(backend, handle, ledger, Command.SHRINK, 0.5)
    assert ack[2] == "shrink" and ack[4]["population"] == 8
    assert ledger.row(0)["population"] == 8
    assert ledger.row(0)["state"] == IslandState.SHRUNK

    ack = command(backend, handle, ledger, Command.GROW, 2.0)
    assert ack[4]["population"] == 16
    assert ledger.row(0)["state"] == IslandState.RUNNING

    assert command(backend, handle, ledger, Command.CLEAR_CACHE)[2] == "clear_cache"
    generation = ledger.row(0)["generation"]
    wait_for_generation(ledger, 0, generation + 2)  # still evolving after the commands

    command(backend, handle, ledger, Command.STOP)
    done = messages_until(backend, handle, lambda m: m[0] == "done")
    assert done[-1][2] == "stopped"
    handle.process.join(WAIT_S)
    assert handle.process.exitcode == 0
    assert ledger.row(0)["state"] == IslandState.STOPPED
    assert ledger.row(0)["command_ack"] == ledger.row(0)["command_seq"]


def test_pause_growth_blocks_grow_until_resumed(ledger, backend, tmp_path):
    handle = backend.start(make_spec(ledger, tmp_path))
    wait_for_generation(ledger, 0, 1)
    command(backend, handle, ledger, Command.SHRINK, 0.5)
    command(backend, handle, ledger, Command.PAUSE_GROWTH)
    assert command(backend, handle, ledger, Command.GROW, 2.0)[4]["population"] == 8
    command(backend, handle, ledger, Command.RESUME_GROWTH)
    assert command(backend, handle, ledger, Command.GROW, 2.0)[4]["population"] == 16


def test_hibernate_writes_checkpoint_and_the_island_resumes_from_it(ledger, backend, tmp_path):
    spec = make_spec(ledger, tmp_path)
    handle = backend.start(spec)
    wait_for_generation(ledger, 0, 4)
    command(backend, handle, ledger, Command.HIBERNATE)
    messages = messages_until(backend, handle, lambda m: m[0] == "done")
    assert ("hibernated", 0, spec.checkpoint_path) in messages
    handle.process.join(WAIT_S)
    assert handle.process.exitcode == 0
    assert ledger.row(0)["state"] == IslandState.HIBERNATED
    saved_generation = ledger.row(0)["generation"]
    state = load_state(tmp_path / "island-0.msgpack")
    assert state  # a real, readable checkpoint

    resumed = backend.start(make_spec(ledger, tmp_path, resume_from=spec.checkpoint_path,
                                      max_generations=saved_generation + 3))
    done = messages_until(backend, resumed, lambda m: m[0] == "done")
    assert done[-1][2] == "generations"
    resumed.process.join(WAIT_S)
    # It went on from the checkpoint: exactly three more generations, not from zero.
    assert ledger.row(0)["generation"] == saved_generation + 3
    assert ledger.row(0)["state"] == IslandState.DONE


def test_bad_migrants_are_dropped_and_counted_good_ones_taken(ledger, backend, tmp_path):
    import numpy as np

    handle = backend.start(make_spec(ledger, tmp_path))
    wait_for_generation(ledger, 0, 1)
    good = encode_migrants("test-run", 1, 2, np.zeros((2, 8)), np.zeros(2))
    wrong_run = encode_migrants("other-run", 1, 2, np.zeros((2, 8)), np.zeros(2))
    wrong_shape = encode_migrants("test-run", 1, 2, np.zeros((2, 5)), np.zeros(2))
    for payload in (b"\x00garbage", wrong_run, wrong_shape, good):
        handle.inbox.put(("migrants", 1, 2, payload))
    handle.inbox.put(("not a migrant message",))
    seen = []
    stats = {}
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and not (stats.get("dropped", 0) >= 4 and stats.get("accepted")):
        seen += messages_until(backend, handle, lambda m: m[0] == "stats")
        stats = seen[-1][2]
    assert stats["dropped"] == 4
    assert stats["received"] == 2 and stats["accepted"] == 2
    # The zero genome is sphere's optimum: the island must report it as its best.
    if not any(m[0] == "best" and m[3] == 0.0 for m in seen):
        messages_until(backend, handle, lambda m: m[0] == "best" and m[3] == 0.0)


def test_sends_emigrants_and_best(ledger, backend, tmp_path):
    handle = backend.start(make_spec(ledger, tmp_path, max_generations=6))
    messages = messages_until(backend, handle, lambda m: m[0] == "done")
    kinds = [m[0] for m in messages]
    assert kinds[0] == "started"
    assert [m[2] for m in messages if m[0] == "migrants"] == [2, 4, 6]
    bests = [m[3] for m in messages if m[0] == "best"]
    assert bests and bests == sorted(bests, reverse=True)
    assert messages[-1] == ("done", 0, "generations")


def test_worker_exits_when_the_coordinator_pipe_closes(ledger, backend, tmp_path):
    handle = backend.start(make_spec(ledger, tmp_path))
    wait_for_generation(ledger, 0, 2)
    handle.outbox.close()
    handle.outbox_open = False
    handle.process.join(WAIT_S)
    assert not handle.process.is_alive()


def test_sync_worker_waits_for_its_neighbour_then_goes_on_when_it_is_gone(ledger, backend, tmp_path):
    # Island 1 never runs: while its row says RUNNING island 0 waits at generation 2.
    ledger.update(1, state=int(IslandState.RUNNING))
    handle = backend.start(make_spec(ledger, tmp_path, sync=True, max_generations=4))
    wait_for_generation(ledger, 0, 2)
    time.sleep(0.5)
    assert ledger.row(0)["generation"] == 2
    ledger.update(1, state=int(IslandState.FAILED))
    messages = messages_until(backend, handle, lambda m: m[0] == "done")
    assert messages[-1] == ("done", 0, "generations")


def test_hibernate_then_resume_restores_the_island_exactly(ledger, backend, tmp_path):
    # One island (no migrants): what it does next depends on its state alone.
    spec = make_spec(ledger, tmp_path, n_islands=1)
    handle = backend.start(spec)
    wait_for_generation(ledger, 0, 4)
    command(backend, handle, ledger, Command.HIBERNATE)
    messages_until(backend, handle, lambda m: m[0] == "done")
    handle.process.join(WAIT_S)
    hibernated = load_state(tmp_path / "island-0.msgpack")
    generation = hibernated["generation"]

    # Resumed with no generation left to run, it saves exactly the state it was given.
    resumed_path = tmp_path / "resumed.msgpack"
    resumed = backend.start(make_spec(ledger, tmp_path, n_islands=1,
                                      resume_from=spec.checkpoint_path,
                                      checkpoint_path=str(resumed_path),
                                      max_generations=generation))
    assert messages_until(backend, resumed, lambda m: m[0] == "done")[-1][2] == "generations"
    resumed.process.join(WAIT_S)
    assert load_state(resumed_path) == hibernated

    # And going on from it gives the same genomes as an island that was never stopped.
    continued_path = tmp_path / "continued.msgpack"
    continued = backend.start(make_spec(ledger, tmp_path, n_islands=1,
                                        resume_from=spec.checkpoint_path,
                                        checkpoint_path=str(continued_path),
                                        max_generations=generation + 3))
    messages_until(backend, continued, lambda m: m[0] == "done")
    continued.process.join(WAIT_S)
    straight_path = tmp_path / "straight.msgpack"
    straight = backend.start(make_spec(ledger, tmp_path, n_islands=1,
                                       checkpoint_path=str(straight_path),
                                       max_generations=generation + 3))
    messages_until(backend, straight, lambda m: m[0] == "done")
    straight.process.join(WAIT_S)
    after_resume, uninterrupted = load_state(continued_path), load_state(straight_path)
    for key in ("generation", "genomes", "fitness", "rng", "best_genome", "best_fitness"):
        assert after_resume[key] == uninterrupted[key], key


def test_checkpoints_itself_every_checkpoint_interval_seconds(ledger, backend, tmp_path):
    handle = backend.start(make_spec(ledger, tmp_path, checkpoint_interval=0.3))
    path = tmp_path / "island-0.msgpack"
    wait_for_generation(ledger, 0, 1)
    deadline = time.monotonic() + WAIT_S
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    first = load_state(path)["generation"]
    saved = {first}
    while len(saved) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
        # Drain the island's messages: a full pipe would block it (and its checkpoints).
        backend.receive(handle)
        saved.add(load_state(path)["generation"])  # always a whole file: atomic writes
    assert len(saved) >= 3 and max(saved) > first
    assert handle.process.is_alive()

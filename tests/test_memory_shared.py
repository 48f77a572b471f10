"""memory.shared: shared arrays across real processes, PSS vs RSS, dead sweeps."""

import errno
import multiprocessing
import os
import pickle
import signal

import numpy as np
import pytest

from memory.probe import ProcessProbe
from memory.shared import (
    SharedArray,
    SharedMemoryError,
    segment_name,
    sweep_dead_segments,
)

SPAWN = multiprocessing.get_context("spawn")
MIB = 1 << 20


def _segment_exists(name: str) -> bool:
    return os.path.exists(f"/dev/shm/{name}")


# --- a child process driven by messages (module level so spawn can import it) -------------
def _child_main(inbox, outbox):
    attached = {}
    while True:
        message = inbox.get()
        kind = message[0]
        if kind == "stop":
            for shared in attached.values():
                shared.close()
            outbox.put(("stopped",))
            return
        if kind == "attach":
            shared = SharedArray.attach(message[1])
            attached["a"] = shared
            outbox.put(("attached", float(shared.array.sum())))  # reads every page
        elif kind == "write":
            attached["a"].array[message[1]] = message[2]
            outbox.put(("written",))
        elif kind == "read":
            outbox.put(("value", float(attached["a"].array[message[1]])))
        elif kind == "own":
            owned = SharedArray.create((1024,), np.uint8, tag="orphan")
            owned.array[:] = 7
            outbox.put(("owned", owned.name))
        elif kind == "ready":
            outbox.put(("ready",))


class Child:
    def __init__(self):
        self.inbox = SPAWN.Queue()
        self.outbox = SPAWN.Queue()
        self.process = SPAWN.Process(
            target=_child_main, args=(self.inbox, self.outbox), daemon=True
        )
        self.process.start()

    def ask(self, *message, timeout=60):
        self.inbox.put(message)
        return self.outbox.get(timeout=timeout)

    def stop(self):
        if self.process.is_alive():
            self.ask("stop")
        self.process.join(30)


@pytest.fixture
def children(request):
    started = []

    def start(n):
        for _ in range(n):
            started.append(Child())
        for child in started:
            assert child.ask("ready") == ("ready",)
        return started

    yield start
    for child in started:
        child.stop()


# --- single process ---------------------------------------------------------------------
def test_names_are_short_and_carry_the_owner_pid():
    name = segment_name("ledger")
    prefix, pid, tag, counter = name.split("_")
    assert (prefix, int(pid), tag) == ("islands", os.getpid(), "ledger")
    assert int(counter) >= 0
    assert len(name) <= 30
    with pytest.raises(ValueError, match="invalid shared array tag"):
        segment_name("has_underscore")


def test_create_attach_close_unlink_in_one_process():
    source = np.arange(12, dtype=np.float32).reshape(3, 4)
    owner = SharedArray.from_array(source, tag="t")
    handle = pickle.loads(pickle.dumps(owner.handle))
    other = SharedArray.attach(handle)
    assert other.array.dtype == np.float32 and other.array.shape == (3, 4)
    np.testing.assert_array_equal(other.array, source)
    other.array[2, 3] = -1
    assert owner.array[2, 3] == -1  # same pages, no copy
    with pytest.raises(PermissionError, match="only the owner may unlink"):
        other.unlink()
    other.close()
    other.close()  # idempotent
    with pytest.raises(ValueError, match="is closed"):
        _ = other.array
    owner.close()
    owner.unlink()
    assert not _segment_exists(owner.name)
    with pytest.raises(SharedMemoryError, match="does not exist"):
        SharedArray.attach(handle)


def test_readonly_attach_and_empty_array():
    owner = SharedArray.from_array(np.ones(4, dtype=np.int32), tag="ro")
    empty = SharedArray.create((0,), np.float64, tag="empty")
    try:
        reader = SharedArray.attach(owner.handle, readonly=True)
        with pytest.raises(ValueError, match="read-only"):
            reader.array[0] = 5
        assert reader.array.sum() == 4
        reader.close()
        assert SharedArray.attach(empty.handle).array.shape == (0,)
    finally:
        for shared in (owner, empty):
            shared.close()
            shared.unlink()


def test_close_refuses_while_views_are_alive():
    owner = SharedArray.create((8,), np.int64, tag="views")
    try:
        view = owner.array[2:4]
        with pytest.raises(BufferError, match="still has live numpy views"):
            owner.close()
        del view
    finally:
        owner.close()
        owner.unlink()


def test_full_shm_fails_at_creation_with_a_clear_error(monkeypatch):
    # A full /dev/shm cannot be produced on demand on a shared machine: fake the fallocate
    # failure the kernel would give, and check the segment is not left behind.
    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    before = set(os.listdir("/dev/shm"))
    with pytest.raises(
        SharedMemoryError,
        match=r"cannot reserve 64MB of shared memory for 'islands_\d+_big_\d+': no space left",
    ):
        SharedArray.create((64 * MIB,), np.uint8, tag="big")
    assert set(os.listdir("/dev/shm")) == before


def test_structured_dtype_round_trips_through_the_handle():
    dtype = np.dtype([("count", "<i8"), ("score", "<f8"), ("pair", "<i4", (2,))])
    owner = SharedArray.create((2,), dtype, tag="struct")
    try:
        reopened = SharedArray.attach(pickle.loads(pickle.dumps(owner.handle)))
        assert reopened.array.dtype == dtype and reopened.array.shape == (2,)
        reopened.array["count"][0] = 3
        reopened.array["pair"][1] = (5, 6)
        assert owner.array["count"][0] == 3
        assert owner.array["pair"][1].tolist() == [5, 6]
        reopened.close()
    finally:
        owner.close()
        owner.unlink()


def test_sweep_keeps_live_owners_and_ignores_other_names(tmp_path):
    live = tmp_path / f"islands_{os.getpid()}_arr_0"
    live.write_bytes(b"x")
    parent = tmp_path / f"islands_{os.getppid()}_arr_1"
    parent.write_bytes(b"x")
    foreign = tmp_path / "psm_12345"
    foreign.write_bytes(b"x")
    assert sweep_dead_segments(shm_dir=str(tmp_path)) == []
    assert live.exists() and parent.exists() and foreign.exists()


# --- real processes ------------------------------------------------------------------------
@pytest.mark.slow
def test_two_children_share_one_array_and_see_each_others_writes(children):
    first, second = children(2)
    owner = SharedArray.create((1000,), np.float64, tag="share")
    try:
        owner.array[:] = 1.0
        assert first.ask("attach", owner.handle) == ("attached", 1000.0)
        assert second.ask("attach", owner.handle) == ("attached", 1000.0)
        assert first.ask("write", 10, 42.0) == ("written",)
        assert second.ask("read", 10) == ("value", 42.0)
        assert second.ask("write", 11, -7.5) == ("written",)
        assert first.ask("read", 11) == ("value", -7.5)
        assert owner.array[10] == 42.0 and owner.array[11] == -7.5
        for child in (first, second):
            child.stop()
        # The children have exited; the segment is still there (no tracker unlinked it).
        assert _segment_exists(owner.name)
    finally:
        owner.close()
        owner.unlink()


@pytest.mark.slow
def test_pss_counts_shared_array_once_rss_three_times(children):
    kids = children(2)
    pids = [os.getpid()] + [child.process.pid for child in kids]
    probe = ProcessProbe()
    before = probe.sample(pids)
    size = 64 * MIB
    owner = SharedArray.create((size // 8,), np.float64, tag="pss")
    try:
        owner.array[:] = 1.0  # touch every page in the parent
        for child in kids:
            assert child.ask("attach", owner.handle) == ("attached", float(size // 8))
        after = probe.sample(pids)
        assert set(after.pss_by_pid) == set(pids)
        pss_growth = after.pss_total - before.pss_total
        rss_growth = after.rss_total - before.rss_total
        assert 0.9 * size <= pss_growth <= 1.1 * size, pss_growth / MIB
        assert 2.7 * size <= rss_growth <= 3.3 * size, rss_growth / MIB
    finally:
        for child in kids:
            child.stop()
        owner.close()
        owner.unlink()


@pytest.mark.slow
def test_segment_of_sigkilled_owner_is_swept(children):
    (child,) = children(1)
    kind, name = child.ask("own")
    assert kind == "owned" and name.startswith(f"islands_{child.process.pid}_orphan_")
    os.kill(child.process.pid, signal.SIGKILL)
    child.process.join(30)
    assert _segment_exists(name)  # nothing cleaned up after the killed owner
    mine = SharedArray.create((16,), np.uint8, tag="mine")
    try:
        removed = sweep_dead_segments()
        assert name in removed
        assert not _segment_exists(name)
        assert mine.name not in removed and _segment_exists(mine.name)
    finally:
        mine.close()
        mine.unlink()

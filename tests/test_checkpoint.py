"""Checkpoint codec: atomic writes survive failures, bad files give one InputError line."""

import os

import msgpack
import numpy as np
import pytest

from islands import checkpoint
from islands.checkpoint import atomic_write_bytes, load_state, pack_array, save_state, unpack_array
from islands.errors import InputError


def test_save_and_load_round_trip(tmp_path):
    path = tmp_path / "island-0.ckpt"
    state = {"generation": 7, "name": "x", "nested": {"data": b"\x00\x01", "values": [1.5, -2]}}
    save_state(path, state)
    assert load_state(path) == state
    document = msgpack.unpackb(path.read_bytes(), raw=False)
    assert document["format"] == "islands-checkpoint" and document["v"] == 1


def test_overwrite_replaces_content_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "ckpt"
    save_state(path, {"n": 1})
    save_state(path, {"n": 2})
    assert load_state(path) == {"n": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_failed_replace_leaves_the_previous_checkpoint_readable(tmp_path, monkeypatch):
    path = tmp_path / "ckpt"
    save_state(path, {"generation": 1})

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    # The temp file is fully written and fsynced; only the final rename fails.
    monkeypatch.setattr(checkpoint.os, "replace", failing_replace)
    with pytest.raises(OSError):
        save_state(path, {"generation": 2, "big": b"x" * 100_000})
    monkeypatch.undo()
    assert load_state(path) == {"generation": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_directory_leaves_the_previous_checkpoint_readable(tmp_path):
    path = tmp_path / "ckpt"
    save_state(path, {"generation": 1})
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(OSError):
            save_state(path, {"generation": 2})
    finally:
        tmp_path.chmod(0o755)
    assert load_state(path) == {"generation": 1}


def test_interrupted_write_leaves_the_previous_checkpoint_readable(tmp_path, monkeypatch):
    path = tmp_path / "ckpt"
    save_state(path, {"generation": 1})
    real_fsync = os.fsync

    def crash_on_fsync(fd):
        real_fsync(fd)
        raise KeyboardInterrupt  # Ctrl-C in the middle of a write

    monkeypatch.setattr(checkpoint.os, "fsync", crash_on_fsync)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(path, b"half")
    monkeypatch.undo()
    assert load_state(path) == {"generation": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"", "not a readable checkpoint"),
        (b"\xc1\xc1garbage", "not a readable checkpoint"),
        (msgpack.packb([1, 2, 3]), "not an islands checkpoint"),
        (msgpack.packb({"format": "something-else", "v": 1}), "not an islands checkpoint"),
        (msgpack.packb({"format": "islands-checkpoint", "v": 99, "state": {}}), "version 99"),
        (msgpack.packb({"format": "islands-checkpoint", "v": 1, "state": 3}), "no state map"),
    ],
)
def test_bad_files_raise_input_error_naming_the_file(tmp_path, content, fragment):
    path = tmp_path / "bad.ckpt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=fragment) as raised:
        load_state(path)
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)


def test_truncated_checkpoint_raises_input_error(tmp_path):
    path = tmp_path / "ckpt"
    save_state(path, {"data": b"y" * 1000})
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(InputError, match=str(path)):
        load_state(path)


def test_missing_file_raises_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot read checkpoint"):
        load_state(tmp_path / "nope.ckpt")


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.int32).reshape(3, 4),
        np.linspace(0, 1, 7),
        np.arange(6, dtype=">i8").reshape(2, 3),  # big-endian input comes back native
        np.empty((0, 5), dtype=np.float32),
        np.array(3.5),
    ],
)
def test_pack_array_round_trip(array):
    packed = msgpack.unpackb(msgpack.packb(pack_array(array)), raw=False)
    restored = unpack_array(packed)
    np.testing.assert_array_equal(restored, array)
    assert restored.shape == array.shape and restored.flags.writeable
    assert restored.dtype == array.dtype.newbyteorder("=")


@pytest.mark.parametrize(
    "packed",
    [
        None,
        {"dtype": "<f8", "shape": [2]},
        {"dtype": "<f8", "shape": [3], "data": b"\x00" * 16},
        {"dtype": "nonsense", "shape": [1], "data": b"\x00" * 8},
        {"dtype": "|O", "shape": [1], "data": b"\x00" * 8},
        {"dtype": "<f8", "shape": [-1], "data": b""},
        {"dtype": "<f8", "shape": [2**62, 2**62], "data": b""},
    ],
)
def test_unpack_array_rejects_malformed_maps(packed):
    with pytest.raises(InputError):
        unpack_array(packed)

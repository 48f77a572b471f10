"""memory.cache: BoundedCache never exceeds either bound and behaves like a reference LRU."""

from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from memory.cache import BoundedCache, default_getsizeof


class ReferenceLRU:
    """The obvious model: an OrderedDict, oldest first, evicted until both bounds hold."""

    def __init__(self, max_entries, max_bytes):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.data = OrderedDict()

    def size(self):
        return sum(self.data.values())

    def set(self, key, value):
        self.data.pop(key, None)
        if self.max_bytes is not None and value > self.max_bytes:
            return
        if self.max_entries == 0:
            return
        self.data[key] = value
        self._evict()

    def get(self, key):
        if key in self.data:
            self.data.move_to_end(key)
            return self.data[key]
        return None

    def resize(self, max_entries, max_bytes):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        for key in [k for k, v in self.data.items() if max_bytes is not None and v > max_bytes]:
            del self.data[key]
        self._evict()

    def _evict(self):
        while (self.max_entries is not None and len(self.data) > self.max_entries) or (
            self.max_bytes is not None and self.size() > self.max_bytes
        ):
            self.data.popitem(last=False)


bounds = st.one_of(st.none(), st.integers(0, 12))
byte_bounds = st.one_of(st.none(), st.integers(0, 600))
keys = st.integers(0, 15)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), keys, st.integers(0, 250)),
        st.tuples(st.just("get"), keys),
        st.tuples(st.just("resize"), bounds, byte_bounds),
        st.tuples(st.just("clear")),
    ),
    max_size=80,
)


@given(max_entries=bounds, max_bytes=byte_bounds, ops=operations)
def test_never_exceeds_either_bound_and_matches_reference(max_entries, max_bytes, ops):
    # A value is its own size, so the byte count is checkable exactly.
    cache = BoundedCache(max_entries=max_entries, max_bytes=max_bytes, getsizeof=lambda v: v)
    model = ReferenceLRU(max_entries, max_bytes)
    hits = misses = 0
    for op in ops:
        if op[0] == "set":
            cache.set(op[1], op[2])
            model.set(op[1], op[2])
        elif op[0] == "get":
            expected = model.get(op[1])
            assert cache.get(op[1]) == expected
            hits += expected is not None
            misses += expected is None
        elif op[0] == "resize":
            cache.resize(max_entries=op[1], max_bytes=op[2])
            model.resize(op[1], op[2])
        else:
            cache.clear()
            model.data.clear()
        if cache.max_entries is not None:
            assert len(cache) <= cache.max_entries
        if cache.max_bytes is not None:
            assert cache.bytes <= cache.max_bytes
        assert cache.bytes == model.size()
        assert len(cache) == len(model.data)
        assert all(key in cache for key in model.data)
    stats = cache.stats
    assert (stats.hits, stats.misses) == (hits, misses)
    assert (stats.entries, stats.bytes) == (len(cache), cache.bytes)


def test_lru_order_and_eviction_count():
    cache = BoundedCache(max_entries=2)
    cache.set("a", 1)
    cache.set("b", 2)
    assert cache.get("a") == 1  # "b" is now least recently used
    cache.set("c", 3)
    assert "b" not in cache and "a" in cache and "c" in cache
    assert cache.stats.evictions == 1


def test_value_larger_than_max_bytes_not_stored_and_stale_value_dropped():
    cache = BoundedCache(max_bytes=100, getsizeof=len)
    assert cache.set("k", b"x" * 10)
    assert not cache.set("k", b"x" * 101)
    assert "k" not in cache
    assert cache.bytes == 0


def test_resize_evicts_at_once_oldest_first():
    cache = BoundedCache(getsizeof=lambda v: v)
    for key in range(10):
        cache.set(key, 10)
    cache.get(0)  # most recently used now
    evicted = cache.resize(max_entries=3)
    assert evicted == 7
    assert sorted(k for k in range(10) if k in cache) == [0, 8, 9]
    cache.resize(max_bytes=15)
    assert len(cache) == 1 and 0 in cache
    assert cache.stats.evictions == 9


def test_numpy_arrays_sized_by_nbytes():
    array = np.zeros(1000, dtype=np.float64)
    assert default_getsizeof(array) == 8000
    cache = BoundedCache(max_bytes=20_000)
    cache.set("a", array)
    cache.set("b", array.copy())
    assert cache.bytes == 16000
    cache.set("c", array.copy())
    assert len(cache) == 2 and "a" not in cache


def test_bad_bounds_rejected():
    with pytest.raises(ValueError, match="invalid cache bound max_entries=-1"):
        BoundedCache(max_entries=-1)
    with pytest.raises(ValueError, match="invalid cache bound max_bytes='1G'"):
        BoundedCache(max_bytes="1G")

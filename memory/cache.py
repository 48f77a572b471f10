"""A least-recently-used cache bounded both by entry count and by bytes (the fitness cache).

Covers: `BoundedCache` (get/set/clear/resize, hit/miss/eviction counts) and the default
size function (`.nbytes` for numpy arrays, `sys.getsizeof` otherwise).

Does not cover: what is cached or how keys are made (`islands`, e.g. `genome_key()`), nor
when to shrink it (the coordinator sends CLEAR_CACHE / SHRINK; the island calls `resize`).

Built on `cachetools.LRUCache`: its `maxsize` + `getsizeof` give the byte bound and the
eviction order; the entry bound is enforced here before each insert (popping the least
recently used entry), so cachetools' own `popitem` stays the one eviction path. cachetools
cannot change `maxsize` in place, so `resize` drains the old cache in LRU order into a new
one, which evicts down to the new bounds at once. Not thread-safe (one island, one thread).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
from cachetools import LRUCache

_UNCHANGED: Any = object()


def default_getsizeof(value: Any) -> int:
    """Bytes a cached value takes: `.nbytes` for numpy arrays, `sys.getsizeof` otherwise."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    return sys.getsizeof(value)


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    evictions: int
    bytes: int
    entries: int


class _CountingLRU(LRUCache):
    """cachetools LRU that counts its evictions (every eviction goes through popitem)."""

    def __init__(self, maxsize: float, getsizeof: Callable[[Any], int]):
        super().__init__(maxsize, getsizeof)
        self.evictions = 0

    def popitem(self):
        item = super().popitem()
        self.evictions += 1
        return item


def _check_bound(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"invalid cache bound {name}={value!r}: must be a non-negative int or None"
        )
    return value


class BoundedCache:
    """LRU cache holding at most `max_entries` entries and `max_bytes` bytes (None = unbounded)."""

    def __init__(
        self,
        max_entries: int | None = None,
        max_bytes: int | None = None,
        getsizeof: Callable[[Any], int] | None = None,
    ):
        self._max_entries = _check_bound("max_entries", max_entries)
        self._max_bytes = _check_bound("max_bytes", max_bytes)
        self._getsizeof = getsizeof if getsizeof is not None else default_getsizeof
        self._lru = self._new_lru()
        self._hits = 0
        self._misses = 0
        self._evictions = 0  # evictions by earlier (resized or cleared) inner caches

    def _new_lru(self) -> _CountingLRU:
        maxsize = math.inf if self._max_bytes is None else self._max_bytes
        return _CountingLRU(maxsize, self._getsizeof)

    @property
    def max_entries(self) -> int | None:
        return self._max_entries

    @property
    def max_bytes(self) -> int | None:
        return self._max_bytes

    @property
    def bytes(self) -> int:
        """Bytes currently held, by the size function."""
        return int(self._lru.currsize)

    @property
    def stats(self) -> CacheStats:
        return CacheStats(
            hits=self._hits,
            misses=self._misses,
            evictions=self._evictions + self._lru.evictions,
            bytes=self.bytes,
            entries=len(self._lru),
        )

    @property
    def lookups(self) -> tuple[int, int]:
        """(hits, misses) so far: `stats` without building it (cheap enough per generation)."""
        return self._hits, self._misses

    def __len__(self) -> int:
        return len(self._lru)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._lru

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value for `key` (marking it recently used), or `default`."""
        try:
            value = self._lru[key]
        except KeyError:
            self._misses += 1
            return default
        self._hits += 1
        return value

    def set(self, key: Hashable, value: Any) -> bool:
        """Store `value`, evicting least recently used entries; False if it could not be stored.

        A value larger than `max_bytes` is not stored (and an older value under `key` is dropped,
        since it is stale).
        """
        # Drop the old value first so eviction sees the cache without it (cachetools would
        # otherwise count the old size while making room, and may evict more than needed).
        self._lru.pop(key, None)
        size = self._getsizeof(value)
        if self._max_bytes is not None and size > self._max_bytes:
            return False
        if self._max_entries is not None:
            if self._max_entries == 0:
                return False
            while len(self._lru) >= self._max_entries:
                self._lru.popitem()
        self._lru[key] = value
        return True

    def clear(self) -> None:
        """Drop every entry (counts are kept; cleared entries are not evictions)."""
        self._evictions += self._lru.evictions
        self._lru = self._new_lru()

    def resize(
        self, max_entries: int | None = _UNCHANGED, max_bytes: int | None = _UNCHANGED
    ) -> int:
        """Change the bounds (None = unbounded, omitted = unchanged) and evict down to them now.

        Returns the number of entries evicted.
        """
        if max_entries is not _UNCHANGED:
            self._max_entries = _check_bound("max_entries", max_entries)
        if max_bytes is not _UNCHANGED:
            self._max_bytes = _check_bound("max_bytes", max_bytes)
        old = self._lru
        before = len(old)
        self._evictions += old.evictions
        # popitem yields least recently used first: re-inserting in that order keeps recency
        # and lets the new cache evict the oldest entries first.
        items = []
        while old:
            items.append(old.popitem())
        self._lru = self._new_lru()
        for key, value in items:
            self.set(key, value)
        # Evictions inside the rebuild are counted by the new inner cache; values that no
        # longer fit max_bytes were refused by set() and count as evictions too.
        refused = before - len(self._lru) - self._lru.evictions
        self._evictions += refused
        return before - len(self._lru)


__all__ = ["BoundedCache", "CacheStats", "default_getsizeof"]

"""Keys kept in order, so DevGetNext finds "the next object after this key" without a scan.

A list of sorted buckets (the layout of `sortedcontainers.SortedList`): finding a key is
two bisections, inserting or removing one moves at most a bucket's worth of pointers.
That keeps registration of 100,000 names in random order cheap, where one flat sorted
list would move half of it on every insert.

Inserts wait in a list until the next read or removal: a restart that loads a million
objects sorts them once, and so does a burst of registrations nobody walks meanwhile.
"""

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator
from typing import Any, Generic, Protocol, TypeVar


class _Ordered(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


K = TypeVar("K", bound=_Ordered)

_BUCKET = 512


class SortedKeys(Generic[K]):
    def __init__(self) -> None:
        self._buckets: list[list[K]] = []
        self._maxes: list[K] = []  # last key of each bucket
        self._size = 0  # keys in the buckets
        self._pending: list[K] = []  # added, not yet in the buckets

    def __len__(self) -> int:
        return self._size + len(self._pending)

    def add(self, key: K) -> None:
        """Insert a key that is not present yet."""
        self._pending.append(key)

    def remove(self, key: K) -> None:
        """Remove a key that is present."""
        self._settle()
        i = bisect_left(self._maxes, key)
        bucket = self._buckets[i]
        del bucket[bisect_left(bucket, key)]
        self._size -= 1
        if bucket:
            self._maxes[i] = bucket[-1]
        else:
            del self._buckets[i]
            del self._maxes[i]

    def after(self, key: K | None) -> Iterator[K]:
        """Keys strictly greater than `key` (all keys when None), in order."""
        self._settle()
        if key is None:
            i, j = 0, 0
        else:
            i = bisect_right(self._maxes, key)
            if i == len(self._maxes):
                return
            j = bisect_right(self._buckets[i], key)
        for n in range(i, len(self._buckets)):
            yield from self._buckets[n][j:]
            j = 0

    def _settle(self) -> None:
        """Put the pending keys in the buckets: one by one when they are few, else by
        sorting everything once (timsort takes the buckets as one sorted run)."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        if len(pending) * 16 < self._size:
            for key in pending:
                self._insert(key)
            return
        keys = [key for bucket in self._buckets for key in bucket]
        keys += pending
        keys.sort()
        self._buckets = [keys[i : i + _BUCKET] for i in range(0, len(keys), _BUCKET)]
        self._maxes = [bucket[-1] for bucket in self._buckets]
        self._size = len(keys)

    def _insert(self, key: K) -> None:
        self._size += 1
        if not self._buckets:
            self._buckets.append([key])
            self._maxes.append(key)
            return
        i = bisect_left(self._maxes, key)
        if i == len(self._maxes):
            i -= 1
            self._buckets[i].append(key)
            self._maxes[i] = key
        else:
            insort(self._buckets[i], key)
        bucket = self._buckets[i]
        if len(bucket) > 2 * _BUCKET:
            self._buckets[i : i + 1] = [bucket[:_BUCKET], bucket[_BUCKET:]]
            self._maxes[i : i + 1] = [bucket[_BUCKET - 1], bucket[-1]]

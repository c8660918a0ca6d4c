"""A set of keys, each due at a time: the timer queue behind ESI and registration expiry."""

import heapq
import itertools
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Deadlines(Generic[K]):
    """When each key is next due. A heap with lazy deletion: moving a deadline later
    (every message refreshes its entity's) is a dict write, not a heap push, so the heap
    holds about one entry per key."""

    def __init__(self) -> None:
        self._when: dict[K, float] = {}
        self._queued: dict[K, float] = {}  # the earliest heap entry of each key
        self._heap: list[tuple[float, int, K]] = []
        self._order = itertools.count()  # ties leave in insertion order

    def __len__(self) -> int:
        return len(self._when)

    def get(self, key: K) -> float | None:
        return self._when.get(key)

    def set(self, key: K, when: float) -> None:
        self._when[key] = when
        queued = self._queued.get(key)
        if queued is None or when < queued:
            heapq.heappush(self._heap, (when, next(self._order), key))
            self._queued[key] = when

    def discard(self, key: K) -> None:
        self._when.pop(key, None)  # its heap entry is skipped when it comes up

    def next(self) -> float | None:
        """The earliest deadline (None: no key is scheduled)."""
        self._settle()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[K]:
        """The keys due at `now`, earliest first; they are no longer scheduled."""
        due: list[K] = []
        while self._settle() and self._heap[0][0] <= now:
            _, _, key = heapq.heappop(self._heap)
            del self._queued[key]
            del self._when[key]
            due.append(key)
        return due

    def _settle(self) -> bool:
        """Bring the heap's top up to date: drop entries of discarded keys and superseded
        ones, requeue a key moved later. True when a key is scheduled."""
        heap = self._heap
        while heap:
            queued, _, key = heap[0]
            if self._queued.get(key) != queued:
                heapq.heappop(heap)  # superseded by an earlier entry for the same key
                continue
            when = self._when.get(key)
            if when == queued:
                return True
            heapq.heappop(heap)
            if when is None:
                del self._queued[key]
            else:  # moved later since it was queued
                heapq.heappush(heap, (when, next(self._order), key))
                self._queued[key] = when
        return False

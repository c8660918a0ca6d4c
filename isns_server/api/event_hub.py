"""Committed registry changes fanned out to the open event streams (events.py).

`EventHub.publish` is called by the Dispatcher once a change is durable, with the
references of the objects it rewrote. Each stream's `Subscription` keeps the set of
objects changed since its last event, so a burst of changes is sent as one event that
names each object once. The set is bounded: a stream MAX_PENDING objects behind is
marked overflowed (and then closed by its handler) instead of holding more.
"""

import asyncio
from collections.abc import Collection
from typing import Any

from ..store import Ref

MAX_PENDING = 1000  # changed objects waiting per stream before it is dropped
MAX_STREAMS = 32  # open event streams; more are answered 503
_KINDS = frozenset(("entity", "dd", "dds"))  # the registry's records (not its counters)


class Subscription:
    """One stream's changes not yet sent."""

    __slots__ = ("overflowed", "pending", "reload", "wake")

    def __init__(self) -> None:
        self.pending: dict[Ref, None] = {}  # an ordered set
        self.reload = False
        self.overflowed = False
        self.wake = asyncio.Event()

    def add(self, refs: Collection[Ref], limit: int) -> None:
        if self.overflowed:
            return
        if not refs:
            self.reload = True
        for ref in refs:
            if ref[0] in _KINDS:
                self.pending[ref] = None
        if len(self.pending) > limit:
            self.overflowed = True
            self.pending.clear()
        self.wake.set()

    def take(self) -> dict[str, Any]:
        """The changes since the last call, as a `change` event's data."""
        changed = [{"kind": kind, "id": ident} for kind, ident in self.pending]
        reload, self.reload = self.reload, False
        self.pending.clear()
        self.wake.clear()
        return {"changed": changed, "reload": reload}


class EventHub:
    def __init__(self, max_pending: int = MAX_PENDING, max_streams: int = MAX_STREAMS) -> None:
        self.max_pending = max_pending
        self.max_streams = max_streams
        self.seq = 0  # committed changes published so far
        self.closed = False
        self._subscriptions: set[Subscription] = set()

    def publish(self, refs: Collection[Ref]) -> None:
        """A durable change of `refs` (none: the registry was reloaded)."""
        self.seq += 1
        for subscription in self._subscriptions:
            subscription.add(refs, self.max_pending)

    def subscribe(self) -> Subscription | None:
        """A new stream's subscription; None when MAX_STREAMS are open or the hub closed."""
        if self.closed or len(self._subscriptions) >= self.max_streams:
            return None
        subscription = Subscription()
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def close(self) -> None:
        """The server stops: every stream ends now."""
        self.closed = True
        for subscription in self._subscriptions:
            subscription.wake.set()

    @property
    def streams(self) -> int:
        return len(self._subscriptions)

"""What the server needs from persistence, whatever the backend."""

import asyncio
from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import Any, Protocol

# A registry object reference such as ("entity", "ent1") or ("dd", 3); the registry defines
# the kinds. A record is its JSON-serialisable form; None means "the object is gone".
Ref = tuple[str, Hashable]
Record = dict[str, Any]
Changes = Mapping[Ref, Record | None]


class StoreError(Exception):
    """A change could not be made durable; the message says what the disk or backend said."""


class StoreConflict(StoreError):
    """Another server sharing the store changed the same objects first: the change was
    undone and memory holds theirs; the request may be run again."""


class Store(Protocol):
    def load(self) -> list[tuple[Ref, Record]]:
        """Every stored record, for rebuilding the registry."""
        ...

    def records(self) -> Iterator[tuple[Ref, Record]]:
        """Every stored record, one at a time as it is read: a large registry is rebuilt
        without holding all its records at once. Consume it before submitting changes."""
        ...

    @property
    def writable(self) -> bool:
        """False from a failed write until the store has seen a write succeed again (it
        keeps trying by itself); callers refuse changes meanwhile rather than make them."""
        ...

    def on_write_failed(self, undo: Callable[[], None]) -> None:
        """Call `undo` when a write fails. Every change submitted and not yet durable is then
        dropped, so `undo` is the moment to make memory match `load()` again; it runs before
        the futures of the dropped changes fail."""
        ...

    def submit(self, changes: Changes) -> "asyncio.Future[None] | None":
        """Queue changes; the future resolves once they are durable (None: already are)."""
        ...

    def barrier(self) -> "asyncio.Future[None] | None":
        """A future resolving once everything submitted so far is durable (None: already is)."""
        ...

    async def close(self) -> None: ...

"""A store that keeps nothing: for tests and for administrators who want no state on disk."""

import asyncio
from collections.abc import Callable, Iterator

from .base import Changes, Record, Ref


class MemoryStore:
    writable = True  # nothing to write, nothing to fail

    def load(self) -> list[tuple[Ref, Record]]:
        return []

    def records(self) -> Iterator[tuple[Ref, Record]]:
        return iter(())

    def on_write_failed(self, undo: Callable[[], None]) -> None:
        pass

    def submit(self, changes: Changes) -> "asyncio.Future[None] | None":
        return None

    def barrier(self) -> "asyncio.Future[None] | None":
        return None

    async def close(self) -> None:
        pass

"""A store that keeps nothing: for tests and for administrators who want no state on disk."""

import asyncio

from .base import Changes, Record, Ref


class MemoryStore:
    def load(self) -> list[tuple[Ref, Record]]:
        return []

    def submit(self, changes: Changes) -> "asyncio.Future[None] | None":
        return None

    def barrier(self) -> "asyncio.Future[None] | None":
        return None

    async def close(self) -> None:
        pass

"""The audit log of API writes: who, when, what, before and after.

Each record is a store record ("audit", id) beside the registry's own. It is submitted
twice around the change it describes: once as "pending" before the change is handed to
the registry, and complete right after. Stores commit in submission order, so a change
is never durable without at least its pending record; with group commit (SQLite) the
change and its complete record land in the same transaction (the pending record either
started the batch before, or is replaced by the complete one in the same batch).
A pending record read back after a restart means the server stopped before that change
was confirmed to anyone.
"""

import asyncio
import time
from collections.abc import Iterable, Iterator
from typing import Any

from ..store import Ref, Store

AUDIT = "audit"
PENDING = "pending"
Record = dict[str, Any]


class AuditLog:
    def __init__(self, store: Store, records: Iterable[tuple[Ref, Record]], keep: int) -> None:
        self.store = store
        self.keep = keep
        saved = sorted(
            (record for (kind, _), record in records if kind == AUDIT), key=lambda r: r["id"]
        )
        # By ID, in ID order: records complete in the order they began (no await between).
        self._records: dict[int, Record] = {record["id"]: record for record in saved}
        self._next = saved[-1]["id"] + 1 if saved else 1
        self._trim: list[Ref] = []
        self._cut()

    def begin(self, who: str, what: str, request: Record, before: Any) -> Record:
        """A pending record of the change about to be made, submitted now."""
        record: Record = {
            "id": self._next,
            "time": time.time(),
            "who": who,
            "what": what,
            "request": request,
            "before": before,
            "after": None,
            "result": PENDING,
        }
        self._next += 1
        self.store.submit({(AUDIT, record["id"]): record})
        return record

    def complete(self, record: Record, after: Any, result: str) -> "asyncio.Future[None] | None":
        """Submit `record` with the state after the change; it is listed from now on."""
        record = {**record, "after": after, "result": result}
        self._records[record["id"]] = record
        self._cut()
        changes: dict[Ref, Record | None] = dict.fromkeys(self._trim)
        changes[(AUDIT, record["id"])] = record
        self._trim.clear()
        return self.store.submit(changes)

    def forget(self, record: Record) -> None:
        """The store dropped `record` with the change it describes (a failed write)."""
        self._records.pop(record["id"], None)

    def _cut(self) -> None:
        """Drop the oldest records beyond `keep`; their deletion goes with the next write."""
        while len(self._records) > self.keep:
            self._trim.append((AUDIT, self._records.pop(next(iter(self._records)))["id"]))

    def newest_first(self, before_id: int | None) -> Iterator[Record]:
        """Records with an ID below `before_id` (all when None), newest first."""
        for record in reversed(self._records.values()):
            if before_id is None or record["id"] < before_id:
                yield record

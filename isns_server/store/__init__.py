"""Persistence of the registry: a `Store` keeps records durable, in batches."""

from pathlib import Path

from .base import Changes, Record, Ref, Store, StoreConflict, StoreError
from .memory import MemoryStore
from .sqlite import SqliteStore, check_writable


def open_store(backend: str, data_dir: Path, durable: bool) -> Store:
    if backend == "memory":
        return MemoryStore()
    return SqliteStore(data_dir, durable)


__all__ = [
    "Changes",
    "MemoryStore",
    "Record",
    "Ref",
    "SqliteStore",
    "Store",
    "StoreConflict",
    "StoreError",
    "check_writable",
    "open_store",
]

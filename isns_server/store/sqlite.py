"""The default store: one SQLite file under data_dir, written with group commit.

Each registry object is one row keyed by its reference, holding its JSON record. WAL mode
lets a write batch append without rewriting pages; `durable` chooses synchronous=FULL (an
fsync per batch: acknowledged changes survive power loss) or NORMAL (they survive a crash
of this process, not of the machine).
"""

import asyncio
import json
import sqlite3
from pathlib import Path

from .base import Changes, Record, Ref, StoreError
from .group_commit import GroupCommitter

SCHEMA_VERSION = 1
DATABASE_NAME = "registry.sqlite3"


class SqliteStore:
    def __init__(self, data_dir: Path, durable: bool = True) -> None:
        self.path = data_dir / DATABASE_NAME
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            # One connection, used by the loader now and by the single writer thread after.
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the registry database {self.path}: {exc}") from None
        self._committer = GroupCommitter(self._write_batch, "sqlite-writer")

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS objects ("
                " kind TEXT NOT NULL, key TEXT NOT NULL, record TEXT NOT NULL,"
                " PRIMARY KEY (kind, key)) WITHOUT ROWID"
            )
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        elif version != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer version (schema {version}); "
                f"this version reads schema {SCHEMA_VERSION}: upgrade isns-server"
            )

    def load(self) -> list[tuple[Ref, Record]]:
        rows = self._db.execute("SELECT kind, key, record FROM objects").fetchall()
        return [((kind, json.loads(key)), json.loads(record)) for kind, key, record in rows]

    def submit(self, changes: Changes) -> "asyncio.Future[None] | None":
        return self._committer.submit(changes)

    def barrier(self) -> "asyncio.Future[None] | None":
        return self._committer.barrier()

    def _write_batch(self, batch: dict[Ref, Record | None]) -> None:
        upserts = []
        deletes = []
        for (kind, key), record in batch.items():
            key_text = json.dumps(key)
            if record is None:
                deletes.append((kind, key_text))
            else:
                upserts.append((kind, key_text, json.dumps(record, separators=(",", ":"))))
        db = self._db
        db.execute("BEGIN")
        try:
            db.executemany("DELETE FROM objects WHERE kind = ? AND key = ?", deletes)
            db.executemany("INSERT OR REPLACE INTO objects VALUES (?, ?, ?)", upserts)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        await self._committer.close()
        self._db.close()

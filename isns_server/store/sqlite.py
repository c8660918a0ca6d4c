"""The default store: one SQLite file under data_dir, written with group commit.

Each registry object is one row keyed by its reference, holding its JSON record. WAL mode
lets a write batch append without rewriting pages; `durable` chooses synchronous=FULL (an
fsync per batch: acknowledged changes survive power loss) or NORMAL (they survive a crash
of this process, not of the machine).

A write the disk refuses is rolled back and reported as a StoreError naming the file and
the cause (a full disk is SQLITE_FULL, the kernel's ENOSPC); `check_writable` lets the
server refuse to start on a data directory it cannot write.
"""

import asyncio
import contextlib
import errno
import json
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
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
        self._committer = GroupCommitter(
            self._write_batch, self._probe, "sqlite-writer", str(self.path)
        )

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
        return list(self.records())

    def records(self) -> Iterator[tuple[Ref, Record]]:
        """Rows are read and decoded one at a time, so that a million records are never
        all in memory at once, as text or as dicts, while the registry is built."""
        decode = json.JSONDecoder().raw_decode  # json.loads less its whitespace checks
        for kind, key, record in self._db.execute("SELECT kind, key, record FROM objects"):
            try:
                value, end = decode(record)
                if end != len(record):
                    raise json.JSONDecodeError("extra data", record, end)
                # Most keys are plain names: skip the JSON parser for them.
                plain = key[0] == '"' and "\\" not in key
                yield (kind, key[1:-1] if plain else json.loads(key)), value
            except (json.JSONDecodeError, IndexError) as exc:
                raise StoreError(
                    f"the registry database {self.path} holds a damaged record ({kind} {key}: "
                    f"{exc}); restore the file from a backup, or delete that row to start "
                    "without the object"
                ) from None

    @property
    def writable(self) -> bool:
        return self._committer.writable

    def on_write_failed(self, undo: Callable[[], None]) -> None:
        self._committer.on_write_failed(undo)

    def on_batch_written(self, observer: Callable[[int, float], None]) -> None:
        """`observer(records, seconds)` after each batch is durable (for metrics)."""
        self._committer.on_batch_written(observer)

    def submit(self, changes: Changes) -> "asyncio.Future[None]":
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
        try:
            db.execute("BEGIN")
            db.executemany("DELETE FROM objects WHERE kind = ? AND key = ?", deletes)
            db.executemany("INSERT OR REPLACE INTO objects VALUES (?, ?, ?)", upserts)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._roll_back()
            raise StoreError(self._write_problem(exc)) from None
        except BaseException:
            self._roll_back()
            raise

    def _probe(self) -> None:
        """Rewrite the schema version, one page: succeeds once the disk takes writes again."""
        try:
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise StoreError(self._write_problem(exc)) from None

    def _roll_back(self) -> None:
        # SQLite rolls back by itself after some errors (SQLITE_FULL among them); a
        # ROLLBACK then would fail too and hide the error that matters.
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def _write_problem(self, exc: sqlite3.Error) -> str:
        code = getattr(exc, "sqlite_errorname", "") or type(exc).__name__
        if code == "SQLITE_FULL":
            cause = (
                f"the disk is full ({code}, ENOSPC: {os.strerror(errno.ENOSPC)}); "
                f"free space on the filesystem holding {self.path.parent}"
            )
        elif code.startswith("SQLITE_READONLY"):
            cause = f"it has become read-only ({code}); make {self.path.parent} writable"
        elif code.startswith("SQLITE_IOERR"):
            cause = f"the disk reported an I/O error ({code}: {exc}); check the kernel log"
        else:
            cause = f"{code}: {exc}"
        return f"cannot write the registry database {self.path}: {cause}"

    async def close(self) -> None:
        await self._committer.close()
        self._db.close()


def check_writable(data_dir: Path) -> None:
    """Raise StoreError unless the registry database under `data_dir` can be written: the
    directory (or the nearest existing parent, which it will be created in) and the
    database files that exist. Changes nothing; a read-only mount, an immutable file
    and missing permissions all fail here rather than after the server says ready."""
    directory = data_dir
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    files = [data_dir / name for name in (DATABASE_NAME, f"{DATABASE_NAME}-wal")]
    where = directory
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
        for where in files:
            if where.exists():
                os.close(os.open(where, os.O_WRONLY))
    except OSError as exc:
        name = errno.errorcode.get(exc.errno or 0, "?")
        raise StoreError(
            f"the registry database under {data_dir} cannot be written ({where}: {name}, "
            f"{exc.strerror}): remount that filesystem read-write, remove the immutable "
            f"attribute (chattr -i) or give this user write permission, or set data_dir to "
            f"a writable directory"
        ) from None

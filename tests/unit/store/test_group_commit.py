import asyncio
import threading
from pathlib import Path

import pytest

from isns_server.store import Record, Ref, SqliteStore, StoreError
from isns_server.store.group_commit import GroupCommitter


class GatedWriter:
    """A write_batch that records batches and holds each one until the test opens the gate."""

    def __init__(self) -> None:
        self.batches: list[dict[Ref, Record | None]] = []
        self.gate = threading.Event()
        self.started = threading.Event()
        self.fail_next = False

    def __call__(self, batch: dict[Ref, Record | None]) -> None:
        self.started.set()
        self.gate.wait(timeout=10)
        if self.fail_next:
            self.fail_next = False
            raise OSError(28, "No space left on device")
        self.batches.append(dict(batch))


async def test_changes_arriving_during_a_write_share_the_next_batch() -> None:
    writer = GatedWriter()
    committer = GroupCommitter(writer, lambda: None, "test", "test.db")
    first = committer.submit({("entity", "a"): {"v": 1}})
    await asyncio.to_thread(writer.started.wait, 10)
    later = [committer.submit({("entity", name): {"v": 2}}) for name in "bcd"]
    later.append(committer.submit({("entity", "b"): None}))  # replaces the earlier change to b
    writer.gate.set()
    await asyncio.gather(first, *later)
    assert writer.batches == [
        {("entity", "a"): {"v": 1}},
        {("entity", "b"): None, ("entity", "c"): {"v": 2}, ("entity", "d"): {"v": 2}},
    ]
    await committer.close()


async def test_barrier_waits_for_earlier_writes_and_is_none_when_idle() -> None:
    writer = GatedWriter()
    committer = GroupCommitter(writer, lambda: None, "test", "test.db")
    assert committer.barrier() is None
    write = committer.submit({("dd", 1): {"name": "x"}})
    barrier = committer.barrier()
    assert barrier is not None
    await asyncio.to_thread(writer.started.wait, 10)
    assert not barrier.done()
    writer.gate.set()
    await barrier
    assert write.done()
    assert committer.barrier() is None
    await committer.close()


async def test_sqlite_store_keeps_records_across_reopen(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path, durable=True)
    assert store.load() == []
    await store.submit({("entity", "ent1"): {"eid": "ent1"}, ("dd", 3): {"id": 3}})
    await store.submit({("dd", 3): None, ("entity", "ent2"): {"eid": "ent2"}})
    await store.close()
    reopened = SqliteStore(tmp_path, durable=False)
    assert sorted(reopened.load()) == [
        (("entity", "ent1"), {"eid": "ent1"}),
        (("entity", "ent2"), {"eid": "ent2"}),
    ]
    await reopened.close()


async def test_sqlite_store_refuses_a_newer_schema(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    store._db.execute("PRAGMA user_version=99")
    await store.close()
    with pytest.raises(StoreError, match="newer version"):
        SqliteStore(tmp_path)


def test_unwritable_data_dir_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot open the registry database"):
        SqliteStore(blocker / "sub")

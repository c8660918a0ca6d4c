"""Write failures (a full disk): a failed batch takes everything queued behind it, the
owner undoes it before any waiter hears, the store probes until the disk takes writes
again, and the failure is logged once per interval, naming the file and ENOSPC."""

import asyncio
import logging
from pathlib import Path

import pytest

from isns_server.store import Record, Ref, SqliteStore, StoreError, check_writable
from isns_server.store.group_commit import GroupCommitter

from ...polling import eventually
from .test_group_commit import GatedWriter


class Probe:
    """A probe write that fails while `full` is set."""

    def __init__(self) -> None:
        self.full = True
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        if self.full:
            raise StoreError("cannot write test.db: the disk is full (SQLITE_FULL, ENOSPC)")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_failed_write_drops_what_was_queued_behind_it_and_undoes_it_first() -> None:
    writer = GatedWriter()
    writer.fail_next = True
    committer = GroupCommitter(writer, Probe(), "test", "test.db", retry_interval=60)
    undone: list[bool] = []  # per undo: had any waiter heard yet?
    committer.on_write_failed(lambda: undone.append(first.done() or queued.done()))
    first = committer.submit({("entity", "a"): {"v": 1}})
    await asyncio.to_thread(writer.started.wait, 10)
    queued = committer.submit({("entity", "a"): {"v": 2}, ("entity", "b"): {"v": 1}})
    writer.gate.set()
    for future in (first, queued):
        with pytest.raises(StoreError, match="No space left"):
            await future
    assert undone == [False]
    assert not committer.writable
    assert committer.barrier() is None  # nothing left queued: readers need not wait
    await committer.submit({("entity", "c"): {"v": 1}})  # the disk is back
    assert writer.batches == [{("entity", "c"): {"v": 1}}]  # a and b were never retried
    assert committer.writable
    await committer.close()


async def test_the_store_probes_until_the_disk_takes_writes_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer = GatedWriter()
    writer.gate.set()
    writer.fail_next = True
    probe = Probe()
    committer = GroupCommitter(writer, probe, "test", "test.db", retry_interval=0.01)
    with pytest.raises(StoreError):
        await committer.submit({("entity", "a"): {"v": 1}})
    await eventually(lambda: probe.calls, lambda calls: calls >= 3, what="3 probes", within=5)
    assert not committer.writable
    probe.full = False
    with caplog.at_level(logging.WARNING):
        await eventually(lambda: committer.writable, what="the store to be writable", within=5)
    assert "writes to test.db succeed again" in caplog.text
    calls = probe.calls
    await asyncio.sleep(0.05)  # the point: five retry intervals pass without a probe
    assert probe.calls == calls  # no probing while writes work
    await committer.close()


async def test_a_lasting_failure_is_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer = GatedWriter()
    writer.gate.set()
    clock = Clock()
    committer = GroupCommitter(
        writer, Probe(), "test", "test.db", retry_interval=3600, log_interval=60, clock=clock
    )
    with caplog.at_level(logging.ERROR):
        for _ in range(5):
            writer.fail_next = True
            with pytest.raises(StoreError):
                await committer.submit({("entity", "a"): {"v": 1}})
            clock.now += 1
        clock.now += 60
        writer.fail_next = True
        with pytest.raises(StoreError):
            await committer.submit({("entity", "a"): {"v": 1}})
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert "No space left on device" in errors[0] and "answered Internal Error" in errors[0]
    assert "4 more like it" in errors[1]
    await committer.close()


async def test_sqlite_full_rolls_back_and_names_the_file_and_enospc(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    await store.submit({("entity", "a"): {"v": 1}})
    # Fault injection: SQLite answers SQLITE_FULL, as it does when write() gets ENOSPC.
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count={pages}")
    undone: list[list[tuple[Ref, Record]]] = []
    store.on_write_failed(lambda: undone.append(store.load()))
    big: dict[Ref, Record | None] = {("entity", f"b{i}"): {"v": "x" * 4000} for i in range(8)}
    with pytest.raises(StoreError) as failure:
        await store.submit({**big, ("entity", "a"): None})
    message = str(failure.value)
    assert str(tmp_path / "registry.sqlite3") in message
    assert "SQLITE_FULL" in message and "ENOSPC" in message
    assert "rollback" not in message
    assert undone == [[(("entity", "a"), {"v": 1})]]  # nothing of the failed batch
    assert not store._db.in_transaction
    store._db.execute("PRAGMA max_page_count=1073741823")
    await store.submit(big)  # the connection still works once there is room
    assert len(store.load()) == 9
    await store.close()


def test_check_writable_names_the_path_and_what_to_do(tmp_path: Path) -> None:
    check_writable(tmp_path / "new" / "data")  # will be created: its parent is writable
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match=f"under {blocker / 'data'} cannot be written"):
        check_writable(blocker / "data")
    data = tmp_path / "data"
    (data / "registry.sqlite3").mkdir(parents=True)  # not a file this user can write
    with pytest.raises(StoreError) as refused:
        check_writable(data)
    assert "registry.sqlite3" in str(refused.value) and "EISDIR" in str(refused.value)
    assert "read-write" in str(refused.value)
    assert list(data.iterdir()) == [data / "registry.sqlite3"]  # the check left nothing

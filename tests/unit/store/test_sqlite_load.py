"""SqliteStore.records(): every row, read and decoded one at a time, keys as they were."""

from pathlib import Path

import pytest

from isns_server.store import SqliteStore, StoreError


async def test_records_stream_every_row_with_its_key(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path, durable=False)
    keys = ["ent1", 'quote " and \\ backslash', "ünïcode", 3]
    await store.submit({("entity" if isinstance(k, str) else "dd", k): {"k": k} for k in keys})
    await store.close()
    reopened = SqliteStore(tmp_path, durable=False)
    rows = reopened.records()
    first = next(rows)  # a generator: nothing is read ahead of what is asked
    assert sorted([first, *rows], key=repr) == sorted(
        [(("entity" if isinstance(k, str) else "dd", k), {"k": k}) for k in keys], key=repr
    )
    assert reopened.load() == list(reopened.records())
    await reopened.close()


async def test_a_damaged_record_is_refused_naming_the_file_and_row(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path, durable=False)
    await store.submit({("entity", "good"): {"eid": "good"}, ("entity", "bad"): {"eid": "bad"}})
    store._db.execute("UPDATE objects SET record = record || 'x' WHERE key = '\"bad\"'")
    with pytest.raises(StoreError, match=r'registry.sqlite3 holds a damaged record \(entity "bad"'):
        list(store.records())
    store._db.execute("UPDATE objects SET key = '' WHERE key = '\"bad\"'")
    with pytest.raises(StoreError, match="damaged record"):
        list(store.records())
    await store.close()

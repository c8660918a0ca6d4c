"""The audit log: kept with the registry's records, trimmed to `keep`, read back after a
restart, and silent about changes the store could not save."""

from isns_server.api.audit import AUDIT, AuditLog
from isns_server.store import Changes, MemoryStore, Record, Ref

from .conftest import ADMIN_HEADERS, READ_HEADERS, Api


class Recording(MemoryStore):
    def __init__(self) -> None:
        self.submitted: list[dict[Ref, Record | None]] = []

    def submit(self, changes: Changes) -> None:
        self.submitted.append(dict(changes))


def test_old_records_are_dropped_from_memory_and_store() -> None:
    store = Recording()
    audit = AuditLog(store, [], keep=2)
    for n in range(3):
        record = audit.begin("ops", f"change {n}", {}, None)
        audit.complete(record, {"n": n}, "ok")
    assert [r["what"] for r in audit.newest_first(None)] == ["change 2", "change 1"]
    last = store.submitted[-1]
    newest = last[(AUDIT, 3)]
    assert last[(AUDIT, 1)] is None and newest is not None and newest["result"] == "ok"


def test_records_read_back_after_a_restart_keep_their_order_and_numbering() -> None:
    saved: list[tuple[Ref, Record]] = [
        ((AUDIT, 2), {"id": 2, "what": "b", "result": "pending"}),
        ((AUDIT, 1), {"id": 1, "what": "a", "result": "ok"}),
        (("dd", 1), {"id": 1}),
    ]
    audit = AuditLog(MemoryStore(), saved, keep=10)
    assert [(r["id"], r["result"]) for r in audit.newest_first(None)] == [(2, "pending"), (1, "ok")]
    assert [r["id"] for r in audit.newest_first(2)] == [1]
    assert audit.begin("ops", "c", {}, None)["id"] == 3


async def test_a_change_the_store_cannot_save_is_not_made_and_not_audited(api: Api) -> None:
    before = api.state()
    api.store.full = True
    refused = await api.client.post("/api/v1/dds", json={"name": "prod"}, headers=ADMIN_HEADERS)
    assert refused.status == 503 and "not made" in (await refused.json())["error"]
    assert api.registry.db.dds == {}
    assert api.state() == before
    audit = await (await api.client.get("/api/v1/audit", headers=READ_HEADERS)).json()
    assert audit["items"] == []
    again = await api.client.post("/api/v1/dds", json={"name": "prod"}, headers=ADMIN_HEADERS)
    assert again.status == 503  # refused up front while the store cannot write
    assert api.state() == before

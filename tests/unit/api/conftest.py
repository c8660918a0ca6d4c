"""An API app over a real registry and Dispatcher, with a store that keeps its records in
a dict (batches written by the real group committer), and tokens for each role."""

from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from isns_server.api import build_app
from isns_server.api.audit import AuditLog
from isns_server.api.auth import Principal, Tokens
from isns_server.api.context import ApiContext, PortalState
from isns_server.api.writes import API_SOURCE, Planner, Writer
from isns_server.isnsp.constants import FunctionId
from isns_server.isnsp.messages import Message
from isns_server.registry import Policy, Registry
from isns_server.service.dispatcher import Dispatcher
from isns_server.store import Record, Ref
from isns_server.store.group_commit import GroupCommitter

from ..registry.builders import ADMIN, NOW, call, ok, register

ADMIN_TOKEN = "admin-token-0123456789abcdef"
READ_TOKEN = "read-token-0123456789abcdef"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
READ_HEADERS = {"Authorization": f"Bearer {READ_TOKEN}"}
MAX_BODY = 64 * 1024


class DictStore:
    """Records in a dict; each batch the group committer writes is kept in `batches`;
    while `full`, writes fail as on a full disk."""

    def __init__(self, records: Iterable[tuple[Ref, Record]] = ()) -> None:
        self.rows: dict[Ref, Record] = dict(records)
        self.batches: list[dict[Ref, Record | None]] = []
        self.full = False  # a full disk: every write fails
        self._committer = GroupCommitter(self._write, self._probe, "test", "dict", 0.01)
        self.submit = self._committer.submit
        self.barrier = self._committer.barrier
        self.on_write_failed = self._committer.on_write_failed
        self.close = self._committer.close

    @property
    def writable(self) -> bool:
        return self._committer.writable

    def load(self) -> list[tuple[Ref, Record]]:
        return list(self.rows.items())

    def records(self) -> Iterator[tuple[Ref, Record]]:
        return iter(self.load())

    def _probe(self) -> None:
        if self.full:
            raise OSError(28, "No space left on device")

    def _write(self, batch: dict[Ref, Record | None]) -> None:
        self._probe()
        self.batches.append(dict(batch))
        for ref, record in batch.items():
            if record is None:
                self.rows.pop(ref, None)
            else:
                self.rows[ref] = record


@dataclass
class Api:
    client: TestClient[Any, Any]
    registry: Registry
    store: DictStore
    sessions: list[dict[str, Any]]

    def state(self) -> Any:
        """Everything a refused request must leave alone: registry records and audit."""
        registry = self.registry
        refs: list[Ref] = [("dd", d) for d in registry.db.dds]
        refs += [("dds", s) for s in registry.db.ddss]
        refs += [("entity", e) for e in registry.db.entities]
        return (
            {ref: registry.export_record(ref) for ref in refs},
            sorted(self.store.rows.items(), key=repr),
        )


def new_api_registry() -> Registry:
    return Registry(Policy(control_nodes=frozenset((ADMIN, API_SOURCE))))


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    registry = new_api_registry()
    store = DictStore()
    dispatcher = Dispatcher(registry, store, clock=lambda: NOW)
    audit = AuditLog(store, [], keep=50)
    sessions: list[dict[str, Any]] = []
    context = ApiContext(
        registry,
        Planner(registry),
        Writer(dispatcher, audit),
        audit,
        PortalState(lambda: [], lambda: list(sessions)),
        _ready,
    )
    tokens = Tokens(
        [(ADMIN_TOKEN, Principal("ops", "admin")), (READ_TOKEN, Principal("grafana", "read"))]
    )
    client = TestClient(TestServer(build_app(context, tokens, MAX_BODY)))
    await client.start_server()
    try:
        yield Api(client, registry, store, sessions)
    finally:
        await client.close()
        await store.close()


async def _ready() -> dict[str, str | None]:
    return {"store": None}


def isns(registry: Registry, function: FunctionId, *args: Any) -> Message:
    """An iSNS request from the test's Control Node, applied directly."""
    return ok(call(registry, function, ADMIN, *args))


__all__ = ["NOW", "register"]

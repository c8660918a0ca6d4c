"""The dispatcher when the disk refuses writes: the answer and the state agree (a refused
change leaves no trace in memory or in the store), queries keep being answered from
memory, and changes are accepted again once the store can write."""

import asyncio
import threading
from collections.abc import Iterator
from itertools import count

from isns_server.isnsp.constants import Flags, FunctionId, Status, Tag
from isns_server.isnsp.messages import Attribute, Message, request
from isns_server.registry import Policy, Registry
from isns_server.service.dispatcher import Dispatcher
from isns_server.store import Record, Ref, StoreError
from isns_server.store.group_commit import GroupCommitter

from ...polling import eventually
from ..registry.builders import ADMIN, NOW, eid, iqn, node

_xids = count(1)


class Disk:
    """A store over a dict, with a disk that can be full and a gate that holds a write."""

    def __init__(self) -> None:
        self.rows: dict[Ref, Record] = {}
        self.full = False
        self.gate = threading.Event()
        self.gate.set()
        self.writing = threading.Event()
        self._committer = GroupCommitter(
            self._write, self._probe, "test", "disk.db", retry_interval=0.01
        )
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

    def _write(self, batch: dict[Ref, Record | None]) -> None:
        self.writing.set()
        self.gate.wait(10)
        self._probe()
        for ref, record in batch.items():
            if record is None:
                self.rows.pop(ref, None)
            else:
                self.rows[ref] = record

    def _probe(self) -> None:
        if self.full:
            raise StoreError("cannot write disk.db: the disk is full (SQLITE_FULL, ENOSPC)")


def registration(name: str) -> Message:
    return request(
        FunctionId.DEV_ATTR_REG,
        next(_xids),
        Attribute(Tag.ISCSI_NAME, name),
        (eid(f"ent-{name}"),),
        node(name),
        Flags.NONE,
    )


def lookup(name: str) -> Message:
    return request(
        FunctionId.DEV_ATTR_QRY,
        next(_xids),
        Attribute(Tag.ISCSI_NAME, ADMIN),
        (Attribute(Tag.ISCSI_NAME, name),),
        (Attribute(Tag.ISCSI_NAME),),
    )


def send(dispatcher: Dispatcher, message: Message) -> "asyncio.Future[Message]":
    answer: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
    dispatcher.dispatch(message, answer.set_result, "test")
    return answer


async def registered(dispatcher: Dispatcher, name: str) -> bool:
    answer = await send(dispatcher, lookup(name))
    assert answer.status in (Status.SUCCESSFUL, Status.NO_SUCH_ENTRY)
    return Attribute(Tag.ISCSI_NAME, name) in answer.attributes


def stored_names(disk: Disk) -> list[str]:
    return sorted(
        n["name"]
        for ref, record in disk.rows.items()
        if ref[0] == "entity"
        for n in record["nodes"]
    )


async def test_a_refused_write_leaves_no_trace_and_queries_keep_working() -> None:
    disk = Disk()
    registry = Registry(Policy(control_nodes=frozenset((ADMIN,))))
    dispatcher = Dispatcher(registry, disk, clock=lambda: NOW)
    assert (await send(dispatcher, registration(iqn("a")))).status == Status.SUCCESSFUL

    disk.full = True
    disk.gate.clear()
    disk.writing.clear()
    write = send(dispatcher, registration(iqn("b")))
    await asyncio.to_thread(disk.writing.wait, 10)
    behind = send(dispatcher, lookup(iqn("b")))  # a reader queued behind the failing write
    disk.gate.set()
    assert (await write).status == Status.INTERNAL_ERROR
    assert (await behind).status == Status.NO_SUCH_ENTRY  # as reloaded; not the writer's error
    assert not await registered(dispatcher, iqn("b"))
    assert await registered(dispatcher, iqn("a"))  # answered from memory, disk still full

    refused = send(dispatcher, registration(iqn("c")))
    assert refused.done()  # refused before touching the registry, without waiting
    assert refused.result().status == Status.INTERNAL_ERROR
    assert not await registered(dispatcher, iqn("c"))
    assert stored_names(disk) == [iqn("a")]

    disk.full = False
    await eventually(lambda: disk.writable, what="the store to be writable again", within=5)
    assert (await send(dispatcher, registration(iqn("c")))).status == Status.SUCCESSFUL
    assert stored_names(disk) == [iqn("a"), iqn("c")]
    restarted = Registry.restore(disk.load(), registry.policy)
    assert sorted(restarted.db.nodes) == [iqn("a"), iqn("c")]
    await disk.close()

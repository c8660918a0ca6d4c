"""The event stream: committed changes reach every open stream once durable, merged and
bounded per stream; a stream that falls behind is told and closed; /api/v1/events needs
a token and serves text/event-stream."""

import asyncio
import json
from typing import Any

import aiohttp

from isns_server.api import events
from isns_server.api.context import CONTEXT
from isns_server.api.event_hub import EventHub
from isns_server.isnsp.constants import FunctionId, Tag
from isns_server.isnsp.messages import Attribute, Message, request
from isns_server.service.dispatcher import Dispatcher

from ...polling import eventually
from ..registry.builders import NOW, iqn, new_registry, node
from .conftest import READ_HEADERS, Api, DictStore

T1 = iqn("t1")


def test_changes_are_merged_per_stream_until_taken() -> None:
    hub = EventHub()
    first, second = hub.subscribe(), hub.subscribe()
    assert first is not None and second is not None
    hub.publish({("entity", "e1"), ("counters", "next-index")})
    hub.publish({("entity", "e1"), ("dd", 3)})
    assert first.wake.is_set()
    taken = first.take()
    assert sorted(map(str, taken["changed"])) == sorted(
        map(str, [{"kind": "entity", "id": "e1"}, {"kind": "dd", "id": 3}])
    )
    assert taken["reload"] is False and not first.wake.is_set()
    assert first.take()["changed"] == []
    assert len(second.take()["changed"]) == 2  # each stream has its own
    hub.publish(())  # the registry was reloaded from the store
    assert first.take() == {"changed": [], "reload": True}
    assert hub.seq == 3


def test_a_stream_that_falls_behind_is_marked_and_holds_nothing_more() -> None:
    hub = EventHub(max_pending=10)
    slow = hub.subscribe()
    assert slow is not None
    for n in range(11):
        hub.publish({("entity", f"e{n}")})
    assert slow.overflowed and not slow.pending
    hub.publish({("entity", "later")})
    assert not slow.pending


def test_streams_are_capped_and_closing_wakes_them_all() -> None:
    hub = EventHub(max_streams=2)
    first, second = hub.subscribe(), hub.subscribe()
    assert hub.subscribe() is None
    assert first is not None
    hub.unsubscribe(first)
    third = hub.subscribe()
    hub.close()
    assert all(s is not None and s.wake.is_set() for s in (second, third))
    assert hub.subscribe() is None


async def test_the_dispatcher_publishes_a_change_only_once_it_is_durable() -> None:
    store = DictStore()
    hub = EventHub()
    stream = hub.subscribe()
    assert stream is not None
    dispatcher = Dispatcher(new_registry(), store, clock=lambda: NOW, on_committed=hub.publish)
    answered = asyncio.get_running_loop().create_future()
    registration = request(
        FunctionId.DEV_ATTR_REG,
        1,
        Attribute(Tag.ISCSI_NAME, T1),
        (Attribute(Tag.ENTITY_IDENTIFIER, "e1"),),
        node(T1),
    )
    try:
        dispatcher.dispatch(registration, answered.set_result, "127.0.0.1:5000")
        assert hub.seq == 0  # applied, not yet durable: nothing said yet
        await answered
        assert store.rows and hub.seq == 1
        assert {"kind": "entity", "id": "e1"} in stream.take()["changed"]
        query = request(FunctionId.DEV_ATTR_QRY, 2, Attribute(Tag.ISCSI_NAME, T1), (), ())
        queried: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        dispatcher.dispatch(query, queried.set_result, "127.0.0.1:5000")
        await queried
        assert hub.seq == 1  # a query changes nothing: no event
    finally:
        await store.close()


async def read_event(response: aiohttp.ClientResponse) -> tuple[str, Any]:
    """The next event's name and data, skipping comment lines."""
    name, data = "", None
    while True:
        line = (await asyncio.wait_for(response.content.readline(), 10)).decode()
        if line == "":
            raise EOFError("the stream ended")
        if line == "\n" and name:
            return name, data
        if line.startswith("event: "):
            name = line[7:].strip()
        elif line.startswith("data: "):
            data = json.loads(line[6:])


async def test_the_stream_needs_a_token_and_sends_hello_then_changes(api: Api) -> None:
    assert (await api.client.get("/api/v1/events")).status == 401
    hub = api.client.app[CONTEXT].events
    response = await api.client.get("/api/v1/events", headers=READ_HEADERS)
    try:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        assert await read_event(response) == ("hello", {"seq": 0})
        hub.publish({("dd", 7), ("entity", "e1")})
        name, data = await read_event(response)
        assert name == "change" and data["seq"] == 1 and data["reload"] is False
        assert {"kind": "dd", "id": 7} in data["changed"]
    finally:
        response.close()


async def test_a_stream_behind_by_too_much_is_told_and_closed(api: Api) -> None:
    hub = api.client.app[CONTEXT].events
    hub.max_pending = 5
    response = await api.client.get("/api/v1/events", headers=READ_HEADERS)
    try:
        assert (await read_event(response))[0] == "hello"
        hub.publish({("entity", f"e{n}") for n in range(6)})
        assert (await read_event(response))[0] == "overflow"
        try:
            await read_event(response)
            raise AssertionError("the stream went on after overflow")
        except EOFError:
            pass
    finally:
        response.close()
    await eventually(
        lambda: hub.streams, lambda streams: streams == 0, what="the stream handler to leave"
    )


async def test_more_streams_than_the_cap_are_refused_with_503(api: Api) -> None:
    hub = api.client.app[CONTEXT].events
    hub.max_streams = 1
    first = await api.client.get("/api/v1/events", headers=READ_HEADERS)
    try:
        assert (await read_event(first))[0] == "hello"
        refused = await api.client.get("/api/v1/events", headers=READ_HEADERS)
        assert refused.status == 503
        assert "event streams are open" in (await refused.json())["error"]
    finally:
        first.close()


def test_events_are_server_sent_events_lines() -> None:
    assert events.event_bytes("change", {"seq": 1}) == b'event: change\ndata: {"seq":1}\n\n'

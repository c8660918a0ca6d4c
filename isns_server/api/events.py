"""Live registry changes as server-sent events at /api/v1/events (the web page's feed).

Fed by event_hub.EventHub after each durable change; a stream sends at most one event
per SEND_INTERVAL, naming each object changed meanwhile once. A stream whose reader
falls MAX_PENDING objects behind gets an `overflow` event and is closed (the page
reloads everything and reconnects); a reader that stops reading is closed after
WRITE_TIMEOUT. Neither can make the server hold more.

Events (`event:` name, `data:` JSON):
- `hello` {"seq"}: the stream is open; fetch the state now, changes follow.
- `change` {"seq", "changed": [{"kind": "entity"|"dd"|"dds", "id"}], "reload"}: these
  objects changed (read them again; gone: deleted). `reload`: the registry was reread
  from the store, anything may have changed.
- `overflow` {"seq"}: this stream fell behind and ends; read everything again.
A comment line is sent every KEEPALIVE seconds so proxies and the page see it is alive.

EventSource cannot send an Authorization header, and a token in the URL ends up in
logs and history: the stream takes the same `Authorization: Bearer` header as every
route (read role), and the page reads it with fetch().
"""

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from .context import CONTEXT, context
from .errors import ApiError

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

SEND_INTERVAL = 0.25  # seconds between two events of one stream (changes are merged)
KEEPALIVE = 15.0  # seconds between comment lines on an idle stream
WRITE_TIMEOUT = 10.0  # seconds a reader may leave an event unread before it is dropped


def event_bytes(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _write(response: web.StreamResponse, data: bytes) -> None:
    async with asyncio.timeout(WRITE_TIMEOUT):
        await response.write(data)


@routes.get("/api/v1/events")
async def event_stream(request: web.Request) -> web.StreamResponse:
    hub = context(request).events
    subscription = hub.subscribe()
    if subscription is None:
        raise ApiError(
            503,
            f"{hub.max_streams} event streams are open already (or the server is stopping); "
            "close a page that shows this server, or try again shortly",
        )
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # a proxy in front must not hold events back
        }
    )
    try:
        await response.prepare(request)
        await _write(response, event_bytes("hello", {"seq": hub.seq}))
        while not hub.closed:
            try:
                async with asyncio.timeout(KEEPALIVE):
                    await subscription.wake.wait()
            except TimeoutError:
                await _write(response, b": keepalive\n\n")
                continue
            if hub.closed:
                break
            if subscription.overflowed:
                await _write(response, event_bytes("overflow", {"seq": hub.seq}))
                log.info(
                    "event stream of %s fell %d changes behind: closed, the page reloads",
                    request.remote,
                    hub.max_pending,
                )
                break
            await _write(response, event_bytes("change", {"seq": hub.seq, **subscription.take()}))
            await asyncio.sleep(SEND_INTERVAL)
    except TimeoutError:
        log.info(
            "event stream of %s closed: it read nothing for %g s", request.remote, WRITE_TIMEOUT
        )
    except ConnectionError:
        pass  # the reader went away
    finally:
        hub.unsubscribe(subscription)
    return response


async def close_streams(app: web.Application) -> None:
    """on_shutdown: end every stream, so stopping does not wait for readers."""
    app[CONTEXT].events.close()

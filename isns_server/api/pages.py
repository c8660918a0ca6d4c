"""Cursor pagination over the registry's sorted key indexes: a page of n objects costs
O(log N + n) (plus what a filter skips), never a copy of the registry."""

import asyncio
import base64
import binascii
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice
from typing import Any

from aiohttp import web

from ..registry.sortedkeys import SortedKeys
from .errors import ApiError

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
CHUNK = 100  # objects rendered between two turns of the event loop


def limit_of(request: web.Request) -> int:
    text = request.query.get("limit")
    if text is None:
        return DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise ApiError(400, f"limit must be a whole number from 1 to {MAX_LIMIT}", "limit")
    return int(text)


def encode_cursor(key: Any) -> str:
    """An opaque cursor for "after this key"; bytes (portal addresses) as hex."""
    plain = (
        [part.hex() if isinstance(part, bytes) else part for part in key]
        if isinstance(key, tuple)
        else key
    )
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def decode_cursor(request: web.Request, shape: type) -> Any:
    """The key a cursor from `encode_cursor` stands for, checked against `shape`: str,
    int, or a tuple type's parts (bytes parts are hex)."""
    text = request.query.get("cursor")
    if text is None:
        return None
    try:
        raw = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        return _shaped(raw, shape)
    except (ValueError, binascii.Error, TypeError):
        raise ApiError(
            400, "cursor is not one this server handed out; start again without it", "cursor"
        ) from None


def _shaped(raw: Any, shape: Any) -> Any:
    if shape in (str, int):
        if type(raw) is not shape:
            raise TypeError
        return raw
    parts = shape.__args__
    if not isinstance(raw, list) or len(raw) != len(parts):
        raise TypeError
    return tuple(
        bytes.fromhex(value) if part is bytes else _shaped(value, part)
        for value, part in zip(raw, parts, strict=True)
    )


def keys_from(
    keys: SortedKeys[Any], table: Mapping[Any, Any], after: Any, prefix: str
) -> Iterator[Any]:
    """String keys after `after` that start with `prefix`, in order."""
    if prefix and (after is None or after < prefix):
        if prefix in table:
            yield prefix
        after = prefix
    for key in keys.after(after):
        if not key.startswith(prefix):
            return
        yield key


async def page_response(
    items: Iterable[Any],
    limit: int,
    key_of: Callable[[Any], Any],
    view: Callable[[Any], Any],
) -> web.Response:
    """{"items": up to `limit` views, "next_cursor": where the next page starts or null},
    rendered and encoded CHUNK objects at a time with the event
    loop free in between: a 1,000-node page never holds up iSNS, the portal or SLP for
    its whole length. (An object changed meanwhile is shown as it is when its chunk is
    rendered; the page's membership is fixed when the request starts.)"""
    chosen, cursor = _choose(items, limit, key_of)
    parts = []
    for start in range(0, len(chosen), CHUNK):
        if start:
            await asyncio.sleep(0)
        encoded = json.dumps([view(item) for item in chosen[start : start + CHUNK]])
        parts.append(encoded[1:-1])
    body = '{"items": [' + ", ".join(parts) + '], "next_cursor": ' + json.dumps(cursor) + "}"
    return web.Response(text=body, content_type="application/json")


def _choose(
    items: Iterable[Any], limit: int, key_of: Callable[[Any], Any]
) -> tuple[list[Any], str | None]:
    chosen = list(islice(items, limit + 1))
    if len(chosen) <= limit:
        return chosen, None
    del chosen[limit:]
    return chosen, encode_cursor(key_of(chosen[-1]))

"""etcd v3's JSON gateway (the grpc-gateway every etcd 3.4+ member serves on its client
URLs): request bodies built and answers parsed, without I/O.

Keys and values travel base64-encoded; int64 fields (revisions, lease IDs) come back as
strings and a field at its zero value is left out of an answer.
"""

import base64
import json
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]


class EtcdError(Exception):
    """etcd answered with an error (`code` is the gRPC status code), or could not be
    reached at all (code None)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


# gRPC status codes etcd uses that this client acts on
CODE_UNAUTHENTICATED = 16
CODE_INVALID_ARGUMENT = 3
# Errors after which a write may still commit: no answer at all (code None), or etcd's
# "request timed out", "leader changed" and the like.
UNDETERMINED_CODES = frozenset((None, 2, 4, 14))  # unknown, deadline exceeded, unavailable


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    mod_revision: int
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Event:
    """One change a watch reports: `deleted`, or the key's new value."""

    kv: KeyValue
    deleted: bool


@dataclass(frozen=True, slots=True)
class RangeAnswer:
    kvs: tuple[KeyValue, ...]
    revision: int  # the store's revision the range was read at
    more: bool


@dataclass(frozen=True, slots=True)
class TxnAnswer:
    succeeded: bool
    revision: int  # the revision this transaction made (or the current one, if it failed)
    ranges: tuple[tuple[KeyValue, ...], ...] = ()  # what the branch taken read, in order


@dataclass(frozen=True, slots=True)
class WatchAnswer:
    """One message of a watch stream. `compact_revision` set: the start revision was
    compacted away and the watch was cancelled; read everything again."""

    revision: int
    events: tuple[Event, ...]
    created: bool = False
    canceled: bool = False
    compact_revision: int = 0
    cancel_reason: str = ""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that selects every key starting with `prefix`."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"  # every key


def range_request(key: bytes, end: bytes, revision: int = 0, limit: int = 0) -> Json:
    body: Json = {"key": b64(key), "range_end": b64(end)}
    if revision:
        body["revision"] = str(revision)
    if limit:
        body["limit"] = str(limit)
    return body


def put_op(key: bytes, value: bytes, lease: int = 0) -> Json:
    put: Json = {"key": b64(key), "value": b64(value)}
    if lease:
        put["lease"] = str(lease)
    return {"request_put": put}


def range_op(key: bytes) -> Json:
    return {"request_range": {"key": b64(key)}}


def delete_op(key: bytes) -> Json:
    return {"request_delete_range": {"key": b64(key)}}


def mod_revision_is(key: bytes, revision: int) -> Json:
    """Compare: the key was last written at `revision` (0: it does not exist)."""
    return {"key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(revision)}


def created_revision_is(key: bytes, revision: int) -> Json:
    return {
        "key": b64(key),
        "target": "CREATE",
        "result": "EQUAL",
        "create_revision": str(revision),
    }


def lease_is(key: bytes, lease: int) -> Json:
    return {"key": b64(key), "target": "LEASE", "result": "EQUAL", "lease": str(lease)}


def txn_request(
    compare: list[Json], success: list[Json], failure: list[Json] | None = None
) -> Json:
    return {"compare": compare, "success": success, "failure": failure or []}


def watch_request(key: bytes, end: bytes, start_revision: int) -> Json:
    return {
        "create_request": {
            "key": b64(key),
            "range_end": b64(end),
            "start_revision": str(start_revision),
        }
    }


def check_error(answer: Json) -> None:
    """Raise the EtcdError an answer carries (the gateway puts it in "error" or "code")."""
    error = answer.get("error")
    if isinstance(error, dict):  # inside a watch stream
        raise EtcdError(str(error.get("message", error)), _int(error.get("grpc_code")))
    if "code" in answer and ("message" in answer or "error" in answer):
        raise EtcdError(str(answer.get("message") or answer.get("error")), _int(answer["code"]))


def parse_range(answer: Json) -> RangeAnswer:
    check_error(answer)
    return RangeAnswer(
        tuple(_kv(kv) for kv in answer.get("kvs", ())),
        _revision(answer),
        bool(answer.get("more", False)),
    )


def parse_txn(answer: Json) -> TxnAnswer:
    check_error(answer)
    ranges = tuple(
        tuple(_kv(kv) for kv in response["response_range"].get("kvs", ()))
        for response in answer.get("responses", ())
        if "response_range" in response
    )
    return TxnAnswer(bool(answer.get("succeeded", False)), _revision(answer), ranges)


def parse_watch(answer: Json) -> WatchAnswer:
    check_error(answer)
    result = answer.get("result", answer)
    events = tuple(
        Event(_kv(event.get("kv", {})), event.get("type") == "DELETE")
        for event in result.get("events", ())
    )
    return WatchAnswer(
        _revision(result),
        events,
        bool(result.get("created", False)),
        bool(result.get("canceled", False)),
        _int(result.get("compact_revision")) or 0,
        str(result.get("cancel_reason", "")),
    )


def parse_lease_grant(answer: Json) -> tuple[int, int]:
    """(lease ID, TTL granted)."""
    check_error(answer)
    if answer.get("error"):
        raise EtcdError(f"lease refused: {answer['error']}")
    return _int(answer.get("ID")) or 0, _int(answer.get("TTL")) or 0


def parse_keepalive(answer: Json) -> int:
    """The lease's remaining TTL; 0 when it has expired (the lease is gone)."""
    check_error(answer)
    result = answer.get("result", answer)
    return _int(result.get("TTL")) or 0


MAX_STREAM_MESSAGE = 64 << 20  # characters of one watch message, far above etcd's own


class StreamDecoder:
    """JSON objects one after another on a chunked HTTP body (a watch stream). Anything
    else (a proxy's error page, a message grown past MAX_STREAM_MESSAGE) is an EtcdError:
    the stream is given up and opened again."""

    def __init__(self) -> None:
        self._buffer = ""
        self._decoder = json.JSONDecoder()

    def feed(self, chunk: bytes) -> list[Json]:
        self._buffer += chunk.decode("utf-8", errors="replace")
        found: list[Json] = []
        while True:
            text = self._buffer.lstrip()
            if not text:
                self._buffer = ""
                return found
            if text[0] != "{":
                raise EtcdError(f"etcd's watch stream holds something else: {text[:80]!r}")
            try:
                value, end = self._decoder.raw_decode(text)
            except json.JSONDecodeError:
                if len(text) > MAX_STREAM_MESSAGE:
                    raise EtcdError("a watch message never ended") from None
                self._buffer = text  # incomplete: wait for more
                return found
            self._buffer = text[end:]
            found.append(value)


def _kv(raw: Json) -> KeyValue:
    return KeyValue(
        base64.b64decode(raw.get("key", "")),
        base64.b64decode(raw.get("value", "")),
        _int(raw.get("mod_revision")) or 0,
        _int(raw.get("lease")) or 0,
    )


def _revision(answer: Json) -> int:
    return _int(answer.get("header", {}).get("revision")) or 0


def _int(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None

"""etcd's JSON gateway: bodies built and answers parsed, errors raised, a watch stream
split into its messages however the chunks fall."""

import json

import pytest

from isns_server.replication import etcd_wire as wire
from isns_server.replication.etcd_wire import EtcdError


def test_prefix_end_selects_every_key_under_the_prefix() -> None:
    assert wire.prefix_end(b"/isns/") == b"/isns0"
    assert wire.prefix_end(b"a\xff") == b"b"
    assert wire.prefix_end(b"\xff") == b"\0"


def test_a_compare_and_swap_transaction() -> None:
    body = wire.txn_request(
        [wire.mod_revision_is(b"k", 0)], [wire.put_op(b"k", b"v", lease=7), wire.delete_op(b"j")]
    )
    assert body["compare"] == [
        {"key": "aw==", "target": "MOD", "result": "EQUAL", "mod_revision": "0"}
    ]
    assert body["success"][0] == {"request_put": {"key": "aw==", "value": "dg==", "lease": "7"}}
    assert body["success"][1] == {"request_delete_range": {"key": "ag=="}}
    assert body["failure"] == []


def test_answers_with_int64_as_text_and_zero_values_left_out() -> None:
    answer = wire.parse_range(
        {
            "header": {"revision": "12"},
            "kvs": [{"key": "aw==", "value": "dg==", "mod_revision": "9"}],
            "more": True,
        }
    )
    assert answer == wire.RangeAnswer((wire.KeyValue(b"k", b"v", 9),), 12, True)
    assert wire.parse_range({"header": {"revision": "3"}}).kvs == ()
    assert wire.parse_txn({"header": {"revision": "4"}}) == wire.TxnAnswer(False, 4)
    assert wire.parse_lease_grant({"ID": "5", "TTL": "3"}) == (5, 3)
    assert wire.parse_keepalive({"result": {"ID": "5"}}) == 0  # expired: no TTL


def test_errors_carry_the_grpc_code() -> None:
    with pytest.raises(EtcdError) as raised:
        wire.parse_txn({"error": "etcdserver: request timed out", "code": 14, "message": "x"})
    assert raised.value.code == 14
    with pytest.raises(EtcdError):
        wire.parse_watch({"error": {"grpc_code": 14, "message": "no leader"}})


def test_a_watch_stream_split_anywhere() -> None:
    messages: list[wire.Json] = [
        {"result": {"header": {"revision": "2"}, "created": True}},
        {
            "result": {
                "header": {"revision": "3"},
                "events": [
                    {"kv": {"key": "aw==", "value": "dg==", "mod_revision": "3"}},
                    {"type": "DELETE", "kv": {"key": "ag==", "mod_revision": "3"}},
                ],
            }
        },
        {"result": {"canceled": True, "compact_revision": "2"}},
    ]
    text = "\n".join(json.dumps(m) for m in messages).encode()
    for size in (1, 7, len(text)):
        decoder = wire.StreamDecoder()
        found = []
        for start in range(0, len(text), size):
            found += decoder.feed(text[start : start + size])
        assert found == messages
    answers = [wire.parse_watch(m) for m in messages]
    assert answers[0].created
    assert answers[1].events == (
        wire.Event(wire.KeyValue(b"k", b"v", 3), False),
        wire.Event(wire.KeyValue(b"j", b"", 3), True),
    )
    assert answers[2].canceled and answers[2].compact_revision == 2


def test_a_watch_stream_that_is_not_json_is_an_error_not_a_wait() -> None:
    decoder = wire.StreamDecoder()
    first = decoder.feed(b'{"result": {"created": true}}\n{"res')
    assert first == [{"result": {"created": True}}]
    assert decoder.feed(b'ult": {}}') == [{"result": {}}]
    for junk in (b"<html>502 Bad Gateway</html>", b"\xff\xfe", b"[1, 2]"):
        with pytest.raises(EtcdError):
            wire.StreamDecoder().feed(junk)

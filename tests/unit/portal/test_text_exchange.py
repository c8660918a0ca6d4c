"""Text Request sequences: continued requests, long responses, tags, repeated keys."""

import pytest

from isns_server.portal.iscsi.constants import RESERVED_TAG, RejectReason
from isns_server.portal.iscsi.errors import TextFormatError
from isns_server.portal.iscsi.pdu import TextRequest
from isns_server.portal.iscsi.text import KeyValuePairs, decode_text, encode_text
from isns_server.portal.session.text_exchange import TextExchange, TextRejected

Pair = tuple[str, str]


def echo(pairs: KeyValuePairs) -> list[Pair]:
    return [(key, value.upper()) for key, value in pairs]


def many(pairs: KeyValuePairs) -> list[Pair]:
    return [(f"Key{n}", "v" * 100) for n in range(20)]


def exchange() -> TextExchange:
    tags = iter(range(0x10, 0x100))
    return TextExchange(lambda: next(tags))


def text(*pairs: Pair, final: bool = True) -> TextRequest:
    return TextRequest(itt=7, final=final, data=encode_text(pairs))


def test_a_short_answer_is_one_final_response() -> None:
    reply = exchange().receive(text(("A", "x")), echo, 8192)
    assert reply.final and not reply.continue_ and reply.ttt == RESERVED_TAG
    assert decode_text(reply.data).pairs == (("A", "X"),)


def test_a_long_answer_continues_under_one_tag_until_final() -> None:
    texts = exchange()
    reply = texts.receive(text(("SendTargets", "All")), many, 512)
    parts = [reply]
    while not reply.final:
        assert reply.ttt == 0x10 and len(reply.data) <= 512
        reply = texts.receive(TextRequest(itt=7, ttt=reply.ttt), many, 512)
        parts.append(reply)
    assert reply.ttt == RESERVED_TAG and len(parts) > 3
    whole = b"".join(part.data for part in parts)
    assert decode_text(whole).pairs == tuple(many(KeyValuePairs()))
    assert all(part.continue_ for part in parts[:-1])  # 10.11.2: the text is not complete


def test_an_answer_cut_on_a_pair_boundary_still_says_it_continues() -> None:
    """Key0..Key9 pairs are 106 bytes: a 212-byte limit cuts right after the second."""
    texts = exchange()
    reply = texts.receive(text(("SendTargets", "All")), many, 212)
    assert reply.data.endswith(b"\0") and len(reply.data) == 212
    assert (reply.final, reply.continue_) == (False, True)  # never F=0, C=0 mid-answer
    while not reply.final:
        last = reply
        reply = texts.receive(TextRequest(itt=7, ttt=reply.ttt), many, 212)
    assert last.continue_ and not reply.continue_


def test_a_continued_request_is_acknowledged_empty_then_answered() -> None:
    texts = exchange()
    raw = encode_text([("A", "x"), ("B", "y")])
    first = texts.receive(TextRequest(itt=7, final=False, continue_=True, data=raw[:3]), echo, 8192)
    assert (first.data, first.final, first.ttt) == (b"", False, 0x10)
    last = texts.receive(TextRequest(itt=7, ttt=0x10, data=raw[3:]), echo, 8192)
    assert last.final and decode_text(last.data).pairs == (("A", "X"), ("B", "Y"))


def test_a_request_without_the_f_bit_is_answered_without_it() -> None:
    texts = exchange()
    reply = texts.receive(text(("A", "x"), final=False), echo, 8192)
    assert not reply.final and reply.ttt == 0x10  # 10.11.1
    reply = texts.receive(TextRequest(itt=7, ttt=0x10, data=encode_text([("B", "y")])), echo, 8192)
    assert reply.final


def test_a_key_twice_in_one_sequence_is_a_protocol_error() -> None:
    texts = exchange()
    with pytest.raises(TextRejected) as caught:
        texts.receive(text(("A", "1"), ("A", "2")), echo, 8192)
    assert caught.value.reason == RejectReason.PROTOCOL_ERROR
    texts.receive(text(("A", "1"), final=False), echo, 8192)
    with pytest.raises(TextRejected):
        texts.receive(TextRequest(itt=7, ttt=0x11, data=encode_text([("A", "2")])), echo, 8192)
    texts.receive(text(("A", "2")), echo, 8192)  # a new sequence may say it again


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (TextRequest(itt=7, ttt=0x99), RejectReason.INVALID_PDU_FIELD),  # a tag never given
        (TextRequest(itt=7, final=True, continue_=True), RejectReason.PROTOCOL_ERROR),
    ],
)
def test_bad_requests(request_: TextRequest, reason: RejectReason) -> None:
    with pytest.raises(TextRejected) as caught:
        exchange().receive(request_, echo, 8192)
    assert caught.value.reason == reason


def test_text_sent_while_a_response_is_incomplete_ends_the_sequence() -> None:
    texts = exchange()
    reply = texts.receive(text(("SendTargets", "All")), many, 512)
    with pytest.raises(TextRejected):
        texts.receive(TextRequest(itt=7, ttt=reply.ttt, data=encode_text([("B", "1")])), many, 512)
    with pytest.raises(TextRejected):  # the tag is stale now
        texts.receive(TextRequest(itt=7, ttt=reply.ttt), many, 512)


def test_malformed_text_is_raised() -> None:
    with pytest.raises(TextFormatError):
        exchange().receive(TextRequest(itt=7, data=b"no-equals\0"), echo, 8192)

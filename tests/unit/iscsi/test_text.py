"""Key=value text (RFC 3720 5.1): decoding rules, limits, continuation and splitting."""

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isns_server.portal.iscsi import (
    KeyValuePairs,
    TextAccumulator,
    TextFormatError,
    decode_text,
    encode_text,
    split_text,
)
from isns_server.portal.iscsi.constants import LoginStatus, RejectReason

LABEL_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-+@_"
keys = st.tuples(
    st.sampled_from(["A", "T", "X-", "X#"]), st.text(LABEL_CHARACTERS, min_size=1, max_size=61)
).map("".join)
# At most 4 bytes per character: 63 characters stay within the 255-byte limit.
values = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=63)
pair_lists = st.lists(st.tuples(keys, values), max_size=12)


def test_decode_in_order_with_repeats() -> None:
    text = decode_text(b"TargetName=iqn.a\0TargetAddress=10.0.0.1:3260,1\0TargetAddress=[::1],1\0")
    assert text.pairs == (
        ("TargetName", "iqn.a"),
        ("TargetAddress", "10.0.0.1:3260,1"),
        ("TargetAddress", "[::1],1"),
    )
    assert text.repeated == ("TargetAddress",)
    assert text.get("TargetAddress") == "10.0.0.1:3260,1"
    assert text.get("TargetAlias") is None
    assert len(text) == 3


def test_value_is_everything_after_the_first_equals() -> None:
    assert list(decode_text(b"CHAP_C=0bAAA=\0X-com.example.k=\0")) == [
        ("CHAP_C", "0bAAA="),
        ("X-com.example.k", ""),
    ]


def test_empty_text_and_stray_nuls() -> None:
    assert decode_text(b"") == KeyValuePairs()
    assert list(decode_text(b"A=1\0\0B=2\0")) == [("A", "1"), ("B", "2")]


@pytest.mark.parametrize(
    "raw",
    [
        b"SendTargets=All",  # no NUL at the end
        b"SendTargets=All\0Max",
        b"NoEquals\0",
        b"=value\0",
        b"lowercase=1\0",
        b"1Digit=1\0",
        b"Bad Key=1\0",
        b"X#=1\0",
        b"K" * 64 + b"=1\0",  # key longer than 63
        b"TargetAlias=" + b"a" * 256 + b"\0",
        b"HeaderDigest=CRC32C," + b"a" * 256 + b"\0",
        b"CHAP_R=0x" + b"0" * 8191 + b"\0",
        b"TargetAlias=\xff\xfe\0",
    ],
)
def test_format_errors(raw: bytes) -> None:
    with pytest.raises(TextFormatError) as caught:
        decode_text(raw)
    assert caught.value.reject_reason == RejectReason.PROTOCOL_ERROR
    assert caught.value.login_status == LoginStatus.INITIATOR_ERROR
    assert not caught.value.fatal


def test_length_limits() -> None:
    assert decode_text(b"K" * 63 + b"=1\0").pairs[0][0] == "K" * 63
    assert decode_text(b"TargetAlias=" + b"a" * 255 + b"\0").get("TargetAlias") == "a" * 255
    challenge = "0x" + "ab" * 1024  # CHAP_C may be 1024 binary bytes (11.1.4)
    assert decode_text(encode_text([("CHAP_C", challenge)])).get("CHAP_C") == challenge
    digests = ",".join(["CRC32C"] * 100)  # a list longer than 255 with short items
    assert decode_text(encode_text([("HeaderDigest", digests)])).get("HeaderDigest") == digests
    alias = "é" * 128  # 256 bytes of UTF-8
    with pytest.raises(TextFormatError):
        encode_text([("TargetAlias", alias)])


@pytest.mark.parametrize(
    "pair", [("bad", "1"), ("A", "x\0y"), ("TargetAlias", "a" * 256), ("Ké", "1")]
)
def test_encode_refuses_what_decode_would(pair: tuple[str, str]) -> None:
    with pytest.raises(TextFormatError):
        encode_text([pair])


@given(pair_lists)
def test_roundtrip(pairs: list[tuple[str, str]]) -> None:
    assert list(decode_text(encode_text(pairs))) == pairs


@settings(max_examples=200)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_text_errors(raw: bytes) -> None:
    with contextlib.suppress(TextFormatError):
        decode_text(raw)


@given(pair_lists, st.integers(1, 300))
def test_split_then_accumulate(pairs: list[tuple[str, str]], max_length: int) -> None:
    text = encode_text(pairs)
    chunks = split_text(text, max_length)
    assert b"".join(chunks) == text
    assert all(len(chunk) <= max_length for chunk in chunks)
    accumulator = TextAccumulator()
    for chunk in chunks[:-1]:
        assert accumulator.feed(chunk, continue_=True) is None
        assert accumulator.pending
    assert list(accumulator.feed(chunks[-1], continue_=False) or ()) == pairs
    assert not accumulator.pending


def test_split_prefers_pair_boundaries() -> None:
    text = b"A=1\0B=22\0C=333\0"
    assert split_text(text, 10) == [b"A=1\0B=22\0", b"C=333\0"]
    assert split_text(b"Key=" + b"v" * 10 + b"\0", 6) == [b"Key=vv", b"vvvvvv", b"vv\0"]
    assert split_text(b"", 100) == [b""]
    with pytest.raises(ValueError):
        split_text(text, 0)


def test_accumulator_decodes_only_complete_text() -> None:
    accumulator = TextAccumulator()
    assert accumulator.feed(b"InitiatorName=iqn.1998-01.com.vm", continue_=True) is None
    assert accumulator.feed(memoryview(b"ware:host\0SessionType=Nor"), continue_=True) is None
    text = accumulator.feed(b"mal\0", continue_=False)
    assert text is not None
    assert list(text) == [
        ("InitiatorName", "iqn.1998-01.com.vmware:host"),
        ("SessionType", "Normal"),
    ]


def test_accumulator_limit_and_reset() -> None:
    accumulator = TextAccumulator(max_length=16)
    accumulator.feed(b"A=" + b"x" * 10, continue_=True)
    with pytest.raises(TextFormatError):
        accumulator.feed(b"y" * 10, continue_=True)
    assert not accumulator.pending  # the partial text was dropped
    assert list(accumulator.feed(b"B=1\0", continue_=False) or ()) == [("B", "1")]
    accumulator.feed(b"C=", continue_=True)
    accumulator.reset()
    assert list(accumulator.feed(b"D=2\0", continue_=False) or ()) == [("D", "2")]

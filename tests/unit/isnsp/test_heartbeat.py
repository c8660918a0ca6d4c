"""The Heartbeat payload (RFC 4171 5.6.5.14): layout, round trip, and bad input."""

import contextlib
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from isns_server.isnsp.codec import DatagramDecoder, encode_message
from isns_server.isnsp.constants import FunctionId, Status
from isns_server.isnsp.errors import MessageFormatError
from isns_server.isnsp.heartbeat import (
    Heartbeat,
    ServerAddress,
    decode_heartbeat,
    encode_heartbeat,
    heartbeat_message,
)

ACTIVE = ServerAddress(IPv4Address("127.0.0.1"), 3205, 3205)


def test_the_layout_byte_by_byte() -> None:
    payload = encode_heartbeat(Heartbeat(ACTIVE, 60, 7))
    assert payload == (
        bytes(10) + b"\xff\xff" + bytes([127, 0, 0, 1])  # IPv4-mapped active address
        + b"\x0c\x85\x0c\x85"  # TCP and UDP port 3205
        + b"\x00\x00\x00\x3c"  # interval 60
        + b"\x00\x00\x00\x07"  # counter
        + b"\x00\x00\x00\x00"  # reserved, no backup servers
    )  # fmt: skip


def test_round_trip_with_backups_and_vendor_data() -> None:
    heartbeat = Heartbeat(
        ACTIVE,
        1,
        0xFFFFFFFF,
        (ServerAddress(IPv6Address("::1"), 3205, 0), ACTIVE),
        b"vend",
    )
    assert decode_heartbeat(encode_heartbeat(heartbeat)) == heartbeat


def test_as_a_message_through_the_codec() -> None:
    message = heartbeat_message(Heartbeat(ACTIVE, 5, 1), xid=9)
    (pdu,) = encode_message(message)
    decoded = DatagramDecoder().receive_datagram(pdu, "peer")
    assert decoded is not None and decoded.function == FunctionId.HEARTBEAT
    assert decoded.payload is not None
    assert decode_heartbeat(decoded.payload) == Heartbeat(ACTIVE, 5, 1)


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"", "0 bytes"),
        (encode_heartbeat(Heartbeat(ACTIVE, 5, 1))[:28], "28 bytes"),
        (encode_heartbeat(Heartbeat(ACTIVE, 5, 1))[:30] + b"\x00\x02", "2 backup servers"),
        (encode_heartbeat(Heartbeat(ServerAddress(ACTIVE.address, 0, 0), 5, 1)), "TCP port 0"),
        (encode_heartbeat(Heartbeat(ACTIVE, 0, 1)), "interval 0"),
    ],
)
def test_bad_heartbeats_are_message_format_errors(payload: bytes, problem: str) -> None:
    with pytest.raises(MessageFormatError) as error:
        decode_heartbeat(payload)
    assert error.value.status == Status.MESSAGE_FORMAT_ERROR
    assert error.value.function == FunctionId.HEARTBEAT and error.value.xid is None  # no reply
    assert problem in str(error.value)


def test_vendor_data_must_keep_the_payload_aligned() -> None:
    with pytest.raises(ValueError, match="multiple of 4"):
        encode_heartbeat(Heartbeat(ACTIVE, 5, 1, vendor=b"abc"))


@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_message_format_error(payload: bytes) -> None:
    with contextlib.suppress(MessageFormatError):
        decode_heartbeat(payload)

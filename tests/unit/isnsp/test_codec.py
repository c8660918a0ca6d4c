"""PDU framing, segmentation and reassembly over TCP and UDP, and their error cases."""

from ipaddress import IPv4Address
from typing import TypedDict, Unpack

import pytest

from isns_server.isnsp import (
    Attribute,
    DatagramDecoder,
    Flags,
    FunctionId,
    Message,
    MessageFormatError,
    NodeType,
    PortNumber,
    Status,
    StreamDecoder,
    Tag,
    encode_message,
    request,
    response,
)
from isns_server.isnsp.attributes import decode_attributes, encode_attribute
from isns_server.isnsp.pdu import HEADER, UDP_MAX_PDU_PAYLOAD, PduHeader, build_pdu, parse_header

NAME = "iqn.2026-11.org.example:disk1"
FIRST, LAST, CLIENT, SERVER = 0x0400, 0x0800, 0x8000, 0x4000

# DevAttrReg built by hand from RFC 4171 5 and 5.3 (every value a 4-byte word).
GOLDEN_DEV_ATTR_REG = bytes.fromhex(
    # version 1, DevAttrReg, PDU length 180, flags Client|Last|First, xid 1, sequence 0
    "0001 0001 00b4 8c00 0001 0000"
    # Source: iSCSI Name (32), 32 bytes: 29 characters, NUL, 2 pad
    "00000020 00000020 69716e2e 32303236 2d31312e 6f72672e 6578616d 706c653a 6469736b 31000000"
    # Message Key: EID (1) "host1", NUL, 2 pad
    "00000001 00000008 686f7374 31000000"
    # Delimiter
    "00000000 00000000"
    # Operating: EID, Entity Protocol iSCSI (2)
    "00000001 00000008 686f7374 31000000"
    "00000002 00000004 00000002"
    # Portal IP Address (16): 192.0.2.10 as ::ffff:192.0.2.10; Portal TCP/UDP Port 3260/tcp
    "00000010 00000010 00000000 00000000 0000ffff c000020a"
    "00000011 00000004 00000cbc"
    # iSCSI Name, iSCSI Node Type (33) Target
    "00000020 00000020 69716e2e 32303236 2d31312e 6f72672e 6578616d 706c653a 6469736b 31000000"
    "00000021 00000004 00000001"
)
GOLDEN_MESSAGE = request(
    FunctionId.DEV_ATTR_REG,
    1,
    Attribute(Tag.ISCSI_NAME, NAME),
    (Attribute(Tag.ENTITY_IDENTIFIER, "host1"),),
    (
        Attribute(Tag.ENTITY_IDENTIFIER, "host1"),
        Attribute(Tag.ENTITY_PROTOCOL, 2),
        Attribute(Tag.PORTAL_IP_ADDRESS, IPv4Address("192.0.2.10")),
        Attribute(Tag.PORTAL_TCP_UDP_PORT, PortNumber(3260)),
        Attribute(Tag.ISCSI_NAME, NAME),
        Attribute(Tag.ISCSI_NODE_TYPE, NodeType.TARGET),
    ),
)


class Limits(TypedDict, total=False):
    """The StreamDecoder limits a test may lower."""

    max_message_size: int
    max_partial_messages: int


def stream_decode(data: bytes, **limits: Unpack[Limits]) -> list[Message]:
    decoder = StreamDecoder(**limits)
    decoder.receive_data(data)
    messages = []
    while (message := decoder.next_message()) is not None:
        messages.append(message)
    return messages


def pdu(function: int, flags: int, xid: int, sequence: int, payload: bytes) -> bytes:
    return build_pdu(function, flags, xid, sequence, payload)


def query(xid: int, *operating: Attribute) -> Message:
    source = Attribute(Tag.ISCSI_NAME, NAME)
    return request(FunctionId.DEV_ATTR_QRY, xid, source, (source,), operating)


def split(message: Message, size: int) -> list[bytes]:
    pdus = encode_message(message, max_pdu_payload=size)
    assert len(pdus) > 1
    return pdus


# --- golden vectors and basic encoding -------------------------------------------------


def test_golden_dev_attr_reg_encodes_byte_for_byte() -> None:
    assert encode_message(GOLDEN_MESSAGE) == [GOLDEN_DEV_ATTR_REG]


def test_golden_dev_attr_reg_decodes() -> None:
    (message,) = stream_decode(GOLDEN_DEV_ATTR_REG)
    assert message == GOLDEN_MESSAGE
    assert message.function is FunctionId.DEV_ATTR_REG
    assert message.flags == Flags.CLIENT
    assert message.status is None
    source, keys, operating = message.split()
    assert source == Attribute(Tag.ISCSI_NAME, NAME)
    assert keys == (Attribute(Tag.ENTITY_IDENTIFIER, "host1"),)
    assert operating[2].value == IPv4Address("192.0.2.10")


def test_response_carries_status_first() -> None:
    rsp = response(GOLDEN_MESSAGE, Status.SUCCESSFUL)
    (wire,) = encode_message(rsp)
    # version 1, DevAttrRegRsp, length 4, flags Server|Last|First, xid 1, sequence 0, status 0
    assert wire == bytes.fromhex("0001 8001 0004 4c00 0001 0000 00000000")
    (decoded,) = stream_decode(wire)
    assert decoded == rsp
    assert decoded.status is Status.SUCCESSFUL


def test_error_response_with_attributes_round_trips() -> None:
    rsp = response(
        GOLDEN_MESSAGE, Status.INVALID_REGISTRATION, (Attribute(Tag.ENTITY_IDENTIFIER, "x"),)
    )
    (decoded,) = stream_decode(b"".join(encode_message(rsp)))
    assert decoded == rsp
    assert decoded.status is Status.INVALID_REGISTRATION


def test_unknown_status_is_kept_as_int() -> None:
    (decoded,) = stream_decode(pdu(0x8002, SERVER | FIRST | LAST, 9, 0, b"\0\0\0\x63"))
    assert decoded.status == 99
    assert decoded.function is FunctionId.DEV_ATTR_QRY_RSP


def test_unknown_function_still_decodes() -> None:
    payload = encode_message(Message(0x0042, 3, Flags.CLIENT, (Attribute(32, NAME),)))
    (decoded,) = stream_decode(b"".join(payload))
    assert decoded.function == 0x0042
    assert decoded.attributes == (Attribute(32, NAME),)


def test_heartbeat_payload_is_raw() -> None:
    body = bytes(range(28))  # IP, TCP port, UDP port, interval, counter (5.6.5.14)
    heartbeat = Message(FunctionId.HEARTBEAT, 0, Flags.SERVER, payload=body)
    (wire,) = encode_message(heartbeat)
    assert wire[12:] == body
    (decoded,) = stream_decode(wire)
    assert decoded == heartbeat
    assert decoded.payload == body
    assert decoded.attributes == ()


def test_message_without_attributes_is_one_empty_pdu() -> None:
    (wire,) = encode_message(Message(FunctionId.DEV_ATTR_QRY, 5, Flags.CLIENT))
    assert parse_header(wire) == PduHeader(1, 2, 0, CLIENT | FIRST | LAST, 5, 0)
    assert stream_decode(wire) == [Message(FunctionId.DEV_ATTR_QRY, 5, Flags.CLIENT)]


def test_replace_flag_is_kept_and_auth_flag_never_sent() -> None:
    message = Message(FunctionId.DEV_ATTR_REG, 5, Flags.CLIENT | Flags.REPLACE | Flags.AUTH)
    (wire,) = encode_message(message)
    assert parse_header(wire).flags == CLIENT | 0x1000 | FIRST | LAST
    assert stream_decode(wire)[0].flags == Flags.CLIENT | Flags.REPLACE


@pytest.mark.parametrize(
    ("message", "size"),
    [
        (Message(FunctionId.HEARTBEAT, 0, payload=b"abc"), 65532),
        (Message(FunctionId.HEARTBEAT, 0), 65532),
        (Message(FunctionId.DEV_ATTR_REG_RSP, 0), 65532),
        (Message(FunctionId.DEV_ATTR_REG, 0x10000), 65532),
        (Message(FunctionId.DEV_ATTR_REG, 0), 6),
        (Message(FunctionId.DEV_ATTR_REG, 0), 65536),
    ],
)
def test_unencodable_messages(message: Message, size: int) -> None:
    with pytest.raises(ValueError):
        encode_message(message, max_pdu_payload=size)


# --- segmentation and reassembly over TCP ---------------------------------------------


def test_split_message_reassembles_with_tlvs_straddling_pdus() -> None:
    message = query(7, *(Attribute(Tag.ISCSI_ALIAS, f"alias {i}") for i in range(20)))
    pdus = split(message, 12)  # not a TLV boundary: TLVs straddle PDUs
    headers = [parse_header(p) for p in pdus]
    assert [h.sequence for h in headers] == list(range(len(pdus)))
    assert [h.flags & (FIRST | LAST) for h in headers] == ([FIRST] + [0] * (len(pdus) - 2) + [LAST])
    assert stream_decode(b"".join(pdus)) == [message]


def payloads(pdus: list[bytes]) -> list[bytes]:
    return [p[HEADER.size :] for p in pdus]


def test_udp_sized_pdus_hold_whole_attributes() -> None:
    # A DevAttrQry answer too long for one datagram: names of different lengths, so a
    # cut every 1400 bytes would land inside one.
    names = [Attribute(Tag.ISCSI_NAME, f"{NAME}-{'x' * (i % 37)}{i}") for i in range(200)]
    rsp = response(query(4), Status.SUCCESSFUL, (names[0],), tuple(names))
    pdus = split(rsp, UDP_MAX_PDU_PAYLOAD)
    first, *rest = payloads(pdus)
    assert first[:4] == bytes(4)  # the status, then whole TLVs
    pieces = [decode_attributes(first[4:]), *(decode_attributes(p) for p in rest)]
    assert tuple(a for piece in pieces for a in piece) == rsp.attributes
    # Each PDU but the last is as full as it can be: the next attribute did not fit.
    for payload, following in zip(payloads(pdus), pieces[1:], strict=False):
        assert len(payload) + len(encode_attribute(following[0])) > UDP_MAX_PDU_PAYLOAD
    decoder = DatagramDecoder()
    assert [decoder.receive_datagram(p, PEER) for p in pdus][-1] == rsp


def test_an_attribute_longer_than_a_pdu_alone_straddles() -> None:
    small = Attribute(Tag.ISCSI_NODE_TYPE, 1)  # 12 bytes
    big = Attribute(Tag.ENTITY_CERTIFICATE, bytes(range(100)))  # 108 bytes
    message = query(5, small, big, small)  # source and key 40 bytes each, delimiter 8
    sizes = [len(p) for p in payloads(split(message, 48))]
    # Source | key, delimiter | small | certificate cut in two | its tail, small.
    assert sizes == [40, 48, 12, 48, 48, 24]
    assert stream_decode(b"".join(split(message, 48))) == [message]


def test_response_status_may_share_a_pdu_with_tlvs_split_later() -> None:
    rsp = response(query(3), Status.SUCCESSFUL, (Attribute(Tag.ISCSI_NAME, NAME),))
    assert stream_decode(b"".join(split(rsp, 8))) == [rsp]


def test_stream_fed_one_byte_at_a_time() -> None:
    message = query(8, Attribute(Tag.ISCSI_ALIAS, "a" * 100))
    decoder = StreamDecoder()
    out = []
    for byte in b"".join(split(message, 16)):
        decoder.receive_data(bytes([byte]))
        if (decoded := decoder.next_message()) is not None:
            out.append(decoded)
    assert out == [message]
    assert decoder.buffered == 0


def test_interleaved_messages_reassemble_separately() -> None:
    a = query(1, *(Attribute(Tag.ISCSI_ALIAS, "a" * 30) for _ in range(3)))
    b = query(2, *(Attribute(Tag.ISCSI_ALIAS, "b" * 30) for _ in range(3)))
    pa, pb = split(a, 32), split(b, 32)
    interleaved = [p for pair in zip(pa, pb, strict=False) for p in pair]
    interleaved += pa[len(pb) :] + pb[len(pa) :]
    assert stream_decode(b"".join(interleaved)) == [a, b]


def test_many_small_messages_in_one_read() -> None:
    wire = b"".join(b"".join(encode_message(query(i))) for i in range(2000))
    messages = stream_decode(wire)
    assert [m.xid for m in messages] == list(range(2000))


def test_auth_block_is_skipped() -> None:
    message = query(4, Attribute(Tag.ISCSI_NODE_TYPE, None))
    (wire,) = encode_message(message)
    flags = parse_header(wire).flags | 0x2000
    spi = b"client1"
    auth = (
        (2).to_bytes(4, "big")  # BSD
        + (20 + len(spi) + 4).to_bytes(4, "big")  # block length
        + (1_700_000_000).to_bytes(8, "big")  # timestamp
        + len(spi).to_bytes(4, "big")
        + spi
        + b"SIGN"
    )
    signed = pdu(2, flags, 4, 0, wire[12:]) + auth
    decoded = stream_decode(signed * 2)
    assert decoded == [Message(2, 4, Flags.CLIENT | Flags.AUTH, message.attributes)] * 2


def stream_error(data: bytes, **limits: Unpack[Limits]) -> MessageFormatError:
    with pytest.raises(MessageFormatError) as info:
        stream_decode(data, **limits)
    return info.value


def first_pdu(xid: int = 1) -> bytes:
    """First half of a DevAttrQry carrying iSCSI Node Type: the TLV header."""
    return pdu(2, CLIENT | FIRST, xid, 0, bytes.fromhex("00000021 00000004"))


def continuation(xid: int = 1, sequence: int = 1, flags: int = CLIENT | LAST) -> bytes:
    """The other half: the value."""
    return pdu(2, flags, xid, sequence, bytes.fromhex("00000002"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (continuation(), "has no first PDU"),
        (first_pdu() + continuation(sequence=2), "2 arrived where 1 was due"),
        (first_pdu() + first_pdu(), "new message began"),
        (pdu(2, CLIENT | FIRST | LAST, 1, 1, b""), "first PDU has sequence ID 1"),
        (first_pdu() + continuation(flags=SERVER | LAST), "flags 0x4000 differ"),
        (pdu(2, CLIENT | FIRST | LAST, 1, 0, bytes.fromhex("00000021 00000008")), "runs past"),
        (pdu(0x8002, SERVER | FIRST | LAST, 1, 0, b""), "too short for its status"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_reassembly_errors_are_not_fatal(data: bytes, message: str) -> None:
    decoder = StreamDecoder()
    decoder.receive_data(data + b"".join(encode_message(query(77))))
    with pytest.raises(MessageFormatError, match=message) as info:
        while decoder.next_message() is not None:
            pass
    error = info.value
    assert (error.status, error.fatal, error.xid) == (Status.MESSAGE_FORMAT_ERROR, False, 1)
    assert error.function in (2, 0x8002)
    # the stream goes on: the next message still decodes
    assert decoder.next_message() == query(77)


def test_oversized_message_is_rejected() -> None:
    message = query(5, *(Attribute(Tag.ISCSI_ALIAS, "x" * 200) for _ in range(10)))
    error = stream_error(b"".join(split(message, 400)), max_message_size=1000)
    assert "larger than the 1000" in str(error)
    assert not error.fatal
    single = b"".join(encode_message(message))
    assert "exceeds the 1000" in str(stream_error(single, max_message_size=1000))


def test_too_many_partial_messages() -> None:
    data = b"".join(first_pdu(xid) for xid in range(5))
    error = stream_error(data, max_partial_messages=4)
    assert (error.xid, error.fatal) == (4, False)
    assert "more than 4 messages" in str(error)


@pytest.mark.parametrize(
    ("header", "status", "message"),
    [
        (
            HEADER.pack(2, 1, 0, CLIENT | FIRST | LAST, 6, 0),
            Status.VERSION_NOT_SUPPORTED,
            "version 2",
        ),
        (
            HEADER.pack(1, 1, 6, CLIENT | FIRST | LAST, 6, 0),
            Status.MESSAGE_FORMAT_ERROR,
            "length 6",
        ),
    ],
)
def test_bad_header_is_fatal_but_answerable(header: bytes, status: Status, message: str) -> None:
    decoder = StreamDecoder()
    decoder.receive_data(header)
    with pytest.raises(MessageFormatError, match=message) as info:
        decoder.next_message()
    error = info.value
    assert (error.status, error.fatal, error.function, error.xid) == (status, True, 1, 6)
    assert "function 0x0001, transaction 6" in str(error)
    decoder.receive_data(b"".join(encode_message(query(1))))
    with pytest.raises(MessageFormatError) as again:
        decoder.next_message()
    assert again.value is error


def test_impossible_auth_block_is_fatal() -> None:
    data = pdu(2, CLIENT | FIRST | LAST | 0x2000, 1, 0, b"") + bytes(4) + (8).to_bytes(4, "big")
    error = stream_error(data + bytes(12))
    assert error.fatal
    assert "authentication block length 8" in str(error)


def test_incomplete_pdu_waits_for_more_data() -> None:
    (wire,) = encode_message(GOLDEN_MESSAGE)
    decoder = StreamDecoder()
    decoder.receive_data(wire[:-1])
    assert decoder.next_message() is None
    decoder.receive_data(wire[-1:])
    assert decoder.next_message() == GOLDEN_MESSAGE


# --- UDP ------------------------------------------------------------------------------

PEER = ("127.0.0.1", 40000)


def test_datagram_with_one_pdu() -> None:
    decoder = DatagramDecoder()
    assert decoder.receive_datagram(GOLDEN_DEV_ATTR_REG, PEER) == GOLDEN_MESSAGE


def test_datagram_with_all_pdus_of_a_message() -> None:
    message = query(3, *(Attribute(Tag.ISCSI_ALIAS, "a" * 30) for _ in range(3)))
    decoder = DatagramDecoder()
    assert decoder.receive_datagram(b"".join(split(message, 16)), PEER) == message


def test_datagrams_out_of_order_with_duplicates() -> None:
    message = query(3, *(Attribute(Tag.ISCSI_ALIAS, "a" * 30) for _ in range(3)))
    pdus = split(message, 16)
    decoder = DatagramDecoder()
    for datagram in [pdus[-1], pdus[2], pdus[2], *pdus[3:-1], pdus[1]]:
        assert decoder.receive_datagram(datagram, PEER) is None
    assert decoder.receive_datagram(pdus[0], PEER) == message
    assert decoder.partial_messages == 0


def test_peers_reassemble_separately() -> None:
    message = query(3, Attribute(Tag.ISCSI_ALIAS, "a" * 30))
    first, *rest = split(message, 16)
    decoder = DatagramDecoder()
    assert decoder.receive_datagram(first, "peer a") is None
    for datagram in rest:
        assert decoder.receive_datagram(datagram, "peer b") is None
    assert decoder.partial_messages == 2


def test_retransmitted_whole_message_replaces_partial() -> None:
    message = query(3, Attribute(Tag.ISCSI_ALIAS, "a" * 30))
    decoder = DatagramDecoder()
    assert decoder.receive_datagram(split(message, 16)[0], PEER) is None
    assert decoder.receive_datagram(b"".join(encode_message(message)), PEER) == message
    assert decoder.partial_messages == 0


def test_oldest_partials_are_dropped() -> None:
    decoder = DatagramDecoder(max_partial_messages=3)
    for xid in range(10):
        decoder.receive_datagram(first_pdu(xid), PEER)
    assert decoder.partial_messages == 3
    # xid 9 survived and completes; xid 0 was dropped, so its last PDU starts a new partial
    assert decoder.receive_datagram(continuation(xid=9), PEER) == Message(
        FunctionId.DEV_ATTR_QRY, 9, Flags.CLIENT, (Attribute(Tag.ISCSI_NODE_TYPE, 2),)
    )
    assert decoder.receive_datagram(continuation(xid=0), PEER) is None


def test_buffered_bytes_are_bounded() -> None:
    decoder = DatagramDecoder(max_message_size=1500, max_buffered_size=2000)
    for xid in range(10):
        decoder.receive_datagram(pdu(2, CLIENT | FIRST, xid, 0, bytes(800)), PEER)
    assert decoder.partial_messages == 2
    # growing the oldest partial (xid 8) drops the other one, not itself
    decoder.receive_datagram(pdu(2, CLIENT, 8, 1, bytes(300)), PEER)
    assert decoder.partial_messages == 2
    decoder.receive_datagram(pdu(2, CLIENT, 8, 2, bytes(300)), PEER)
    assert decoder.partial_messages == 1
    assert decoder.receive_datagram(pdu(2, CLIENT, 9, 1, b""), PEER) is None  # 9 was dropped


@pytest.mark.parametrize(
    ("datagrams", "message", "fatal"),
    [
        ([b""], "empty datagram", True),
        ([GOLDEN_DEV_ATTR_REG[:-4]], "ends inside a PDU", True),
        ([GOLDEN_DEV_ATTR_REG + b"\0\0"], "stray bytes", True),
        ([first_pdu(1) + continuation(xid=2)], "mixes PDUs", True),
        ([GOLDEN_DEV_ATTR_REG * 2], "after its message's last PDU", True),
        ([continuation(sequence=0)], "First PDU flag clear", False),
        ([pdu(2, CLIENT | FIRST, 1, 3, b"")], "First PDU flag set", False),
        ([continuation(sequence=3), continuation(sequence=4)], "two Last PDUs", False),
        (
            [continuation(sequence=3), continuation(sequence=5, flags=CLIENT)],
            "follows the Last",
            False,
        ),
        ([continuation(sequence=5, flags=CLIENT), continuation(sequence=3)], "below one", False),
        ([first_pdu(), continuation(flags=SERVER)], "differ", False),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_datagram_errors(datagrams: list[bytes], message: str, fatal: bool) -> None:
    decoder = DatagramDecoder()
    with pytest.raises(MessageFormatError, match=message) as info:
        for datagram in datagrams:
            decoder.receive_datagram(datagram, PEER)
    assert info.value.fatal is fatal
    assert decoder.partial_messages == 0


def test_datagram_version_error_is_answerable() -> None:
    with pytest.raises(MessageFormatError) as info:
        DatagramDecoder().receive_datagram(HEADER.pack(3, 2, 0, CLIENT | FIRST | LAST, 8, 0), PEER)
    assert (info.value.status, info.value.function, info.value.xid) == (
        Status.VERSION_NOT_SUPPORTED,
        2,
        8,
    )

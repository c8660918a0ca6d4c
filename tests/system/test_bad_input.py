"""Malformed iSNS input gets RFC 4171's answer, and the server keeps serving everyone else."""

import socket
import struct

from isns_server.isnsp.codec import StreamDecoder, encode_message
from isns_server.isnsp.constants import Flags, FunctionId, NodeType, Status, Tag
from isns_server.isnsp.messages import Attribute, Message, request

from ..processes import OurServer

HEADER = struct.Struct("!HHHHHH")
FIRST_LAST_CLIENT = Flags.CLIENT | Flags.FIRST_PDU | Flags.LAST_PDU
NAME = "iqn.2026-11.org.example.test:bad-input-check"


def pdu(function: int, xid: int, payload: bytes, version: int = 1) -> bytes:
    return HEADER.pack(version, function, len(payload), FIRST_LAST_CLIENT, xid, 0) + payload


def tlv(tag: int, value: bytes) -> bytes:
    return struct.pack("!II", tag, len(value)) + value


def exchange(sock: socket.socket, data: bytes) -> Message | None:
    """Send `data`; the first whole message answered, or None if the server closed."""
    sock.sendall(data)
    decoder = StreamDecoder()
    while (message := decoder.next_message()) is None:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        decoder.receive_data(chunk)
    return message


def register(port: int, xid: int = 1) -> Message | None:
    message = request(
        FunctionId.DEV_ATTR_REG,
        xid,
        Attribute(Tag.ISCSI_NAME, NAME),
        keys=(Attribute(Tag.ENTITY_IDENTIFIER, "bad-input-check"),),
        operating=(
            Attribute(Tag.ISCSI_NAME, NAME),
            Attribute(Tag.ISCSI_NODE_TYPE, int(NodeType.INITIATOR)),
        ),
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        return exchange(sock, b"".join(encode_message(message)))


def test_bad_tcp_input_is_answered_per_rfc_and_others_are_served(our_server: OurServer) -> None:
    our_server.start()
    with socket.create_connection(("127.0.0.1", our_server.port), timeout=10) as bad:
        # A string TLV without its NUL terminator: Message Format Error, same transaction.
        answer = exchange(bad, pdu(FunctionId.DEV_ATTR_QRY, 7, tlv(Tag.ISCSI_NAME, b"abcd")))
        assert answer is not None
        assert (answer.function, answer.xid, answer.status) == (
            FunctionId.DEV_ATTR_QRY_RSP,
            7,
            Status.MESSAGE_FORMAT_ERROR,
        )
        # A TLV running past the end of the payload.
        answer = exchange(bad, pdu(FunctionId.DEV_ATTR_REG, 8, struct.pack("!II", 32, 400)))
        assert answer is not None and answer.status == Status.MESSAGE_FORMAT_ERROR
        # The connection still works for a well-formed request.
        name = tlv(Tag.ISCSI_NAME, NAME.encode() + b"\0" * (4 - len(NAME) % 4))
        answer = exchange(bad, pdu(FunctionId.RQST_DOM_ID, 9, name))
        assert answer is not None and answer.status == Status.MESSAGE_NOT_SUPPORTED
        answer = exchange(bad, pdu(0x0042, 10, name))
        assert answer is not None and answer.status == Status.MESSAGE_NOT_SUPPORTED
        # iSNSP version 2: Version Not Supported, then the stream is given up.
        answer = exchange(bad, pdu(FunctionId.DEV_ATTR_QRY, 11, name, version=2))
        assert answer is not None and answer.status == Status.VERSION_NOT_SUPPORTED
    with socket.create_connection(("127.0.0.1", our_server.port), timeout=10) as bad:
        # A PDU length that is not a multiple of 4 cannot be framed: the server hangs up.
        bad.sendall(HEADER.pack(1, FunctionId.DEV_ATTR_QRY, 5, FIRST_LAST_CLIENT, 12, 0))
        bad.sendall(b"\0" * 64)
        received = b""
        while chunk := bad.recv(65536):  # until the server closes (the timeout fails the test)
            received += chunk
        decoder = StreamDecoder()
        decoder.receive_data(received)
        answer = decoder.next_message()
        assert answer is not None and (answer.xid, answer.status) == (
            12,
            Status.MESSAGE_FORMAT_ERROR,
        )
    answer = register(our_server.port)
    assert answer is not None and answer.status == Status.SUCCESSFUL
    assert "bad iSNS message from 127.0.0.1" in our_server.log()


def test_bad_udp_datagram_is_answered_and_udp_keeps_working(our_server: OurServer) -> None:
    our_server.start()
    assert register(our_server.port) is not None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(10)
        udp.connect(("127.0.0.1", our_server.port))
        udp.send(pdu(FunctionId.DEV_ATTR_QRY, 21, tlv(Tag.ISCSI_NAME, b"abcd")))
        decoder = StreamDecoder()
        decoder.receive_data(udp.recv(65536))
        answer = decoder.next_message()
        assert answer is not None and answer.xid == 21
        assert answer.status == Status.MESSAGE_FORMAT_ERROR
        query = request(
            FunctionId.DEV_ATTR_QRY,
            22,
            Attribute(Tag.ISCSI_NAME, NAME),
            keys=(Attribute(Tag.ISCSI_NAME, NAME),),
            operating=(Attribute(Tag.ISCSI_NODE_TYPE),),
        )
        udp.send(b"".join(encode_message(query)))
        decoder.receive_data(udp.recv(65536))
        answer = decoder.next_message()
        assert answer is not None and (answer.xid, answer.status) == (22, Status.SUCCESSFUL)
        assert Attribute(Tag.ISCSI_NODE_TYPE, int(NodeType.INITIATOR)) in answer.attributes

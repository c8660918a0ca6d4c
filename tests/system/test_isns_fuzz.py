"""A bounded mutation fuzzer against the running iSNS server, over TCP and UDP (issue 12
item 10): a fixed seed and a fixed number of cases, a few seconds. Afterwards the log
holds no traceback and a fresh client is served.

Cases that still decode to a message naming an ESI or SCN port are left out: the server
would connect back to whatever address the mutation produced, and tests only talk to
loopback."""

import random
import socket
from collections.abc import Callable
from ipaddress import IPv4Address

from isns_server.isnsp import PortNumber
from isns_server.isnsp.codec import StreamDecoder, encode_message
from isns_server.isnsp.constants import FunctionId, NodeType, Tag
from isns_server.isnsp.errors import MessageFormatError
from isns_server.isnsp.messages import Attribute, Message, request

from ..conftest import ADMIN
from ..processes import OurServer

SEED = 20261202
TCP_CASES = 1000
UDP_CASES = 1000
NAME = "iqn.2026-11.org.example.test:fuzz-target"
_CONNECTS_BACK = {Tag.ESI_PORT, Tag.SCN_PORT}


def seeds() -> list[bytes]:
    """Valid requests of each kind the server answers, one split over several PDUs."""
    source = Attribute(Tag.ISCSI_NAME, NAME)
    admin = Attribute(Tag.ISCSI_NAME, ADMIN)
    entity = Attribute(Tag.ENTITY_IDENTIFIER, "fuzz-entity")
    node = (
        Attribute(Tag.ISCSI_NAME, NAME),
        Attribute(Tag.ISCSI_NODE_TYPE, int(NodeType.TARGET)),
        Attribute(Tag.ISCSI_ALIAS, "fuzzed"),
    )
    portal = (
        Attribute(Tag.PORTAL_IP_ADDRESS, IPv4Address("127.0.0.1")),
        Attribute(Tag.PORTAL_TCP_UDP_PORT, PortNumber(3260)),
    )
    messages = [
        request(FunctionId.DEV_ATTR_REG, 1, source, (entity,), (entity, *portal, *node)),
        request(FunctionId.DEV_ATTR_QRY, 2, source, (source,), (Attribute(Tag.ISCSI_ALIAS),)),
        request(FunctionId.DEV_GET_NEXT, 3, admin, (Attribute(Tag.ISCSI_NAME, ""),)),
        request(FunctionId.SCN_REG, 4, source, (source,), (Attribute(Tag.ISCSI_SCN_BITMAP, 31),)),
        request(
            FunctionId.DD_REG,
            5,
            admin,
            (),
            (Attribute(Tag.DD_SYMBOLIC_NAME, "fuzz-dd"), Attribute(Tag.DD_MEMBER_ISCSI_NAME, NAME)),
        ),
        request(FunctionId.DEV_DEREG, 6, source, (), (Attribute(Tag.ISCSI_NAME, NAME),)),
    ]
    wire = [b"".join(encode_message(m)) for m in messages]
    wire.append(b"".join(encode_message(messages[0], max_pdu_payload=32)))
    return wire


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One to four random edits: bit flips, 16-bit fields set to edge values, cuts,
    insertions, repeated slices."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(6)
        at = rng.randrange(len(out)) if out else 0
        if kind == 0 and out:
            out[at] ^= 1 << rng.randrange(8)
        elif kind == 1 and len(out) >= 2:
            at = rng.randrange(0, len(out) - 1) & ~1
            value = rng.choice([0, 1, 3, 4, 0x7FFF, 0x8000, 0xFFFC, 0xFFFF, rng.randrange(65536)])
            out[at : at + 2] = value.to_bytes(2, "big")
        elif kind == 2:
            del out[at : at + rng.randint(1, 64)]
        elif kind == 3:
            out[at:at] = rng.randbytes(rng.randint(1, 64))
        elif kind == 4:
            piece = out[at : at + rng.randint(4, 128)]
            out[at:at] = piece * rng.randint(1, 8)
        else:
            out[at:at] = bytes(rng.randint(1, 16) * 4)
    return bytes(out)


def connects_back(data: bytes) -> bool:
    """Would the server, decoding `data`, learn a port to connect back to?"""
    decoder = StreamDecoder()
    decoder.receive_data(data)
    while True:
        try:
            message = decoder.next_message()
        except MessageFormatError as error:
            if error.fatal:
                return False
            continue
        if message is None:
            return False
        if any(attribute.tag in _CONNECTS_BACK for attribute in message.attributes):
            return True


def cases(rng: random.Random, count: int) -> list[bytes]:
    pool = seeds()
    found: list[bytes] = []
    while len(found) < count:
        case = mutate(rng, rng.choice(pool))
        if case and not connects_back(case):
            found.append(case)
    return found


def served(port: int) -> bool:
    source = Attribute(Tag.ISCSI_NAME, ADMIN)
    query = request(FunctionId.DEV_ATTR_QRY, 9, source, (), (Attribute(Tag.ISCSI_NAME),))
    with socket.create_connection(("127.0.0.1", port), 10) as sock:
        sock.sendall(b"".join(encode_message(query)))
        decoder = StreamDecoder(max_message_size=16 << 20)
        while (answer := decoder.next_message()) is None:
            chunk = sock.recv(65536)
            if not chunk:
                return False
            decoder.receive_data(chunk)
    return isinstance(answer, Message) and answer.xid == 9


def test_mutated_isns_over_tcp_and_udp_no_traceback_and_still_served(
    our_server: OurServer, record_property: Callable[[str, object], None]
) -> None:
    our_server.settings["isns"].update(udp_rate_limit=100000, udp_rate_burst=100000)
    our_server.start()
    rng = random.Random(SEED)
    answered = 0
    for case in cases(rng, TCP_CASES):
        with socket.create_connection(("127.0.0.1", our_server.port), 10) as sock:
            sock.sendall(case)
            sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(65536):  # the server closes after our end of stream
                answered += len(chunk)
    datagrams = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.setblocking(False)
        for case in cases(rng, UDP_CASES):
            udp.sendto(case[:65507], ("127.0.0.1", our_server.port))
            try:
                while udp.recv(65536):
                    datagrams += 1
            except BlockingIOError:
                pass
    record_property("tcp_answer_bytes", answered)
    record_property("udp_answers_seen", datagrams)
    assert served(our_server.port)
    log = our_server.log()
    assert "Traceback" not in log and "internal error" not in log.lower(), log[-3000:]
    assert our_server.stop() == 0
    assert "Traceback" not in our_server.log()

"""iSNS under attack (issue 12 items 2-4): unfinished multi-PDU messages within a
process-wide budget and timeout, UDP answers bounded against amplification and rate
limited per source, repeated zero-length keys answered once within max_message_size, and
a valid request pipelined before an unframeable PDU answered before the close."""

import socket
import time
from collections.abc import Callable
from ipaddress import ip_address

from isns_server.isnsp import PortNumber
from isns_server.isnsp.codec import DatagramDecoder, StreamDecoder, encode_message
from isns_server.isnsp.constants import Flags, FunctionId, NodeType, Status, Tag
from isns_server.isnsp.messages import Attribute, Message, request
from isns_server.isnsp.pdu import HEADER

from ..conftest import ADMIN
from ..processes import OurServer

MiB = 1 << 20
TARGETS = 3000
FACTOR = 8  # isns.udp_answer_factor's default


def target(n: int) -> str:
    return f"iqn.2026-11.org.example.test:limits-{n:05}"


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc status")


def read_messages(sock: socket.socket, count: int, last_xid: int | None = None) -> list[Message]:
    """`count` messages (or through the one answering `last_xid`), or fewer if the server
    closes first."""
    decoder = StreamDecoder(max_message_size=16 * MiB)
    found: list[Message] = []
    while len(found) < count:
        while (message := decoder.next_message()) is not None:
            found.append(message)
            if len(found) == count or message.xid == last_xid:
                return found
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        decoder.receive_data(chunk)
    return found


def exchange(port: int, message: Message, source: str = "127.0.0.1") -> Message:
    with socket.create_connection(("127.0.0.1", port), 30, (source, 0)) as sock:
        sock.sendall(b"".join(encode_message(message)))
        (answer,) = read_messages(sock, 1)
    return answer


def register(eid: str, names: list[str], portal: str | None = None, xid: int = 1) -> Message:
    operating: tuple[Attribute, ...] = (Attribute(Tag.ENTITY_IDENTIFIER, eid),)
    if portal is not None:  # plain data: no ESI or SCN port, nothing connects to it
        operating += (
            Attribute(Tag.PORTAL_IP_ADDRESS, ip_address(portal)),
            Attribute(Tag.PORTAL_TCP_UDP_PORT, PortNumber(3260)),
        )
    for name in names:
        operating += (
            Attribute(Tag.ISCSI_NAME, name),
            Attribute(Tag.ISCSI_NODE_TYPE, int(NodeType.TARGET)),
        )
    return request(
        FunctionId.DEV_ATTR_REG,
        xid,
        Attribute(Tag.ISCSI_NAME, names[0]),
        (Attribute(Tag.ENTITY_IDENTIFIER, eid),),
        operating,
    )


def register_admin(port: int, address: str = "127.0.0.1") -> None:
    """The control node ADMIN, with a portal at `address`."""
    message = register("admin-entity", [ADMIN], portal=address)
    message = Message(
        message.function,
        message.xid,
        message.flags,
        tuple(
            Attribute(Tag.ISCSI_NODE_TYPE, int(NodeType.CONTROL))
            if a.tag == Tag.ISCSI_NODE_TYPE
            else a
            for a in message.attributes
        ),
    )
    assert exchange(port, message).status == Status.SUCCESSFUL


def register_targets(port: int, count: int = TARGETS, per_message: int = 500) -> None:
    for first in range(0, count, per_message):
        names = [target(n) for n in range(first, min(count, first + per_message))]
        answer = exchange(port, register(f"limits-entity-{first}", names))
        assert answer.status == Status.SUCCESSFUL, answer.status


def served(port: int) -> bool:
    """A fresh client registers and is answered Successful."""
    answer = exchange(port, register("fresh-entity", [target(99999)]))
    return answer.status == Status.SUCCESSFUL


def name_query(xid: int, keys: tuple[Attribute, ...] = ()) -> Message:
    return request(
        FunctionId.DEV_ATTR_QRY,
        xid,
        Attribute(Tag.ISCSI_NAME, ADMIN),
        keys,
        (Attribute(Tag.ISCSI_NAME),),
    )


def unfinished(xid: int, size: int = MiB) -> bytes:
    """All but the Last PDU of a DevAttrQry of about `size` payload bytes."""
    wanted = (Attribute(Tag.ISCSI_NODE_TYPE),) * ((size - 4096) // 8)
    query = request(FunctionId.DEV_ATTR_QRY, xid, Attribute(Tag.ISCSI_NAME, ADMIN), (), wanted)
    return b"".join(encode_message(query)[:-1])


# --- item 2: memory -----------------------------------------------------------------------


def test_32_connections_of_unfinished_1mib_messages_stay_within_the_budget(
    our_server: OurServer, record_property: Callable[[str, object], None]
) -> None:
    our_server.start()
    assert our_server.process is not None
    pid = our_server.process.pid
    register_admin(our_server.port)
    idle = rss_bytes(pid)
    connections, per_connection = 32, 8  # 256 MiB asked for, 64 MiB budget
    busy = 0
    socks = [socket.create_connection(("127.0.0.1", our_server.port), 60) for _ in range(32)]
    try:
        messages = b"".join(unfinished(xid) for xid in range(per_connection))
        messages += b"".join(encode_message(name_query(1000)))
        for sock in socks:
            sock.sendall(messages)
        for sock in socks:  # every PDU consumed once the query behind them is answered
            answers = read_messages(sock, per_connection + 1, last_xid=1000)
            assert answers[-1].xid == 1000 and answers[-1].status == Status.SUCCESSFUL
            busy += sum(answer.status == Status.BUSY for answer in answers)
        held = rss_bytes(pid)
        assert served(our_server.port)
    finally:
        for sock in socks:
            sock.close()
    grown = held - idle
    record_property("rss_idle_mib", idle / MiB)
    record_property("rss_grown_mib", grown / MiB)
    record_property("busy_answers", busy)
    # 15 PDUs of each message are held: 64 MiB (the default budget) holds 68 of them.
    assert busy >= connections * per_connection - (64 * MiB) // (15 * 0xFFFC)
    assert grown < 256 * MiB, f"RSS grew {grown / MiB:.0f} MiB"
    assert "Traceback" not in our_server.log()


def test_an_unfinished_message_times_out_with_message_format_error(
    our_server: OurServer,
) -> None:
    our_server.settings["isns"]["reassembly_timeout"] = 1
    our_server.start()
    with socket.create_connection(("127.0.0.1", our_server.port), 10) as sock:
        sock.sendall(unfinished(77, size=200_000))
        (answer,) = read_messages(sock, 1)  # within the socket timeout
        assert (answer.xid, answer.status) == (77, Status.MESSAGE_FORMAT_ERROR)
        sock.sendall(b"".join(encode_message(name_query(78))))
        (answer,) = read_messages(sock, 1)
        assert answer.xid == 78


# --- item 3: amplification ----------------------------------------------------------------


def udp_exchange(
    port: int, message: Message, source: str, wait: float = 5.0
) -> tuple[int, int, Message | None]:
    """(request bytes, answer bytes, answer) for one request over UDP from `source`."""
    data = b"".join(encode_message(message))
    decoder = DatagramDecoder(max_message_size=16 * MiB)
    received = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * MiB)
        udp.bind((source, 0))
        udp.settimeout(wait)
        udp.sendto(data, ("127.0.0.1", port))
        answer = None
        while answer is None:
            try:
                datagram = udp.recv(65536)
            except TimeoutError:
                break
            received += len(datagram)
            answer = decoder.receive_datagram(datagram, "server")
    return len(data), received, answer


def test_a_76_byte_udp_query_gets_at_most_the_factor_unless_from_its_own_portal(
    our_server: OurServer, record_property: Callable[[str, object], None]
) -> None:
    our_server.start()
    register_admin(our_server.port, "127.0.0.1")
    register_targets(our_server.port)
    query = name_query(5)
    sent, received, answer = udp_exchange(our_server.port, query, "127.0.0.2")
    record_property("udp_request_bytes", sent)
    record_property("udp_answer_bytes_other_address", received)
    assert sent <= 76  # the size of the query in the report
    assert answer is not None and answer.status == Status.SOURCE_UNAUTHORIZED
    assert received <= sent * FACTOR
    # From the address registered as the control node's portal: the whole answer.
    sent, received, answer = udp_exchange(our_server.port, query, "127.0.0.1")
    record_property("udp_answer_bytes_own_portal", received)
    assert answer is not None and answer.status == Status.SUCCESSFUL
    names = {a.value for a in answer.attributes if a.tag == Tag.ISCSI_NAME}
    assert {target(n) for n in range(TARGETS)} <= names
    # Over TCP from anywhere: the whole answer too.
    answer = exchange(our_server.port, query, source="127.0.0.2")
    assert answer.status == Status.SUCCESSFUL
    assert len([a for a in answer.attributes if a.tag == Tag.ISCSI_NAME]) == TARGETS + 1


def test_udp_answers_are_rate_limited_per_source(our_server: OurServer) -> None:
    our_server.settings["isns"].update(udp_rate_limit=5, udp_rate_burst=10)
    our_server.start()
    register_admin(our_server.port)
    data = b"".join(encode_message(name_query(9)))
    answered = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.3", 0))
        started = time.monotonic()
        for _ in range(200):
            udp.sendto(data, ("127.0.0.1", our_server.port))
        udp.settimeout(2)
        try:
            while udp.recv(65536):
                answered += 1
        except TimeoutError:
            pass
        elapsed = time.monotonic() - started  # the buckets refill in real time only
    assert 10 <= answered <= 10 + 5 * elapsed + 1
    # Another address has its own bucket.
    _sent, _received, answer = udp_exchange(our_server.port, name_query(10), "127.0.0.4")
    assert answer is not None and answer.xid == 10


def test_repeated_zero_length_keys_get_one_answer_within_max_message_size(
    our_server: OurServer,
) -> None:
    limit = 128 * 1024
    our_server.settings["isns"]["max_message_size"] = limit
    our_server.start()
    register_admin(our_server.port)
    register_targets(our_server.port, count=500)
    keys = (Attribute(Tag.ISCSI_NAME),) * ((limit - 1024) // 8)  # 127 KiB of the same key
    types = (Attribute(Tag.ISCSI_NODE_TYPE),) * 64
    query = request(FunctionId.DEV_ATTR_QRY, 11, Attribute(Tag.ISCSI_NAME, ADMIN), keys, types)
    with socket.create_connection(("127.0.0.1", our_server.port), 30) as sock:
        sock.sendall(b"".join(encode_message(query)))
        data = b""
        decoder = StreamDecoder(max_message_size=64 * MiB)
        while (answer := decoder.next_message()) is None:
            chunk = sock.recv(1 << 16)
            assert chunk
            data += chunk
            decoder.receive_data(chunk)
    assert answer.status == Status.SUCCESSFUL
    assert len(data) - 12 * (len(data) // (12 + 0xFFFC) + 1) <= limit
    node_types = [a for a in answer.attributes if a.tag == Tag.ISCSI_NODE_TYPE]
    assert len(node_types) == 500 + 1  # each node's type once: the targets and ADMIN
    # Too much even once: refused with a status, not a larger answer.
    register_targets(our_server.port, count=TARGETS)
    wanted = tuple(
        Attribute(tag) for tag in (Tag.ISCSI_NAME, Tag.ISCSI_NODE_INDEX, Tag.ISCSI_NODE_TYPE)
    )
    big = request(FunctionId.DEV_ATTR_QRY, 12, Attribute(Tag.ISCSI_NAME, ADMIN), (), wanted)
    answer = exchange(our_server.port, big)
    assert (answer.xid, answer.status, answer.attributes) == (12, Status.INVALID_QUERY, ())
    assert served(our_server.port)


# --- item 4: pipelining ---------------------------------------------------------------


def test_a_valid_request_before_an_unframeable_pdu_is_answered_before_the_close(
    our_server: OurServer,
) -> None:
    our_server.start()
    valid = b"".join(encode_message(register("pipelined-entity", [target(4)], xid=41)))
    flags = Flags.CLIENT | Flags.FIRST_PDU | Flags.LAST_PDU
    unframeable = HEADER.pack(1, FunctionId.DEV_ATTR_QRY, 5, flags, 42, 0) + b"\0" * 8
    with socket.create_connection(("127.0.0.1", our_server.port), 10) as sock:
        sock.sendall(valid + unframeable)
        answers = read_messages(sock, 3)  # ends at the close: two answers, no third
    assert [(a.xid, a.status) for a in answers] == [
        (41, Status.SUCCESSFUL),
        (42, Status.MESSAGE_FORMAT_ERROR),
    ]
    query = name_query(43, keys=(Attribute(Tag.ISCSI_NAME, target(4)),))
    register_admin(our_server.port)
    assert exchange(our_server.port, query).status == Status.SUCCESSFUL

"""Requests to clients' ports: answered, unanswered, refused, from the wrong sender."""

import asyncio
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from isns_server.isnsp.codec import DatagramDecoder, StreamDecoder, encode_message
from isns_server.isnsp.constants import Flags, FunctionId, Status, Tag
from isns_server.isnsp.messages import Attribute, Message, PortNumber, response
from isns_server.service.outbound import Outbound

from ...polling import eventually

SCN = Message(FunctionId.SCN, 0, Flags.SERVER, (Attribute(Tag.ISCSI_NAME, "iqn.x:y"),))
LOOPBACK = IPv4Address("127.0.0.1")


class UdpPeer(asyncio.DatagramProtocol):
    """A client port on UDP that answers every request, or none."""

    def __init__(self, answer: bool = True, status: Status = Status.SUCCESSFUL) -> None:
        self.answer = answer
        self.status = status
        self.received: list[Message] = []
        self.senders: list[Any] = []
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        message = DatagramDecoder().receive_datagram(data, addr)
        assert message is not None
        self.received.append(message)
        self.senders.append(addr)
        if self.answer:
            for pdu in encode_message(response(message, self.status, message.attributes)):
                self.transport.sendto(pdu, addr)


async def udp_peer(
    host: str = "127.0.0.1", answer: bool = True, status: Status = Status.SUCCESSFUL
) -> tuple[UdpPeer, int]:
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_datagram_endpoint(
        lambda: UdpPeer(answer, status), local_addr=(host, 0)
    )
    return peer, peer.transport.get_extra_info("sockname")[1]


async def test_udp_request_and_response() -> None:
    peer, port = await udp_peer()
    outbound = Outbound()
    answer = await outbound.request(SCN, LOOPBACK, PortNumber(port, udp=True), 2)
    assert answer is not None and answer.function == FunctionId.SCN_RSP
    (sent,) = peer.received
    assert sent.xid != 0 and answer.xid == sent.xid and sent.attributes == SCN.attributes
    # open-isns's IPv4-compatible ::127.0.0.1 means 127.0.0.1.
    compatible = IPv6Address("::7f00:1")
    assert await outbound.request(SCN, compatible, PortNumber(port, udp=True), 2) is not None
    await outbound.close()
    peer.transport.close()


async def test_silence_and_unreachable_ports_are_none() -> None:
    peer, port = await udp_peer(answer=False)
    outbound = Outbound()
    assert await outbound.request(SCN, LOOPBACK, PortNumber(port, udp=True), 0.2) is None
    peer.transport.close()
    await asyncio.sleep(0)  # one turn of the loop: the closing takes effect
    assert await outbound.request(SCN, LOOPBACK, PortNumber(port, udp=True), 0.2) is None
    assert await outbound.request(SCN, LOOPBACK, PortNumber(port), 2) is None  # refused
    await outbound.close()


async def test_a_response_from_another_address_is_not_the_answer() -> None:
    outbound = Outbound()
    peer, port = await udp_peer(answer=False)
    impostor, _ = await udp_peer("127.0.0.2", answer=False)
    request = asyncio.ensure_future(
        outbound.request(SCN, LOOPBACK, PortNumber(port, udp=True), 0.5)
    )
    await eventually(lambda: peer.received, what="the request at the peer", within=5)
    reply = encode_message(response(peer.received[0], Status.SUCCESSFUL))
    for pdu in reply:
        impostor.transport.sendto(pdu, peer.senders[0])
    assert await request is None
    await outbound.close()
    peer.transport.close()
    impostor.transport.close()


async def test_tcp_answered_and_hung() -> None:
    async def answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = StreamDecoder()
        decoder.receive_data(await reader.read(65536))
        message = decoder.next_message()
        assert message is not None
        writer.writelines(encode_message(response(message, Status.SUCCESSFUL)))
        await writer.drain()
        writer.close()

    async def hung(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the requester gives up and closes
        writer.close()

    outbound = Outbound()
    for handler, expected in ((answering, True), (hung, False)):
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        answer = await outbound.request(SCN, ip_address("127.0.0.1"), PortNumber(port), 0.5)
        assert (answer is not None) is expected
        server.close()
    await outbound.close()

"""Requests this server sends to its clients, ESI (RFC 4171 5.6.5.13) and SCN (5.6.5.8),
to the TCP or UDP port a client registered, and the responses that answer them.

Only moves bytes: what to send, and where, comes from the registry. Every request is
numbered here and bounded by a timeout covering connect, send and answer; no answer (a
refused connection, an unreachable port, silence) is None, never an exception.
"""

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import socket
from ipaddress import ip_address
from typing import Any, cast

from ..isnsp.codec import DatagramDecoder, StreamDecoder, encode_message
from ..isnsp.errors import MessageFormatError
from ..isnsp.messages import IPAddress, Message, PortNumber, address_text, unwrap_ipv4
from ..isnsp.pdu import UDP_MAX_PDU_PAYLOAD

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 0xFFFE  # transaction IDs are 16 bits, 0 unused


class Outbound:
    """One UDP socket per address family for every UDP request, a TCP connection per TCP
    request; responses are matched by transaction ID (and, over UDP, by sender)."""

    def __init__(self) -> None:
        self._xids = itertools.cycle(range(1, 0x10000))
        self._waiting: dict[int, tuple[IPAddress, asyncio.Future[Message]]] = {}
        self._udp: dict[int, asyncio.DatagramTransport] = {}
        self._opening = asyncio.Lock()

    async def request(
        self, message: Message, address: IPAddress, port: PortNumber, timeout: float
    ) -> Message | None:
        """Send `message` (its transaction ID is replaced) and return the response, or None
        when none came within `timeout` seconds."""
        if len(self._waiting) >= MAX_IN_FLIGHT:
            log.warning("%d requests to clients await answers: not sending more", MAX_IN_FLIGHT)
            return None
        xid = next(self._xids)
        while xid in self._waiting:  # ends: fewer than 65535 are in flight
            xid = next(self._xids)
        outgoing = dataclasses.replace(message, xid=xid)
        answer: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        address = unwrap_ipv4(address)  # open-isns means IPv4 by ::a.b.c.d; so do we
        self._waiting[xid] = (address, answer)
        try:
            async with asyncio.timeout(timeout):
                if port.udp:
                    await self._send_udp(outgoing, address, port.port)
                else:
                    await self._exchange_tcp(outgoing, address, port.port, answer)
                return await answer
        except (TimeoutError, OSError) as exc:
            reason = str(exc) or "timed out"
            where = address_text(address, port)
            log.debug("no answer from %s to transaction %d: %s", where, xid, reason)
            return None
        finally:
            del self._waiting[xid]

    async def close(self) -> None:
        for transport in self._udp.values():
            transport.close()
        self._udp.clear()

    def take_response(self, message: Message, sender: IPAddress | None) -> None:
        """A message that came back: the awaited response if it answers one of ours."""
        waiting = self._waiting.get(message.xid)
        if waiting is None or not message.is_response:
            return
        address, answer = waiting
        if sender is not None and sender != address:
            log.debug("ignored a response from %s to a request sent to %s", sender, address)
            return
        if not answer.done():
            answer.set_result(message)

    async def _send_udp(self, message: Message, address: IPAddress, port: int) -> None:
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        async with self._opening:  # concurrent first requests share one socket
            transport = self._udp.get(family)
            if transport is None or transport.is_closing():
                loop = asyncio.get_running_loop()
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _ResponseProtocol(self), family=family
                )
                self._udp[family] = transport
        for pdu in encode_message(message, max_pdu_payload=UDP_MAX_PDU_PAYLOAD):
            transport.sendto(pdu, (str(address), port))

    async def _exchange_tcp(
        self, message: Message, address: IPAddress, port: int, answer: "asyncio.Future[Message]"
    ) -> None:
        reader, writer = await asyncio.open_connection(str(address), port)
        try:
            writer.writelines(encode_message(message))
            await writer.drain()
            decoder = StreamDecoder()
            while not answer.done():
                data = await reader.read(65536)
                if not data:
                    raise ConnectionResetError("closed before answering")
                decoder.receive_data(data)
                while (received := _next(decoder)) is not None:
                    self.take_response(received, None)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def _next(decoder: StreamDecoder) -> Message | None:
    try:
        return decoder.next_message()
    except MessageFormatError as error:
        raise ConnectionAbortedError(f"unreadable answer: {error}") from None


class _ResponseProtocol(asyncio.DatagramProtocol):
    """Responses arriving at one of the UDP request sockets."""

    def __init__(self, outbound: Outbound) -> None:
        self.outbound = outbound
        self.decoder = DatagramDecoder(max_partial_messages=64)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            message = self.decoder.receive_datagram(data, addr)
        except MessageFormatError as error:
            log.debug("unreadable datagram from %s: %s", addr, error)
            return
        if message is not None:
            host = cast(str, addr[0]).split("%")[0]
            self.outbound.take_response(message, ip_address(host))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable for an earlier datagram: the request times out as if lost.
        log.debug("UDP request socket: %s", exc)

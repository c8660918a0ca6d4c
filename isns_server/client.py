"""A small asyncio iSNS client: pipelined requests over one TCP connection.

Used by the discovery agent, the tests and the benchmarks. Transaction IDs are assigned
here; answers are matched to requests by transaction ID, so many requests may be in
flight on one connection. The server may also send requests of its own on the
connection (an SCN or ESI, RFC 4171 5.6.5.8, 5.6.5.13): those go to `on_request`, whose
answer is sent back.
"""

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from types import TracebackType

from .isnsp.codec import StreamDecoder, encode_message
from .isnsp.constants import Flags, FunctionId
from .isnsp.errors import MessageFormatError
from .isnsp.messages import Attribute, Message, request


class IsnsClientError(Exception):
    """The server could not be reached or answered something unusable."""


ServerRequestHandler = Callable[[Message], Message | None]


class IsnsClient:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_request: ServerRequestHandler | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._on_request = on_request
        self._xids = itertools.cycle(range(1, 0x10000))
        self._waiting: dict[int, asyncio.Future[Message]] = {}
        self._receiver = asyncio.create_task(self._receive())

    @classmethod
    async def connect(
        cls, host: str, port: int, on_request: ServerRequestHandler | None = None
    ) -> "IsnsClient":
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            raise IsnsClientError(f"cannot reach iSNS server {host}:{port}: {exc}") from None
        return cls(reader, writer, on_request)

    @property
    def local_address(self) -> str:
        """This end's IP address: one the server can reach us at."""
        return str(self._writer.get_extra_info("sockname")[0])

    async def call(
        self,
        function: FunctionId,
        source: Attribute | None,
        keys: tuple[Attribute, ...] = (),
        operating: tuple[Attribute, ...] = (),
        replace: bool = False,
    ) -> Message:
        """Send one request and wait for its response."""
        if self._receiver.done():
            raise IsnsClientError("the connection to the iSNS server is closed")
        xid = next(self._xids)
        while xid in self._waiting:
            xid = next(self._xids)
        flags = Flags.REPLACE if replace else Flags.NONE
        message = request(function, xid, source, keys, operating, flags)
        answer: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting[xid] = answer
        self._writer.writelines(encode_message(message))
        try:
            return await answer
        finally:
            self._waiting.pop(xid, None)

    async def _receive(self) -> None:
        decoder = StreamDecoder()
        error: Exception = IsnsClientError("the iSNS server closed the connection")
        try:
            while data := await self._reader.read(65536):
                decoder.receive_data(data)
                while (message := decoder.next_message()) is not None:
                    if not message.is_response:
                        self._answer(message)
                        continue
                    waiter = self._waiting.get(message.xid)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(message)
        except (OSError, MessageFormatError) as exc:
            error = IsnsClientError(f"iSNS connection failed: {exc}")
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_exception(error)

    async def wait_disconnected(self) -> None:
        """Return once the connection has ended, closed by either side."""
        await asyncio.wait({self._receiver})

    def _answer(self, message: Message) -> None:
        reply = self._on_request(message) if self._on_request is not None else None
        if reply is not None:
            self._writer.writelines(encode_message(reply))

    async def close(self) -> None:
        self._receiver.cancel()
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    async def __aenter__(self) -> "IsnsClient":
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

"""Scatter/gather writes: what the socket did not take goes to the transport, in order."""

import asyncio

import pytest

from isns_server.portal.runtime.scatter import ScatterWriter, unsent


def test_unsent_drops_whole_and_partial_pieces() -> None:
    pieces: list[bytes | memoryview] = [b"abc", memoryview(b"defg"), b"hi"]
    assert unsent(pieces, 0) == pieces
    assert [bytes(p) for p in unsent(pieces, 2)] == [b"c", b"defg", b"hi"]
    assert [bytes(p) for p in unsent(pieces, 3)] == [b"defg", b"hi"]
    assert [bytes(p) for p in unsent(pieces, 8)] == [b"i"]
    assert unsent(pieces, 9) == []


@pytest.mark.asyncio
async def test_a_large_batch_arrives_whole_and_in_order() -> None:
    received = bytearray()
    done = asyncio.Event()
    total = 64 * (48 + 65536) + 1

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while len(received) < total:
            chunk = await reader.read(1 << 20)
            if not chunk:
                break
            received.extend(chunk)
        done.set()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    writer = ScatterWriter(transport)
    pieces: list[bytes | memoryview] = []
    for n in range(64):  # more than a socket buffer takes at once
        pieces += [bytes([n]) * 48, memoryview(bytes([n]) * 65536)]
    writer.write(pieces)
    writer.write([b"!"])  # queued behind whatever the transport holds
    await asyncio.wait_for(done.wait(), 10)
    assert bytes(received) == b"".join(bytes(p) for p in pieces) + b"!"
    writer.close()
    transport.close()
    server.close()
    await server.wait_closed()

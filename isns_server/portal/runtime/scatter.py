"""Scatter/gather writes for the portal: PDU pieces go to the socket with one sendmsg.

A Data-In PDU is a header and a data segment that the disk read landed in. Before
Python 3.12, asyncio's `writelines` joins its pieces into one new bytes object: a copy
of every byte read. `ScatterWriter` hands the pieces to `sendmsg` instead when the
transport has nothing queued (so the order on the wire stays the transport's), and
gives only what the socket did not take to the transport.
"""

import asyncio
import os
import socket
import sys
from collections.abc import Sequence

Piece = bytes | memoryview

_IOV_MAX = os.sysconf("SC_IOV_MAX")
SCATTER_NEEDED = sys.version_info < (3, 12)  # from 3.12 on, writelines uses sendmsg itself


class ScatterWriter:
    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._socket: socket.socket | None = None
        raw = transport.get_extra_info("socket")
        if SCATTER_NEEDED and raw is not None:
            # The transport's own descriptor, not a duplicate: a duplicate would keep the
            # connection open after the transport closes it. Detached in `close`.
            self._socket = socket.socket(fileno=raw.fileno())

    def write(self, pieces: Sequence[Piece]) -> None:
        transport = self._transport
        if self._socket is not None and not transport.get_write_buffer_size():
            try:
                sent = self._socket.sendmsg(pieces[:_IOV_MAX])
            except OSError:  # a full socket, or an error the transport then meets and handles
                sent = 0
            pieces = unsent(pieces, sent)
        if pieces:
            transport.writelines(pieces)

    def close(self) -> None:
        """The transport is closing: let go of its descriptor without closing it."""
        if self._socket is not None:
            self._socket.detach()
            self._socket = None


def unsent(pieces: Sequence[Piece], sent: int) -> Sequence[Piece]:
    """What is left of `pieces` once the first `sent` bytes are gone."""
    for index, piece in enumerate(pieces):
        if sent < len(piece):
            rest = memoryview(piece)[sent:] if sent else piece
            return [rest, *pieces[index + 1 :]]
        sent -= len(piece)
    return []

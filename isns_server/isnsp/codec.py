"""Sans-IO iSNSP codec: `Message` <-> PDUs (RFC 4171 5.1-5.3).

Sending: `encode_message()` gives the PDUs to write, in order.
Receiving over TCP: feed `StreamDecoder.receive_data()`, then call `next_message()`
until it returns None. Over UDP: `DatagramDecoder.receive_datagram()` per datagram.
Bad input raises `MessageFormatError` (see its `fatal` and `function`/`xid` fields).

Decoded messages keep the Client/Server/Replace/Auth flags of their first PDU (First/Last
PDU are framing and are dropped). Authentication blocks (5.5) are framed and skipped; the
Auth flag tells the caller one was present. Signatures are not verified, and
`encode_message` never writes auth blocks.
"""

from collections.abc import Hashable
from dataclasses import dataclass, field
from struct import Struct

from .attributes import decode_tlvs, encode_tlvs
from .constants import HEADER_LENGTH, RESPONSE_BIT, Flags, FunctionId, Status
from .errors import MessageFormatError
from .messages import Message
from .pdu import MAX_PDU_PAYLOAD, PduHeader, build_pdu, parse_header, pdu_end

DEFAULT_MAX_MESSAGE_SIZE = 1 << 20

_STATUS = Struct(">I")
_FIRST = int(Flags.FIRST_PDU)
_LAST = int(Flags.LAST_PDU)
_FIRST_AND_LAST = _FIRST | _LAST
_MESSAGE_FLAGS = 0xFFFF & ~_FIRST_AND_LAST  # the flags that belong to the message, not the PDU
_NOT_SENT_FLAGS = _FIRST_AND_LAST | int(Flags.AUTH)  # we never write an auth block
_MAX_PDUS = 0x10000  # 16-bit sequence ID (5.1.6)

_FUNCTIONS: dict[int, int] = {f.value: f for f in FunctionId}
_STATUSES: dict[int, int] = {s.value: s for s in Status}
_flags_cache: dict[int, Flags] = {}


def _message_flags(pdu_flags: int) -> Flags:
    value = pdu_flags & _MESSAGE_FLAGS
    try:
        return _flags_cache[value]
    except KeyError:  # at most 2**14 distinct values
        return _flags_cache.setdefault(value, Flags(value))


def encode_message(message: Message, max_pdu_payload: int = MAX_PDU_PAYLOAD) -> list[bytes]:
    """The PDUs carrying `message`, to be sent in order.

    Responses start with their 4-byte status; Heartbeat carries `message.payload` as is;
    everything else carries TLVs. Payloads longer than `max_pdu_payload` are split
    between TLVs; only a TLV longer than `max_pdu_payload` straddles PDUs (RFC 4171 5.3
    allows any cut, but Wireshark and others want whole TLVs in each PDU). Raises
    TypeError/ValueError for a message that cannot be encoded (a bug in the caller, not
    a peer's fault).
    """
    if not (0 < max_pdu_payload <= MAX_PDU_PAYLOAD and max_pdu_payload % 4 == 0):
        raise ValueError(f"max_pdu_payload {max_pdu_payload} must be a multiple of 4 in 4..65532")
    units: list[bytes]  # the pieces a PDU may end after
    if message.function == FunctionId.HEARTBEAT:
        if message.payload is None or message.attributes:
            raise ValueError("a Heartbeat carries its payload bytes, not attributes")
        if len(message.payload) % 4:
            raise ValueError("a Heartbeat payload must be a multiple of 4 bytes")
        units = [message.payload]
    else:
        units = encode_tlvs(message.attributes)
    if message.is_response:
        if message.status is None:
            raise ValueError(f"response 0x{message.function:04x} needs a status")
        units.insert(0, _STATUS.pack(message.status))
    function, xid = message.function, message.xid
    if not (0 <= function <= 0xFFFF and 0 <= xid <= 0xFFFF):
        raise ValueError(f"function ID {function} and transaction ID {xid} must fit 16 bits")
    flags = int(message.flags) & ~_NOT_SENT_FLAGS  # int: IntFlag operators are slow
    body = b"".join(units)
    if len(body) <= max_pdu_payload:
        return [build_pdu(function, flags | _FIRST_AND_LAST, xid, 0, body)]
    pieces = _pdu_payloads(body, units, max_pdu_payload)
    count = len(pieces)
    if count > _MAX_PDUS:
        raise ValueError(f"message needs {count} PDUs, more than the 65536 sequence IDs")
    pdus = []
    for sequence, piece in enumerate(pieces):
        pdu_flags = flags
        if sequence == 0:
            pdu_flags |= _FIRST
        if sequence == count - 1:
            pdu_flags |= _LAST
        pdus.append(build_pdu(function, pdu_flags, xid, sequence, piece))
    return pdus


def _pdu_payloads(body: bytes, units: list[bytes], limit: int) -> list[bytes]:
    """`body` (the concatenated `units`) in pieces of at most `limit` bytes, each ending
    where a unit ends unless a unit longer than `limit` has to be cut."""
    pieces = []
    start = end = 0  # the piece being filled is body[start:end]
    for unit in units:
        unit_end = end + len(unit)
        if unit_end - start > limit and end > start:
            pieces.append(body[start:end])  # the unit does not fit: it opens the next PDU
            start = end
        while unit_end - start > limit:  # longer than a PDU: whole PDUs of it
            pieces.append(body[start : start + limit])
            start += limit
        end = unit_end
    if end > start:
        pieces.append(body[start:end])
    return pieces


def _decode_payload(function: int, xid: int, flags: int, payload: bytes) -> Message:
    """The message a reassembled payload carries."""
    fn = _FUNCTIONS.get(function, function)
    if function == FunctionId.HEARTBEAT:
        return Message(fn, xid, _message_flags(flags), (), None, payload)
    status: int | None = None
    start = 0
    if function & RESPONSE_BIT:
        if len(payload) < 4:
            raise _error(
                f"response payload is {len(payload)} bytes, too short for its status", function, xid
            )
        status = _STATUS.unpack_from(payload)[0]
        start = 4
    try:
        attrs = decode_tlvs(payload, start, len(payload))
    except MessageFormatError as exc:
        raise exc.in_message(function, xid) from None
    if status is not None:
        status = _STATUSES.get(status, status)
    return Message(fn, xid, _message_flags(flags), attrs, status)


@dataclass(slots=True)
class _Partial:
    """PDU payloads of a message still being reassembled, by sequence ID."""

    flags: int  # message flags of the first PDU seen; all PDUs must agree
    chunks: dict[int, bytes] = field(default_factory=dict)
    size: int = 0
    last: int | None = None  # sequence ID of the Last PDU, once seen
    started: float = 0.0  # when its first PDU arrived (StreamDecoder's reassembly timeout)

    def payload(self) -> bytes:
        chunks = self.chunks
        return b"".join([chunks[i] for i in range(len(chunks))])


class ReassemblyBudget:
    """Bytes of unfinished multi-PDU messages that all the decoders sharing it may hold."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> bool:
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def give(self, size: int) -> None:
        self.used -= size


class StreamDecoder:
    """Decodes iSNSP messages from one TCP connection's byte stream.

    PDUs of different messages may interleave; those of one message (same function ID
    and transaction ID) must arrive in sequence, as TCP cannot reorder them. At most
    `max_partial_messages` messages may be in reassembly at once, each at most
    `max_message_size` payload bytes, all of them within `budget` (shared with other
    connections; over it: Busy) and each finished within `reassembly_timeout` seconds of
    its first PDU (see `expire`). Once a message in reassembly is refused, the rest of
    its PDUs are skipped without another error.
    After a fatal error every later `next_message()` raises it again; `close()` gives
    back what the unfinished messages took from `budget`.
    """

    def __init__(
        self,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_partial_messages: int = 16,
        budget: ReassemblyBudget | None = None,
        reassembly_timeout: float | None = None,
    ) -> None:
        self.max_message_size = max_message_size
        self.max_partial_messages = max_partial_messages
        self.budget = budget
        self.reassembly_timeout = reassembly_timeout
        self._buffer = bytearray()
        self._partials: dict[tuple[int, int], _Partial] = {}
        self._skipping: dict[tuple[int, int], None] = {}  # refused messages, oldest first
        self._fatal: MessageFormatError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet consumed as whole PDUs."""
        return len(self._buffer)

    def receive_data(self, data: bytes) -> None:
        if self._fatal is None:  # after a fatal error nothing more will be decoded
            self._buffer += data

    @property
    def reassembly_deadline(self) -> float | None:
        """When the oldest unfinished message times out; None: nothing to time out."""
        if self.reassembly_timeout is None or not self._partials:
            return None
        return min(p.started for p in self._partials.values()) + self.reassembly_timeout

    def expire(self, now: float) -> list[MessageFormatError]:
        """Give up the messages not finished within the reassembly timeout: one error each,
        to be answered like any other."""
        timeout = self.reassembly_timeout
        if timeout is None:
            return []
        late = [key for key, p in self._partials.items() if now - p.started >= timeout]
        for key in late:
            self._abandon(key)
        detail = f"message not finished within {timeout:g} s of its first PDU"
        return [_error(detail, function, xid) for function, xid in late]

    def close(self) -> None:
        """The connection is gone: drop the unfinished messages."""
        for key in list(self._partials):
            self._abandon(key)
        self._skipping.clear()

    def next_message(self, now: float = 0.0) -> Message | None:
        """The next complete message, or None until more data arrives. `now` dates the
        first PDU of a message, for the reassembly timeout."""
        if self._fatal is not None:
            raise self._fatal
        buffer = self._buffer
        while len(buffer) >= HEADER_LENGTH:
            try:
                header = parse_header(buffer)
                end = pdu_end(buffer, 0, header)
            except MessageFormatError as exc:
                self._fatal = exc
                raise
            if end is None:
                return None
            payload = bytes(buffer[HEADER_LENGTH : HEADER_LENGTH + header.length])
            del buffer[:end]  # O(1): bytearray drops a prefix by moving its start
            message = self._reassemble(header, payload, now)
            if message is not None:
                return message
        return None

    def _reassemble(self, header: PduHeader, payload: bytes, now: float) -> Message | None:
        _version, function, _length, flags, xid, sequence = header
        key = (function, xid)
        partials = self._partials
        if flags & _FIRST:
            self._skipping.pop(key, None)
            if key in partials:
                self._abandon(key)
                raise _error("a new message began before the previous one ended", function, xid)
            if sequence != 0:
                raise _error(f"first PDU has sequence ID {sequence}, not 0", function, xid)
            if len(payload) > self.max_message_size:
                raise _too_big(function, xid, len(payload), self.max_message_size)
            if flags & _LAST:
                return _decode_payload(function, xid, flags, payload)
            if len(partials) >= self.max_partial_messages:
                self._skip(key)
                raise _error(
                    f"more than {self.max_partial_messages} messages in reassembly at once",
                    function,
                    xid,
                )
            if not self._take(key, len(payload)):
                raise _over_budget(function, xid, self.budget)
            partials[key] = _Partial(flags & _MESSAGE_FLAGS, {0: payload}, len(payload), None, now)
            return None
        partial = partials.get(key)
        if partial is None:
            if key in self._skipping:
                if flags & _LAST:
                    del self._skipping[key]
                return None
            raise _error(f"PDU with sequence ID {sequence} has no first PDU", function, xid)
        expected = len(partial.chunks)
        problem = _check_continuation(partial, flags, len(payload), self.max_message_size)
        if problem is None and sequence != expected:
            problem = f"PDU with sequence ID {sequence} arrived where {expected} was due"
        if problem is not None:
            self._abandon(key)
            raise _error(problem, function, xid)
        if not flags & _LAST:
            if not self._take(key, len(payload)):
                self._abandon(key)
                raise _over_budget(function, xid, self.budget)
            partial.chunks[sequence] = payload
            partial.size += len(payload)
            return None
        self._abandon(key, skip=False)
        partial.chunks[sequence] = payload
        return _decode_payload(function, xid, partial.flags, partial.payload())

    def _take(self, key: tuple[int, int], size: int) -> bool:
        """Charge `size` more bytes of `key` to the budget; False (and skip the rest of
        that message) when it has no room."""
        if self.budget is None or self.budget.take(size):
            return True
        self._skip(key)
        return False

    def _abandon(self, key: tuple[int, int], skip: bool = True) -> None:
        """Forget the unfinished message `key`, giving its bytes back to the budget; with
        `skip`, its remaining PDUs are skipped."""
        partial = self._partials.pop(key)
        if self.budget is not None:
            self.budget.give(partial.size)
        if skip:
            self._skip(key)

    def _skip(self, key: tuple[int, int]) -> None:
        self._skipping[key] = None
        if len(self._skipping) > self.max_partial_messages:
            del self._skipping[next(iter(self._skipping))]


class DatagramDecoder:
    """Decodes iSNSP messages from UDP datagrams, reassembling per peer.

    A datagram holds one or more whole PDUs of one message. PDUs of a message may come in
    several datagrams, in any order; duplicates are ignored and a new first-and-last PDU
    replaces a partial message (a retransmission). Partial messages beyond
    `max_partial_messages`, or beyond `max_buffered_size` bytes in all, are dropped oldest
    first, so a peer that never finishes its messages cannot exhaust memory.
    """

    def __init__(
        self,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_partial_messages: int = 256,
        max_buffered_size: int = 16 * DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self.max_message_size = max_message_size
        self.max_partial_messages = max_partial_messages
        self.max_buffered_size = max(max_buffered_size, max_message_size)
        self._partials: dict[tuple[Hashable, int, int], _Partial] = {}
        self._buffered = 0

    @property
    def partial_messages(self) -> int:
        return len(self._partials)

    def receive_datagram(self, data: bytes, peer: Hashable) -> Message | None:
        """The message this datagram completes, if any."""
        pdus: list[tuple[PduHeader, bytes]] = []
        offset = 0
        while offset < len(data):
            if len(data) - offset < HEADER_LENGTH:
                raise _datagram_error(f"{len(data) - offset} stray bytes after the last PDU", pdus)
            header = parse_header(data, offset)
            end = pdu_end(data, offset, header)
            if end is None:
                raise _datagram_error(f"datagram of {len(data)} bytes ends inside a PDU", pdus)
            if pdus and (header.function, header.xid) != (pdus[0][0].function, pdus[0][0].xid):
                raise _datagram_error("datagram mixes PDUs of different messages", pdus)
            start = offset + HEADER_LENGTH
            pdus.append((header, data[start : start + header.length]))
            offset = end
        if not pdus:
            raise MessageFormatError("empty datagram", fatal=True)
        message = None
        for i, (header, payload) in enumerate(pdus):
            message = self._reassemble(peer, header, payload)
            if message is not None and i != len(pdus) - 1:
                raise _datagram_error("datagram has PDUs after its message's last PDU", pdus)
        return message

    def _reassemble(self, peer: Hashable, header: PduHeader, payload: bytes) -> Message | None:
        _version, function, _length, flags, xid, sequence = header
        if bool(flags & _FIRST) != (sequence == 0):
            raise _error(
                f"PDU with sequence ID {sequence} has the First PDU flag "
                f"{'set' if flags & _FIRST else 'clear'}",
                function,
                xid,
            )
        key = (peer, function, xid)
        partial = self._partials.get(key)
        if flags & _FIRST_AND_LAST == _FIRST_AND_LAST:
            if partial is not None:
                self._drop(key)
            if len(payload) > self.max_message_size:
                raise _too_big(function, xid, len(payload), self.max_message_size)
            return _decode_payload(function, xid, flags, payload)
        if partial is None:
            partial = self._partials[key] = _Partial(flags & _MESSAGE_FLAGS)
        elif sequence in partial.chunks:
            return None  # a duplicate datagram
        problem = _check_continuation(partial, flags, len(payload), self.max_message_size)
        if problem is None:
            problem = _check_last(partial, flags, sequence)
        if problem is not None:
            self._drop(key)
            raise _error(problem, function, xid)
        if flags & _LAST:
            partial.last = sequence
        partial.chunks[sequence] = payload
        partial.size += len(payload)
        self._buffered += len(payload)
        if partial.last is not None and len(partial.chunks) == partial.last + 1:
            self._drop(key)
            return _decode_payload(function, xid, partial.flags, partial.payload())
        if self._over_bounds():
            self._evict(keep=key)
        return None

    def _over_bounds(self) -> bool:
        return (
            len(self._partials) > self.max_partial_messages
            or self._buffered > self.max_buffered_size
        )

    def _drop(self, key: tuple[Hashable, int, int]) -> None:
        self._buffered -= self._partials.pop(key).size

    def _evict(self, keep: tuple[Hashable, int, int]) -> None:
        """Drop the oldest partial messages but `keep` until within bounds."""
        for key in list(self._partials):  # in insertion order: oldest first
            if not self._over_bounds():
                return
            if key != keep:  # alone, `keep` is within max_message_size <= max_buffered_size
                self._drop(key)


def _check_continuation(partial: _Partial, flags: int, size: int, limit: int) -> str | None:
    if flags & _MESSAGE_FLAGS != partial.flags:
        return (
            f"PDU flags 0x{flags & _MESSAGE_FLAGS:04x} differ from the message's "
            f"first PDU (0x{partial.flags:04x})"
        )
    if partial.size + size > limit:
        return f"message is larger than the {limit} bytes allowed"
    return None


def _check_last(partial: _Partial, flags: int, sequence: int) -> str | None:
    if flags & _LAST:
        if partial.last is not None:
            return f"two Last PDUs (sequence IDs {partial.last} and {sequence})"
        if partial.chunks and max(partial.chunks) > sequence:
            return f"Last PDU has sequence ID {sequence}, below one already received"
    elif partial.last is not None and sequence > partial.last:
        return f"PDU with sequence ID {sequence} follows the Last PDU ({partial.last})"
    return None


def _error(detail: str, function: int, xid: int) -> MessageFormatError:
    return MessageFormatError(detail, function=function, xid=xid)


def _over_budget(function: int, xid: int, budget: ReassemblyBudget | None) -> MessageFormatError:
    limit = budget.limit if budget is not None else 0
    return MessageFormatError(
        f"unfinished messages of all connections would exceed the {limit} bytes allowed",
        status=Status.BUSY,
        function=function,
        xid=xid,
    )


def _too_big(function: int, xid: int, size: int, limit: int) -> MessageFormatError:
    return _error(f"PDU payload of {size} bytes exceeds the {limit} allowed", function, xid)


def _datagram_error(detail: str, pdus: list[tuple[PduHeader, bytes]]) -> MessageFormatError:
    if not pdus:
        return MessageFormatError(detail, fatal=True)
    header = pdus[0][0]
    return MessageFormatError(detail, function=header.function, xid=header.xid, fatal=True)

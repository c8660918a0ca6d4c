"""Text Request sequences of one connection, target side (RFC 3720 5.2, 10.10, 10.11).

Sans-IO. Joins a request continued over several PDUs (C bit), cuts a long answer into
Text Responses no longer than the initiator's MaxRecvDataSegmentLength, and keeps the
Target Transfer Tag that ties the PDUs of one sequence together.
"""

from collections.abc import Callable
from dataclasses import dataclass

from ..iscsi.constants import RESERVED_TAG, RejectReason
from ..iscsi.errors import TextFormatError
from ..iscsi.pdu import TextRequest
from ..iscsi.text import KeyValuePairs, TextAccumulator, encode_text, split_text

Pair = tuple[str, str]
Answer = Callable[[KeyValuePairs], list[Pair]]


class TextRejected(Exception):
    """Answer the Text Request with a Reject carrying `reason` (which also resets the
    sequence, 5.2)."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TextReply:
    """The Text Response to send, before the session adds its sequence numbers."""

    data: bytes
    final: bool
    continue_: bool
    ttt: int


class TextExchange:
    """At most one Text Request sequence is in progress on a connection (10.10)."""

    def __init__(self, new_tag: Callable[[], int]) -> None:
        self._new_tag = new_tag  # a Target Transfer Tag, never RESERVED_TAG
        self._itt: int | None = None
        self._ttt = RESERVED_TAG
        self._text = TextAccumulator()
        self._chunks: list[bytes] = []  # what is left of our answer
        self._keys: set[str] = set()  # 5.2: no key twice in one sequence

    def receive(self, request: TextRequest, answer: Answer, max_length: int) -> TextReply:
        """The response to `request`; `answer` gives the pairs for a complete text, and
        `max_length` bounds each response's data. Raises TextRejected or TextFormatError,
        after which the sequence is over (a Reject resets a negotiation, 5.2)."""
        try:
            return self._receive(request, answer, max_length)
        except (TextRejected, TextFormatError):
            self._reset()
            raise

    def _receive(self, request: TextRequest, answer: Answer, max_length: int) -> TextReply:
        if request.continue_ and request.final:
            raise TextRejected(RejectReason.PROTOCOL_ERROR, "Text Request with C and F bits set")
        if request.ttt == RESERVED_TAG:  # a new sequence: forget any other (10.10.4)
            self._reset()
            self._itt = request.itt
        elif request.ttt != self._ttt or request.itt != self._itt:
            raise TextRejected(
                RejectReason.INVALID_PDU_FIELD,
                f"Target Transfer Tag 0x{request.ttt:08x} continues no text sequence",
            )
        elif self._chunks:
            if request.data or request.continue_:  # 10.10.4: an empty request asks for more
                raise TextRejected(
                    RejectReason.PROTOCOL_ERROR, "text sent while the response was incomplete"
                )
            return self._next_chunk(request.final)
        pairs = self._text.feed(request.data, request.continue_)
        if pairs is None:  # 5.2: a continued request is acknowledged with no text
            return self._reply(b"", final=False, continue_=False)
        offered = {key for key, _ in pairs}
        repeated = set(pairs.repeated) | (self._keys & offered)
        if repeated:
            raise TextRejected(
                RejectReason.PROTOCOL_ERROR,
                f"{', '.join(sorted(repeated))} sent twice in one text sequence",
            )
        self._keys |= offered
        self._chunks = split_text(encode_text(answer(pairs)), max_length)
        return self._next_chunk(request.final)

    def _next_chunk(self, request_final: bool) -> TextReply:
        data = self._chunks.pop(0)
        if self._chunks or not request_final:  # 10.11.1: F=1 only if the initiator's F=1
            # 10.11.2: C=1 while the answer is not complete, also when this PDU ends on
            # a pair boundary (libiscsi refuses F=0, C=0 in the middle of an answer).
            return self._reply(data, final=False, continue_=bool(self._chunks))
        self._reset()
        return TextReply(data, final=True, continue_=False, ttt=RESERVED_TAG)

    def _reply(self, data: bytes, *, final: bool, continue_: bool) -> TextReply:
        if self._ttt == RESERVED_TAG:
            self._ttt = self._new_tag()
        return TextReply(data, final, continue_, self._ttt)

    def _reset(self) -> None:
        self._itt = None
        self._ttt = RESERVED_TAG
        self._text.reset()
        self._chunks = []
        self._keys = set()

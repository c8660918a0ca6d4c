"""The one exception the iSNSP codec raises for bad input from a peer."""

from .constants import Status


class MessageFormatError(Exception):
    """A peer sent bytes that are not a valid iSNSP message.

    `status` is the RFC 4171 5.4 code to answer with (usually MESSAGE_FORMAT_ERROR,
    VERSION_NOT_SUPPORTED for a PDU of another iSNSP version).

    `function` and `xid` are the offending message's header fields when they could be
    read; when both are set, a response carrying `status` can be framed and sent.

    `fatal` is True when the byte stream can no longer be split into PDUs (for example a
    PDU length that is not a multiple of 4): a TCP connection must then be closed, after
    the optional reply; for UDP the datagram is dropped. When `fatal` is False only the
    offending message was discarded and decoding can go on.
    """

    def __init__(
        self,
        detail: str,
        *,
        status: Status = Status.MESSAGE_FORMAT_ERROR,
        function: int | None = None,
        xid: int | None = None,
        fatal: bool = False,
    ) -> None:
        self.detail = detail
        self.status = status
        self.function = function
        self.xid = xid
        self.fatal = fatal
        super().__init__(detail)

    def __str__(self) -> str:
        if self.function is None:
            return self.detail
        context = f"function 0x{self.function:04x}"
        if self.xid is not None:
            context += f", transaction {self.xid}"
        return f"{self.detail} ({context})"

    def in_message(self, function: int, xid: int) -> "MessageFormatError":
        """The same error, attributed to the message with this function ID and transaction."""
        return MessageFormatError(
            self.detail, status=self.status, function=function, xid=xid, fatal=self.fatal
        )

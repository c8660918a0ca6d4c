"""Typed SLP errors carrying the RFC 2608 error code to answer with."""

from .constants import REPLY_FUNCTION, ErrorCode, Flags, FunctionId


class SlpParseError(Exception):
    """Bad input. `code` is the RFC 2608 7 error code the sender should be told.

    When the header was readable the exception also carries what an error reply needs
    (function, xid, language, flags); `replyable` says whether the RFC wants one sent.
    """

    def __init__(
        self,
        code: ErrorCode,
        detail: str,
        *,
        function: FunctionId | None = None,
        xid: int | None = None,
        language: str | None = None,
        flags: Flags = Flags.NONE,
    ) -> None:
        super().__init__(f"{code.name}: {detail}")
        self.code = code
        self.detail = detail
        self.function = function
        self.xid = xid
        self.language = language
        self.flags = flags

    @property
    def replyable(self) -> bool:
        """True when an error reply should go back: a readable unicast request.

        RFC 2608 7: errors are only returned for unicast requests; replies and
        multicast requests that fail are dropped silently.
        """
        return (
            self.function in REPLY_FUNCTION
            and self.xid is not None
            and not self.flags & Flags.REQUEST_MCAST
        )

    def in_message(
        self, function: FunctionId, xid: int, language: str | None, flags: Flags
    ) -> "SlpParseError":
        """The same error, placed in the message whose header has been read."""
        return SlpParseError(
            self.code, self.detail, function=function, xid=xid, language=language, flags=flags
        )

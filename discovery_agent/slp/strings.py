"""SLP string syntax: escaping, string lists, comparison folding (RFC 2608 5, 6.4, 9.4).

Each kind of string has its own reserved set; a `StringGrammar` says which characters may
not appear literally and which of those may appear as a `\\HH` escape. Escaping anything
else is illegal (RFC 2608 5: "other characters MUST NOT be escaped") and is a PARSE_ERROR.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .constants import ErrorCode
from .errors import SlpParseError

CTL = frozenset(chr(c) for c in range(0x20)) | {"\x7f"}
# RFC 2608 5: reserved in attribute values (and in string lists generally).
ATTR_RESERVED = frozenset("(),\\!<=>~") | CTL
# RFC 2608 6.4.1: scope names (and SLP SPI strings, 9.2) also reserve `;`, `*` and `+`.
SCOPE_RESERVED = ATTR_RESERVED | frozenset(";*+")
# RFC 2608 5: bad-tag characters (CR, LF, HTAB are CTL already).
BAD_TAG = frozenset("\r\n\t_")
_HEX = frozenset("0123456789abcdefABCDEF")
_WHITESPACE = re.compile(r"[ \r\n\t]+")  # RFC 2608 6.4: SPACE, CR, LF, TAB
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")
_SCHEME = r"[A-Za-z][A-Za-z0-9+\-.]*"
# RFC 2609 2.1 / RFC 2608 4.1: the service type runs up to the `:` before the address.
_SERVICE_URL = re.compile(
    rf"(service:{_SCHEME}(?::{_SCHEME})?|(?!service:){_SCHEME}):/", re.IGNORECASE
)


def parse_error(detail: str) -> SlpParseError:
    return SlpParseError(ErrorCode.PARSE_ERROR, detail)


@dataclass(frozen=True, slots=True)
class StringGrammar:
    """Which characters a kind of SLP string may hold literally or escaped."""

    forbidden: frozenset[str]  # may not appear literally
    escapable: frozenset[str]  # may appear as `\HH`; empty means `\` is simply illegal

    def unescape(self, text: str) -> str:
        """Decode `\\HH` escapes; reject literal reserved characters and illegal escapes."""
        if not self.forbidden.intersection(text):
            return text  # the common case: nothing to decode
        out: list[str] = []
        i = 0
        while i < len(text):
            char = text[i]
            if char == "\\" and self.escapable:
                digits = text[i + 1 : i + 3]
                if len(digits) != 2 or not _HEX.issuperset(digits):
                    raise parse_error(f"bad escape {text[i : i + 3]!r}")
                char = chr(int(digits, 16))
                if char not in self.escapable:
                    raise parse_error(f"escaped non-reserved character {char!r}")
                i += 3
            elif char in self.forbidden:
                raise parse_error(f"reserved character {char!r} not escaped")
            else:
                i += 1
            out.append(char)
        return "".join(out)

    def escape(self, text: str) -> str:
        """Encode for the wire; ValueError for characters this grammar cannot carry at all."""
        out: list[str] = []
        for char in text:
            if char in self.escapable:
                out.append(f"\\{ord(char):02x}")
            elif char in self.forbidden:
                raise ValueError(f"{char!r} cannot appear in {text!r}")
            else:
                out.append(char)
        return "".join(out)

    def parse_list(self, text: str) -> tuple[str, ...]:
        """A <string-list> (RFC 2608 2.1): comma separated, empty text is the empty list."""
        if not text:
            return ()
        items = text.split(",")  # safe: `,` is reserved in every grammar, so never literal
        if "" in items:
            raise parse_error(f"empty element in list {text!r}")
        return tuple(self.unescape(item) for item in items)

    def format_list(self, items: Iterable[str]) -> str:
        escaped = [self.escape(item) for item in items]
        if "" in escaped:
            raise ValueError("a string list cannot hold an empty string")
        return ",".join(escaped)


ATTR_VALUE = StringGrammar(ATTR_RESERVED, ATTR_RESERVED)
SCOPE = StringGrammar(SCOPE_RESERVED, SCOPE_RESERVED)
# RFC 2608 5: attr-tag = 1*safe-tag, no escapes; `*` is a wildcard only in tag lists (9.4).
ATTR_TAG = StringGrammar(ATTR_RESERVED | BAD_TAG | {"*"}, frozenset())
TAG_FILTER = StringGrammar(ATTR_RESERVED | BAD_TAG, frozenset())
# RFC 2254 4 / RFC 2608 5 for search filter values: `(`, `)` and `*` are structure there,
# and `*` joins the characters that may (must, to be literal) be escaped.
FILTER_VALUE = StringGrammar(CTL | frozenset("()*\\"), ATTR_RESERVED | {"*"})


def parse_pr_list(text: str) -> tuple[str, ...]:
    """A <PRList>. RFC 2608 8.1: entries that are not addresses are ignored, not errors,
    so the entries are kept verbatim and only empty ones are dropped."""
    return tuple(item for item in text.split(",") if item)


def format_pr_list(addresses: Iterable[str]) -> str:
    items = list(addresses)
    if any(not item or "," in item for item in items):
        raise ValueError(f"bad previous-responder entry in {items!r}")
    return ",".join(items)


def fold(text: str) -> str:
    """RFC 2608 6.4: case folded, each white space run folded to one SPACE."""
    return _WHITESPACE.sub(" ", text).casefold()


def comparison_key(text: str) -> str:
    """RFC 2608 6.4: what two strings must share to compare equal (outer space ignored)."""
    return fold(text).strip(" ")


def is_language_tag(tag: str) -> bool:
    """RFC 2608 8: 1*8ALPHA *("-" 1*8ALPHA); subtags may hold digits as in RFC 3066."""
    return _LANGUAGE_TAG.fullmatch(tag) is not None


def service_type_of(url: str) -> str | None:
    """The service type of a URL (RFC 2608 4.1): "service:printer:lpr" for
    "service:printer:lpr://host", the scheme for other URLs; None if the URL has no
    address specification or holds white space or control characters."""
    if CTL.intersection(url) or " " in url:
        return None
    match = _SERVICE_URL.match(url)
    return match.group(1) if match else None

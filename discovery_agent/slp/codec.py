"""SLPv2 wire codec: `parse_message(bytes) -> Message`, `build_message(Message) -> bytes`.

Message bodies are tables of field codecs (`_LAYOUTS`), so the eleven messages share one
reader and one writer. Parsing is strict and total: any input either yields a message or
raises `SlpParseError`, and every length is checked against the message before use.
Building trusts text fields (URLs, attr-lists, predicates, language) so tests can put bad
input on the wire; it raises ValueError only for what the layout cannot carry.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from .attributes import parse_attr_list
from .constants import (
    CONFIG_MTU,
    HEADER_LENGTH,
    MAX_MESSAGE_LENGTH,
    NAMING_AUTHORITY_ALL,
    REPLY_FUNCTION,
    SLP_VERSION,
    ErrorCode,
    Flags,
    FunctionId,
)
from .errors import SlpParseError
from .messages import (
    MESSAGE_TYPES,
    AttrRply,
    AttrRqst,
    AuthBlock,
    DAAdvert,
    Extension,
    Message,
    SAAdvert,
    SrvAck,
    SrvDeReg,
    SrvReg,
    SrvRply,
    SrvRqst,
    SrvTypeRply,
    SrvTypeRqst,
    UrlEntry,
)
from .predicate import parse_predicate
from .strings import (
    ATTR_VALUE,
    SCOPE,
    TAG_FILTER,
    StringGrammar,
    format_pr_list,
    is_language_tag,
    parse_error,
    parse_pr_list,
    service_type_of,
)

_ALL_FLAGS = Flags.OVERFLOW | Flags.FRESH | Flags.REQUEST_MCAST
_AUTH_BLOCK_FIXED = 10  # BSD, length, timestamp, SPI length (RFC 2608 9.2)
_EXTENSION_FIXED = 5  # extension ID, next offset (RFC 2608 9.1)
DEFAULT_LANGUAGE = "en"  # for error replies to requests whose own tag is unusable


class _Reader:
    """Bounds-checked big-endian reads over data[pos:end]."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data = data
        self.pos = pos
        self.end = end

    def take(self, size: int) -> bytes:
        if size > self.end - self.pos:
            raise parse_error(
                f"{size} bytes wanted at offset {self.pos}, message ends at {self.end}"
            )
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def text(self, size: int) -> str:
        try:
            return self.take(size).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise parse_error(f"string is not UTF-8: {exc.reason}") from None

    def string(self) -> str:
        """A 16-bit length then that many bytes of UTF-8 (RFC 2608 2.1)."""
        return self.text(self.uint(2))


def _uint(value: int, size: int, name: str) -> bytes:
    if not 0 <= value < 1 << (8 * size):
        raise ValueError(f"{name} {value} does not fit in {size} bytes")
    return value.to_bytes(size, "big")


def _put_string(out: bytearray, value: str) -> None:
    raw = value.encode("utf-8")
    out += _uint(len(raw), 2, "string length")
    out += raw


class _Field(NamedTuple):
    read: Callable[[_Reader], Any]
    write: Callable[[bytearray, Any], None]


def _string_list(grammar: StringGrammar) -> _Field:
    return _Field(
        lambda r: grammar.parse_list(r.string()),
        lambda out, items: _put_string(out, grammar.format_list(items)),
    )


def _read_attr_list(reader: _Reader) -> str:
    text = reader.string()
    parse_attr_list(text)  # validate only: the exact text is what gets stored and signed
    return text


def _read_predicate(reader: _Reader) -> str:
    text = reader.string()
    parse_predicate(text)  # validate only, so a bad filter is answered with this XID
    return text


def _read_service_type(reader: _Reader) -> str:
    text = reader.string()
    if not text:
        raise parse_error("service type is required")  # RFC 2608 8.1
    return text


def _read_error_code(reader: _Reader) -> ErrorCode | int:
    code = reader.uint(2)
    try:
        return ErrorCode(code)
    except ValueError:
        return code


def _read_auth_blocks(reader: _Reader) -> tuple[AuthBlock, ...]:
    blocks = []
    for _ in range(reader.uint(1)):
        start = reader.pos
        bsd = reader.uint(2)
        length = reader.uint(2)  # the whole block, from the BSD on
        timestamp = reader.uint(4)
        spi = reader.string()
        if length < reader.pos - start:
            raise parse_error(f"auth block length {length} is shorter than its own fields")
        blocks.append(AuthBlock(bsd, timestamp, spi, reader.take(length - (reader.pos - start))))
    return tuple(blocks)


def _write_auth_blocks(out: bytearray, blocks: tuple[AuthBlock, ...]) -> None:
    out += _uint(len(blocks), 1, "auth block count")
    for block in blocks:
        spi = block.spi.encode("utf-8")
        length = _AUTH_BLOCK_FIXED + len(spi) + len(block.data)
        out += _uint(block.bsd, 2, "BSD") + _uint(length, 2, "auth block length")
        out += _uint(block.timestamp, 4, "timestamp") + _uint(len(spi), 2, "SPI length")
        out += spi + block.data


def _read_url_entry(reader: _Reader) -> UrlEntry:
    reader.uint(1)  # reserved (RFC 2608 4.3)
    lifetime = reader.uint(2)
    url = reader.string()
    return UrlEntry(url, lifetime, _read_auth_blocks(reader))


def _write_url_entry(out: bytearray, entry: UrlEntry) -> None:
    out += b"\x00" + _uint(entry.lifetime, 2, "lifetime")
    _put_string(out, entry.url)
    _write_auth_blocks(out, entry.auth_blocks)


def _write_url_entries(out: bytearray, entries: tuple[UrlEntry, ...]) -> None:
    out += _uint(len(entries), 2, "URL entry count")
    for entry in entries:
        _write_url_entry(out, entry)


def _read_naming_authority(reader: _Reader) -> str | None:
    length = reader.uint(2)
    return None if length == NAMING_AUTHORITY_ALL else reader.text(length)


def _write_naming_authority(out: bytearray, authority: str | None) -> None:
    if authority is None:
        out += _uint(NAMING_AUTHORITY_ALL, 2, "length")
        return
    raw = authority.encode("utf-8")
    if len(raw) >= NAMING_AUTHORITY_ALL:
        raise ValueError("naming authority too long")
    out += _uint(len(raw), 2, "naming authority length") + raw


_STRING = _Field(_Reader.string, _put_string)
_SERVICE_TYPE = _Field(_read_service_type, _put_string)
_PREDICATE = _Field(_read_predicate, _put_string)
_ATTR_LIST = _Field(_read_attr_list, _put_string)
_PR_LIST = _Field(
    lambda r: parse_pr_list(r.string()), lambda out, v: _put_string(out, format_pr_list(v))
)
_SCOPES = _string_list(SCOPE)
_SPI_LIST = _string_list(SCOPE)  # RFC 2608 9.2: SPI strings follow the scope grammar
_SPI = _Field(
    lambda r: SCOPE.unescape(r.string()), lambda out, v: _put_string(out, SCOPE.escape(v))
)
_TAG_LIST = _string_list(TAG_FILTER)
_SERVICE_TYPES = _string_list(ATTR_VALUE)
_ERROR_CODE = _Field(_read_error_code, lambda out, v: out.extend(_uint(v, 2, "error code")))
_TIMESTAMP = _Field(lambda r: r.uint(4), lambda out, v: out.extend(_uint(v, 4, "timestamp")))
_URL_ENTRY = _Field(_read_url_entry, _write_url_entry)
_URL_ENTRIES = _Field(
    lambda r: tuple(_read_url_entry(r) for _ in range(r.uint(2))), _write_url_entries
)
_AUTH_BLOCKS = _Field(_read_auth_blocks, _write_auth_blocks)
_NAMING_AUTHORITY = _Field(_read_naming_authority, _write_naming_authority)

# Body layouts, RFC 2608 8.1-8.6 and 10.1-10.6, field names as in messages.py.
_LAYOUTS: dict[type[Message], tuple[tuple[str, _Field], ...]] = {
    SrvRqst: (
        ("pr_list", _PR_LIST),
        ("service_type", _SERVICE_TYPE),
        ("scopes", _SCOPES),
        ("predicate", _PREDICATE),
        ("spi", _SPI),
    ),
    SrvRply: (("error_code", _ERROR_CODE), ("url_entries", _URL_ENTRIES)),
    SrvReg: (
        ("url_entry", _URL_ENTRY),
        ("service_type", _STRING),
        ("scopes", _SCOPES),
        ("attr_list", _ATTR_LIST),
        ("auth_blocks", _AUTH_BLOCKS),
    ),
    SrvDeReg: (("scopes", _SCOPES), ("url_entry", _URL_ENTRY), ("tag_list", _TAG_LIST)),
    SrvAck: (("error_code", _ERROR_CODE),),
    AttrRqst: (
        ("pr_list", _PR_LIST),
        ("url", _STRING),
        ("scopes", _SCOPES),
        ("tag_list", _TAG_LIST),
        ("spi", _SPI),
    ),
    AttrRply: (
        ("error_code", _ERROR_CODE),
        ("attr_list", _ATTR_LIST),
        ("auth_blocks", _AUTH_BLOCKS),
    ),
    DAAdvert: (
        ("error_code", _ERROR_CODE),
        ("boot_timestamp", _TIMESTAMP),
        ("url", _STRING),
        ("scopes", _SCOPES),
        ("attr_list", _ATTR_LIST),
        ("spi_list", _SPI_LIST),
        ("auth_blocks", _AUTH_BLOCKS),
    ),
    SrvTypeRqst: (
        ("pr_list", _PR_LIST),
        ("naming_authority", _NAMING_AUTHORITY),
        ("scopes", _SCOPES),
    ),
    SrvTypeRply: (("error_code", _ERROR_CODE), ("service_types", _SERVICE_TYPES)),
    SAAdvert: (
        ("url", _STRING),
        ("scopes", _SCOPES),
        ("attr_list", _ATTR_LIST),
        ("auth_blocks", _AUTH_BLOCKS),
    ),
}


@dataclass(frozen=True, slots=True)
class _Header:
    function: FunctionId
    length: int
    flags: int
    next_extension: int
    xid: int
    language: str | None  # None when the tag bytes are not even ASCII
    body_start: int


def message_length(prefix: bytes) -> int | None:
    """Stream framing (RFC 2608 6.2): the total length announced by a message's first
    five bytes, or None until five bytes have arrived."""
    if len(prefix) < 5:
        return None
    if prefix[0] != SLP_VERSION:
        raise SlpParseError(ErrorCode.VER_NOT_SUPPORTED, f"version {prefix[0]}")
    length = int.from_bytes(prefix[2:5], "big")
    if length < HEADER_LENGTH:
        raise parse_error(f"length {length} is shorter than a header")
    return length


def _read_header(data: bytes) -> _Header:
    """The header fields an error reply needs; failures here are not replyable."""
    if not data:
        raise parse_error("empty message")
    if data[0] != SLP_VERSION:
        # Another version's header layout is not ours to interpret, so no reply.
        raise SlpParseError(ErrorCode.VER_NOT_SUPPORTED, f"version {data[0]}")
    if len(data) < HEADER_LENGTH:
        raise parse_error(f"{len(data)} bytes is shorter than a header")
    reader = _Reader(data, 1, HEADER_LENGTH)
    function, length, flags = reader.uint(1), reader.uint(3), reader.uint(2)
    next_extension, xid, language_length = reader.uint(3), reader.uint(2), reader.uint(2)
    body_start = HEADER_LENGTH + language_length
    if body_start > min(len(data), length):
        raise parse_error("language tag runs past the message")
    try:
        known_function = FunctionId(function)
    except ValueError:
        raise SlpParseError(ErrorCode.PARSE_ERROR, f"function {function}", xid=xid) from None
    try:
        language: str | None = data[HEADER_LENGTH:body_start].decode("ascii")
    except UnicodeDecodeError:
        language = None
    return _Header(known_function, length, flags, next_extension, xid, language, body_start)


def _read_extensions(data: bytes, header: _Header) -> tuple[int, tuple[Extension, ...]]:
    """(end of the body, extensions). Offsets must strictly increase, so the chain ends."""
    offset = header.next_extension
    if not offset:
        return header.length, ()
    if offset < header.body_start:
        raise parse_error(f"extension offset {offset} points into the header")
    body_end = offset
    extensions = []
    while offset:
        reader = _Reader(data, offset, header.length)
        extension_id, following = reader.uint(2), reader.uint(3)
        if following and following < reader.pos:
            raise parse_error(f"extension at {offset} links back to {following}")
        # take() refuses a following offset past the message.
        extension = Extension(extension_id, reader.take((following or header.length) - reader.pos))
        if extension.mandatory:  # none are understood here
            raise SlpParseError(
                ErrorCode.OPTION_NOT_UNDERSTOOD, f"mandatory extension {extension_id:#06x}"
            )
        extensions.append(extension)
        offset = following
    return body_end, tuple(extensions)


def _check_registration(registration: SrvReg) -> None:
    """RFC 2608 7 INVALID_REGISTRATION: the SrvReg parsed but cannot be stored."""
    problem = None
    if registration.url_entry.lifetime == 0:
        problem = "zero lifetime"
    elif service_type_of(registration.url_entry.url) is None:
        problem = f"URL {registration.url_entry.url!r} has no service type and address"
    elif not registration.service_type:
        problem = "empty service type"
    if problem:
        raise SlpParseError(ErrorCode.INVALID_REGISTRATION, problem)


def _parse_body(data: bytes, header: _Header) -> Message:
    cls = MESSAGE_TYPES[header.function]
    if header.length != len(data):
        raise parse_error(f"length field says {header.length}, message has {len(data)} bytes")
    if header.flags & ~_ALL_FLAGS:
        raise parse_error(f"reserved flag bits set: {header.flags:#06x}")
    if cls is SrvReg and header.language == "":
        raise SlpParseError(ErrorCode.INVALID_REGISTRATION, "omitted language tag")
    if header.language is None or not is_language_tag(header.language):
        raise SlpParseError(ErrorCode.LANGUAGE_NOT_SUPPORTED, "malformed language tag")
    body_end, extensions = _read_extensions(data, header)
    reader = _Reader(data, header.body_start, body_end)
    fields: dict[str, Any] = {}
    for name, field in _LAYOUTS[cls]:
        fields[name] = field.read(reader)
        if name == "error_code" and fields[name]:
            reader.pos = body_end  # RFC 2608 7: the rest of an error reply may be cut off
            break
    if reader.pos != body_end:
        raise parse_error(f"{body_end - reader.pos} stray bytes after the message body")
    message = cls(
        xid=header.xid,
        language=header.language,
        flags=Flags(header.flags),
        extensions=extensions,
        **fields,
    )
    if isinstance(message, SrvReg):
        _check_registration(message)
    return message


def parse_message(data: bytes) -> Message:
    """One whole SLPv2 message (a datagram, or a frame cut by `message_length`)."""
    header = _read_header(data)
    try:
        return _parse_body(data, header)
    except SlpParseError as exc:
        raise exc.in_message(
            header.function, header.xid, header.language, Flags(header.flags)
        ) from None


def build_message(message: Message) -> bytes:
    body = bytearray()
    # RFC 2608 7 allows an error reply to stop after its code, but OpenSLP and
    # Wireshark read the counts and lengths that follow: every field goes out.
    for name, field in _LAYOUTS[type(message)]:
        field.write(body, getattr(message, name))
    language = message.language.encode("utf-8")
    offset = HEADER_LENGTH + len(language) + len(body)
    first_extension = offset if message.extensions else 0
    chain = bytearray()
    for index, extension in enumerate(message.extensions):
        offset += _EXTENSION_FIXED + len(extension.data)
        following = offset if index + 1 < len(message.extensions) else 0
        chain += _uint(extension.extension_id, 2, "extension ID")
        chain += _uint(following, 3, "extension offset") + extension.data
    if offset > MAX_MESSAGE_LENGTH:
        raise ValueError(f"message of {offset} bytes exceeds the 3-byte length field")
    header = (
        bytes((SLP_VERSION, message.function))
        + _uint(offset, 3, "length")
        + _uint(int(message.flags), 2, "flags")
        + _uint(first_extension, 3, "extension offset")
        + _uint(message.xid, 2, "XID")
        + _uint(len(language), 2, "language tag length")
    )
    return header + language + body + chain


def _error_reply(function: FunctionId, xid: int, language: str, code: ErrorCode) -> Message:
    reply_type = MESSAGE_TYPES[REPLY_FUNCTION[function]]
    fields: dict[str, Any] = {"xid": xid, "language": language, "error_code": code}
    return reply_type(**fields)


def error_reply(request: Message, code: ErrorCode) -> Message:
    """The reply (SrvRply, SrvAck, AttrRply or SrvTypeRply) carrying `code` for `request`."""
    if request.function not in REPLY_FUNCTION:
        raise ValueError(f"{type(request).__name__} is not a request")
    return _error_reply(request.function, request.xid, request.language, code)


def build_error_reply(error: SlpParseError) -> bytes | None:
    """The bytes to answer a rejected message with, or None when the RFC wants silence."""
    if not error.replyable or error.function is None or error.xid is None:
        return None
    # A tag that failed to parse is not echoed: the reply must parse where it goes.
    language = error.language if error.language and is_language_tag(error.language) else ""
    language = language or DEFAULT_LANGUAGE
    return build_message(_error_reply(error.function, error.xid, language, error.code))


def _url_entry_size(entry: UrlEntry) -> int:
    out = bytearray()
    _write_url_entry(out, entry)
    return len(out)


def fit_to_budget(reply: SrvRply, budget: int = CONFIG_MTU) -> SrvRply:
    """`reply` cut to the URL entries that fit whole in `budget` bytes, OVERFLOW set if any
    were dropped (RFC 2608 6.1, 8.2). Keeps the order; with no room for even the empty
    reply it returns no entries, and the caller decides whether to send that."""
    size = len(build_message(replace(reply, url_entries=())))
    kept = 0
    for entry in reply.url_entries:
        size += _url_entry_size(entry)
        if size > budget:
            break
        kept += 1
    if kept == len(reply.url_entries):
        return reply
    return replace(reply, url_entries=reply.url_entries[:kept], flags=reply.flags | Flags.OVERFLOW)

"""Attribute lists (RFC 2608 5) with the value types of RFC 2609 3.2.6.2.

    (tag=val1,val2),(tag2=val),keyword

Values are typed by their form: `[-]digits` within 32 bits is an integer, `true`/`false`
a boolean, `\\FF` followed by escaped bytes an opaque, anything else a string. Parsing is
all-or-nothing: a bad escape or stray reserved character raises PARSE_ERROR; a
multi-valued attribute mixing types, or a multi-valued boolean, raises
INVALID_REGISTRATION (RFC 2608 5: "x=4,true,sue,\\ff\\00\\00 is disallowed").
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .constants import ErrorCode
from .errors import SlpParseError
from .strings import ATTR_TAG, ATTR_VALUE, parse_error

AttrValue = str | int | bool | bytes

INTEGER_MIN = -(2**31)  # RFC 2608 5: integers are "-2147483648" to "2147483647"
INTEGER_MAX = 2**31 - 1
_INTEGER = re.compile(r"-?[0-9]+")  # not int(): it would also take "_", "+" and non-ASCII digits
_OPAQUE_BYTES = re.compile(r"(?:\\[0-9A-Fa-f]{2})+")
_WHITESPACE = " \r\n\t"


@dataclass(frozen=True, slots=True)
class Attribute:
    """One attribute: a keyword when it has no values."""

    tag: str
    values: tuple[AttrValue, ...] = ()

    @property
    def is_keyword(self) -> bool:
        return not self.values


def typed_value(text: str) -> AttrValue:
    """Type an unescaped, non-opaque value by its form (outer white space is ignored)."""
    core = text.strip(_WHITESPACE)
    if _INTEGER.fullmatch(core) and INTEGER_MIN <= int(core) <= INTEGER_MAX:
        return int(core)
    lowered = core.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return text


def parse_opaque(raw: str) -> bytes | None:
    """The bytes of a raw (still escaped) `\\FF\\HH...` value; None if it is not opaque."""
    if raw[:3].lower() != "\\ff":
        return None
    body = raw[3:]
    if not _OPAQUE_BYTES.fullmatch(body):
        raise parse_error(f"opaque value {raw!r} must be \\FF then escaped bytes")
    return bytes.fromhex(body.replace("\\", ""))


def parse_value(raw: str) -> AttrValue:
    opaque = parse_opaque(raw)
    if opaque is not None:
        return opaque
    if not raw:
        raise parse_error("empty attribute value")
    return typed_value(ATTR_VALUE.unescape(raw))


def _inconsistency(values: tuple[AttrValue, ...]) -> str | None:
    kinds = {type(value) for value in values}
    if len(kinds) > 1:
        return "values of different types"
    if bool in kinds and len(values) > 1:
        return "a boolean takes one value"  # RFC 2608 5, RFC 2609 3.2.6.2
    return None


def _parse_tag(text: str) -> str:
    if not text:
        raise parse_error("empty attribute tag")
    return ATTR_TAG.unescape(text)


def _parse_attribute(inner: str) -> Attribute:
    tag_text, equals, values_text = inner.partition("=")
    if not equals:
        raise parse_error(f"'(' without '=' in {inner!r}")
    tag = _parse_tag(tag_text)
    values = tuple(parse_value(raw) for raw in values_text.split(","))
    problem = _inconsistency(values)
    if problem:
        raise SlpParseError(ErrorCode.INVALID_REGISTRATION, f"attribute {tag!r}: {problem}")
    return Attribute(tag, values)


def parse_attr_list(text: str) -> tuple[Attribute, ...]:
    """Parse an <attr-list>; the empty string is the empty list."""
    attributes: list[Attribute] = []
    pos = 0
    while pos < len(text):
        if text[pos] == "(":
            # `)` is reserved inside an attribute, so the first one closes it.
            close = text.find(")", pos)
            if close < 0:
                raise parse_error("unterminated '('")
            attributes.append(_parse_attribute(text[pos + 1 : close]))
            pos = close + 1
        else:
            comma = text.find(",", pos)
            end = len(text) if comma < 0 else comma
            attributes.append(Attribute(_parse_tag(text[pos:end])))
            pos = end
        if pos < len(text):
            if text[pos] != ",":
                raise parse_error(f"expected ',' at offset {pos}")
            pos += 1
            if pos == len(text):
                raise parse_error("trailing ','")
    return tuple(attributes)


def format_value(value: AttrValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not INTEGER_MIN <= value <= INTEGER_MAX:
            raise ValueError(f"integer {value} outside 32 bits")
        return str(value)
    if isinstance(value, bytes):
        if not value:
            raise ValueError("an opaque value needs at least one byte")
        return "\\ff" + "".join(f"\\{byte:02x}" for byte in value)
    if not value:
        raise ValueError("a string value cannot be empty")
    return ATTR_VALUE.escape(value)


def format_attr_list(attributes: Iterable[Attribute]) -> str:
    """The <attr-list> text for `attributes`; ValueError for what SLP cannot express.

    A string that reads as an integer or boolean ("42", "true") is sent as written and
    will be typed as such by the receiver: SLP has no way to quote it.
    """
    parts: list[str] = []
    for attribute in attributes:
        tag = ATTR_TAG.escape(attribute.tag)
        if not tag:
            raise ValueError("empty attribute tag")
        if attribute.is_keyword:
            parts.append(tag)
            continue
        problem = _inconsistency(attribute.values)
        if problem:
            raise ValueError(f"attribute {tag!r}: {problem}")
        parts.append(f"({tag}={','.join(format_value(v) for v in attribute.values)})")
    return ",".join(parts)

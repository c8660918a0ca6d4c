"""SLP string syntax: escapes, string lists, folding, URLs, language tags."""

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discovery_agent.slp.constants import ErrorCode
from discovery_agent.slp.errors import SlpParseError
from discovery_agent.slp.strings import (
    ATTR_VALUE,
    SCOPE,
    TAG_FILTER,
    comparison_key,
    format_pr_list,
    is_language_tag,
    parse_pr_list,
    service_type_of,
)

from .strategies import ITEMS


@settings(max_examples=50, deadline=None)
@given(ITEMS)
def test_scope_list_round_trip(scopes: tuple[str, ...]) -> None:
    assert SCOPE.parse_list(SCOPE.format_list(scopes)) == scopes


def test_rfc_escape_examples() -> None:
    # RFC 2608 6.4: a comma travels as \2c, a backslash as \5c; hex case does not matter.
    assert ATTR_VALUE.escape("a,b\\c") == "a\\2cb\\5cc"
    assert ATTR_VALUE.unescape("a\\2Cb\\5cc") == "a,b\\c"
    assert SCOPE.parse_list("BLDG 32,a\\2cb,c\\2a") == ("BLDG 32", "a,b", "c*")
    assert SCOPE.parse_list("") == ()


@pytest.mark.parametrize(
    "text",
    [
        "\\",  # escape cut off
        "a\\2",  # escape cut off after one digit
        "a\\zz",  # not hex
        "a\\ 1",  # int() would accept the space
        "\\41",  # "A" is not reserved, so escaping it is illegal (RFC 2608 5)
        "\\c3\\a9",  # neither is a UTF-8 byte
        "a(b",  # reserved character left unescaped
        "a\x01b",  # control character
    ],
)
def test_bad_escapes_and_reserved_characters(text: str) -> None:
    with pytest.raises(SlpParseError) as caught:
        ATTR_VALUE.unescape(text)
    assert caught.value.code == ErrorCode.PARSE_ERROR
    assert not caught.value.replyable  # no message context yet


@pytest.mark.parametrize("text", ["a,,b", ",a", "a,", ","])
def test_string_lists_have_no_empty_elements(text: str) -> None:
    with pytest.raises(SlpParseError):
        SCOPE.parse_list(text)


def test_scope_reserves_more_than_attributes() -> None:
    # RFC 2608 6.4.1: `;`, `*` and `+` are reserved in scopes only.
    assert ATTR_VALUE.unescape("a;b*c+") == "a;b*c+"
    for text in ("a;b", "a*", "a+"):
        with pytest.raises(SlpParseError):
            SCOPE.unescape(text)


def test_tag_lists_take_wildcards_but_no_escapes() -> None:
    assert TAG_FILTER.parse_list("x-*,resolution,protocol") == ("x-*", "resolution", "protocol")
    for text in ("a_b", "a\\2cb", "a=b"):
        with pytest.raises(SlpParseError):
            TAG_FILTER.parse_list(text)
    with pytest.raises(ValueError):
        TAG_FILTER.format_list(["a_b"])


def test_escape_refuses_what_cannot_be_carried() -> None:
    with pytest.raises(ValueError):
        SCOPE.format_list(["a", ""])


def test_pr_list_is_lenient() -> None:
    # RFC 2608 8.1: entries that are not addresses are ignored, not errors.
    assert parse_pr_list("192.0.2.1,,junk\\zz,::1") == ("192.0.2.1", "junk\\zz", "::1")
    assert format_pr_list(["192.0.2.1", "::1"]) == "192.0.2.1,::1"
    with pytest.raises(ValueError):
        format_pr_list(["a,b"])


def test_comparison_key_folds_case_and_white_space() -> None:
    # RFC 2608 6.4: "  Some String  " matches "SOME    STRING".
    assert comparison_key("  Some String  ") == comparison_key("SOME    STRING")
    assert comparison_key("a\t\r\nb") == "a b"
    assert comparison_key("Stra\u00dfe") == comparison_key("STRASSE")


@pytest.mark.parametrize(
    ("url", "service_type"),
    [
        ("service:printer:lpr://hostname", "service:printer:lpr"),
        ("service:tftp://bad.glad.org:8080", "service:tftp"),
        (
            "service:iscsi:target://[fe80::1]:3260/iqn.2001-04.com.example:sn.1",
            "service:iscsi:target",
        ),
        ("SERVICE:x.one:y://h", "SERVICE:x.one:y"),
        ("service:directory-agent://192.0.2.1", "service:directory-agent"),
        ("http://www.srvloc.org", "http"),
        ("nfs://max.net/znoo", "nfs"),
        ("service:x:/ipx/0:0:0", "service:x"),
        ("service:x", None),
        ("service://host", None),
        ("mailto:someone", None),
        ("service:x://a b", None),
        ("", None),
    ],
)
def test_service_type_of(url: str, service_type: str | None) -> None:
    assert service_type_of(url) == service_type


@pytest.mark.parametrize(
    ("tag", "valid"),
    [
        ("en", True),
        ("en-US", True),
        ("i-klingon", True),
        ("de-1996", True),
        ("", False),
        ("e1", False),
        ("en_US", False),
        ("abcdefghi", False),
        ("en-", False),
        ("\u00e9n", False),
    ],
)
def test_language_tags(tag: str, valid: bool) -> None:
    assert is_language_tag(tag) == valid


@settings(max_examples=50, deadline=None)
@given(st.text())
def test_unescape_raises_only_slp_parse_error(text: str) -> None:
    for grammar in (ATTR_VALUE, SCOPE, TAG_FILTER):
        with contextlib.suppress(SlpParseError):
            grammar.unescape(text)

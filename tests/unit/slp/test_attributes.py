"""Attribute lists: RFC 2608 5 syntax, RFC 2609 value types, strictness."""

import pytest
from hypothesis import given, settings

from discovery_agent.slp.attributes import (
    Attribute,
    AttrValue,
    format_attr_list,
    parse_attr_list,
    parse_value,
)
from discovery_agent.slp.constants import ErrorCode
from discovery_agent.slp.errors import SlpParseError

from .strategies import ATTRIBUTES


def test_rfc_2608_printer_example() -> None:
    # RFC 2608 10.5: the `<` and `>` of the e-mail address had to be escaped.
    text = (
        "(Name=Igore),(Description=For developers only),(Protocol=LPR),"
        "(location-description=12th floor),(Operator=James Dornan \\3cdornan@monster\\3e),"
        "(media-size=na-letter),(resolution=res-600),x-OK"
    )
    attributes = parse_attr_list(text)
    assert attributes[4] == Attribute("Operator", ("James Dornan <dornan@monster>",))
    assert attributes[-1] == Attribute("x-OK") and attributes[-1].is_keyword
    assert [a.tag for a in attributes[:3]] == ["Name", "Description", "Protocol"]


def test_iscsi_target_registration() -> None:
    # RFC 4018 5.2 attributes: multi-valued strings and an integer portal group.
    text = "(iscsi-name=iqn.2001-04.com.example:sn.1),(portal-group=1),(auth-name=any,iqn.x)"
    assert parse_attr_list(text) == (
        Attribute("iscsi-name", ("iqn.2001-04.com.example:sn.1",)),
        Attribute("portal-group", (1,)),
        Attribute("auth-name", ("any", "iqn.x")),
    )
    assert format_attr_list(parse_attr_list(text)) == text


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("42", 42),
        ("-7", -7),
        ("007", 7),
        (" 5 ", 5),  # outer white space does not stop typing (RFC 2608 6.4)
        ("2147483647", 2147483647),
        ("-2147483648", -2147483648),
        ("2147483648", "2147483648"),  # out of 32-bit range: a string
        ("+5", "+5"),
        ("1_000", "1_000"),
        ("\u0663", "\u0663"),  # an Arabic-Indic digit is not DIGIT
        ("true", True),
        ("FALSE", False),
        ("truth", "truth"),
        ("\\ff\\00\\01", b"\x00\x01"),
        ("\\FF\\fF", b"\xff"),
        ("a\\2cb", "a,b"),
        ("  spaced  ", "  spaced  "),
    ],
)
def test_value_types(raw: str, value: AttrValue) -> None:
    parsed = parse_value(raw)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize(
    "text",
    [
        "(a=\\2)",  # escape cut short
        "(a=\\zz)",  # not hex
        "(a=\\41)",  # escaping a character that is not reserved
        "(a=\\)",
        "(a=x\\",
        "(a=x\\4",
        "(a=b",  # unterminated
        "(a)",
        "(a=)",
        "(a=1,,2)",
        "(a=1,)",
        "(=1)",
        "(a=b=c)",  # literal reserved character
        "(a=b~c)",
        "(a=\\ff)",  # an opaque needs at least one byte
        "(a=\\ff\\0)",
        "(a=\\ff12)",
        "(a=\\ff\\00x)",
        "(a=x\\ff)",  # \FF only starts an opaque
        "(a=1)x",
        "(a=1)(b=2)",
        "a,",
        ",a",
        "a,,b",
        "a_b",  # `_` is a bad-tag character
        "a*",  # `*` is not a tag character
        "a\\2cb",  # tags take no escapes
        "a\tb",
        "(a\nb=1)",
        "(a(=1)",
        "x)",
    ],
)
def test_malformed_attr_lists_are_parse_errors(text: str) -> None:
    with pytest.raises(SlpParseError) as caught:
        parse_attr_list(text)
    assert caught.value.code == ErrorCode.PARSE_ERROR


@pytest.mark.parametrize(
    "text",
    [
        "(x=4,true,sue,\\ff\\00\\00)",  # RFC 2608 5's own example
        "(x=4,sue)",
        "(x=\\ff\\00,4)",
        "(b=true,false)",  # booleans are single valued (RFC 2609 3.2.6.2)
        "(b=true,true)",
    ],
)
def test_inconsistent_values_are_invalid_registrations(text: str) -> None:
    with pytest.raises(SlpParseError) as caught:
        parse_attr_list(text)
    assert caught.value.code == ErrorCode.INVALID_REGISTRATION


@pytest.mark.parametrize(
    "text",
    [
        # OpenSLP's in-place unescape (SLPUnescapeInPlace) stopped two bytes short of the
        # end and trusted the length it computed, so escapes cut off at the very end of a
        # value, and \FF opaques whose escapes run off the buffer, were its soft spot.
        "(a=\\",
        "(a=\\f",
        "(a=\\ff\\",
        "(a=\\ff\\0",
        "(" + "a=" + "\\5c" * 1000 + "\\",
        "(a=" + "\\ff" + "\\00" * 2000 + "\\0)",
        "(a=x\\5",
    ],
)
def test_escapes_cut_off_at_the_end_yield_nothing(text: str) -> None:
    with pytest.raises(SlpParseError) as caught:
        parse_attr_list(text)
    assert caught.value.code == ErrorCode.PARSE_ERROR


@settings(max_examples=40, deadline=None)
@given(ATTRIBUTES)
def test_round_trip(attributes: tuple[Attribute, ...]) -> None:
    assert parse_attr_list(format_attr_list(attributes)) == attributes


def test_format_escapes_reserved_characters() -> None:
    attributes = (Attribute("Operator", ("James Dornan <dornan@monster>", "a,b\\c")),)
    assert (
        format_attr_list(attributes) == "(Operator=James Dornan \\3cdornan@monster\\3e,a\\2cb\\5cc)"
    )
    assert (
        format_attr_list([Attribute("o", (b"\x00\xff",)), Attribute("k")]) == "(o=\\ff\\00\\ff),k"
    )


@pytest.mark.parametrize(
    "attribute",
    [
        Attribute("a", ("",)),
        Attribute("a", (1, "x")),
        Attribute("a", (True, False)),
        Attribute("a", (2**31,)),
        Attribute("a", (b"",)),
        Attribute("a_b", (1,)),
        Attribute("", (1,)),
        Attribute("a=b"),
    ],
)
def test_format_refuses_what_slp_cannot_express(attribute: Attribute) -> None:
    with pytest.raises(ValueError):
        format_attr_list([attribute])

"""Predicates: RFC 2254 filter syntax with RFC 2608 8.1 typed, multi-valued matching."""

import contextlib
from typing import SupportsIndex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discovery_agent.slp.attributes import Attribute, parse_attr_list
from discovery_agent.slp.constants import ErrorCode
from discovery_agent.slp.errors import SlpParseError
from discovery_agent.slp.predicate import (
    MAX_PREDICATE_DEPTH,
    MAX_PREDICATE_LENGTH,
    Substring,
    parse_predicate,
    tag_matches,
)

from .strategies import FILTER

REGISTERED = parse_attr_list(
    "(x=1,2,3),(y=0,1),(b=true),(s=FOO),(name=  Some   String ),(w=34foo),(v=3432),"
    "(q=2),(speed=1500),(o=\\ff\\00\\10),(e=a*b),(u=caf\u00e9),x-OK"
)


@pytest.mark.parametrize(
    ("predicate", "expected"),
    [
        ("", True),  # RFC 2608 8.1: no predicate matches every service
        ("   ", True),
        # RFC 2608 8.1's own examples
        ("(x=3)", True),  # matches a registration of (x=1,2,3)
        ("(!(Y=0))", True),  # matches (y=0,1) since Y can be nonzero
        ("(!(y=0))", True),
        ("(!(x=1))", True),
        ("(&(x=1)(x=3))", True),
        ("(x=true)", False),  # types must agree
        ("(b=33)", False),
        ("(s=foo)", True),  # matches 'FOO': case-insensitive
        ("(|(b=33)(s=foo))", True),
        ("(w=34*)", True),  # matches 'w=34foo' ...
        ("(v=34*)", False),  # ... but not the integer 3432
        ("(&(q<=3)(speed>=1000))", True),
        ("(&(q<=1)(speed>=1000))", False),
        # presence and keywords
        ("(x-ok=*)", True),
        ("(X-OK=*)", True),
        ("(missing=*)", False),
        ("(!(missing=*))", True),
        ("(!(x=*))", False),
        ("(x-ok=1)", False),
        ("(!(x-ok=1))", True),
        # absent attributes: nothing matches, so a negated term holds
        ("(missing=1)", False),
        ("(!(missing=1))", True),
        ("(missing<=1)", False),
        # integers compare numerically
        ("(x>=3)", True),
        ("(x>=4)", False),
        ("(x<=0)", False),
        ("(x<=-5)", False),
        ("(speed>=999)", True),
        ("(speed<=+1500)", False),  # "+1500" is a string, speed an integer
        ("(x~=2)", True),
        # booleans only by equality (RFC 2608 5)
        ("(b=TRUE)", True),
        ("(b=false)", False),
        ("(b~=true)", True),
        ("(b>=true)", False),
        ("(b<=true)", False),
        ("(!(b=false))", True),
        # strings: case and white space folded (RFC 2608 6.4), ordered lexically
        ("(name=some string)", True),
        ("(name=SOME    STRING)", True),
        ("(name= some string )", True),
        ("(name=somestring)", False),
        ("(s>=fon)", True),
        ("(s>=fop)", False),
        ("(s<=FOO)", True),
        ("(u=CAF\u00c9)", True),
        # wildcards
        ("(name=some*)", True),
        ("(name=*string)", True),
        ("(name=*ME ST*)", True),
        ("(name=s*e*s*g)", True),
        ("(name=*some string*)", True),
        ("(name=some *)", True),
        ("(name=*x*)", False),
        ("(name=str*)", False),
        ("(name=*some)", False),
        ("(s=f**o)", True),
        ("(s=fo*oo)", False),  # parts may not overlap
        ("(e=a\\2ab)", True),  # an escaped star is a literal star
        ("(e=a*b)", True),
        ("(e=*\\2a*)", True),
        ("(s=*\\2a*)", False),
        ("(x=1*)", False),  # wildcards make strings; x holds integers
        # opaques compare bytewise
        ("(o=\\ff\\00\\10)", True),
        ("(o=\\FF\\00\\10)", True),
        ("(o=\\ff\\00)", False),
        ("(o>=\\ff\\00)", True),
        ("(o=\\00\\10)", False),
        # boolean structure
        ("(&(x=1)(s=foo)(b=true))", True),
        ("(&(x=1)(s=bar))", False),
        ("(|(x=9)(s=bar))", False),
        ("(|(x=9)(s=bar)(b=true))", True),
        ("(!(&(x=1)(s=bar)))", True),
        ("(!(|(x=9)(s=foo)))", False),
        ("(!(!(x=3)))", True),
        ("(&(|(x=9)(y=1))(!(s=bar)))", True),
        (" (&(x=1)\n (y=1)) ", True),  # white space between filters
        # RFC 4018 5.2 writes its queries without the outer parentheses
        ("&(x=1)(y=1)", True),
        ("|(x=9)(y=9)", False),
        ("!(x=9)", True),
    ],
)
def test_truth_table(predicate: str, expected: bool) -> None:
    assert parse_predicate(predicate).matches(REGISTERED) is expected


def test_multi_valued_or_semantics() -> None:
    # "(!(|(y=0)(y=1)))" on y=0,1: each value fails one of the negated terms.
    attributes = [Attribute("y", (0, 1))]
    assert parse_predicate("(&(!(y=0))(!(y=1)))").matches(attributes)
    assert not parse_predicate("(!(y=0))").matches([Attribute("y", (0,))])
    # Duplicate tags in one registration pool their values.
    pooled = [Attribute("y", (0,)), Attribute("Y", (5,))]
    assert parse_predicate("(y=5)").matches(pooled)


def test_rfc_4018_iscsi_queries() -> None:
    target = parse_attr_list(
        "(iscsi-name=iqn.2001-04.com.example:sn.456),(portal-group=1),(transports=tcp),"
        "(auth-name=iqn.1998-03.com.example:hostid.045A7B,any),(auth-cred=chap/my-user-name,any),"
        "(auth-addr=192.0.2.3),(boot-list=iqn.1998-03.com.example:hostid.045A7B)"
    )
    for query in (
        "(iscsi-name=iqn.2001-04.com.example:sn.456)",
        "(auth-name=iqn.1998-03.com.example:hostid.045A7B)",
        "(auth-name=any)",
        "&(auth-name=iqn.1998-03.com.example:hostid.045A7B)(auth-name=any)",
        "(auth-cred=chap/my-user-name)",
        # Query 6, with the parentheses RFC 4018 leaves off its inner "|" groups
        "&(|(auth-name=iqn.com.example:host47)(auth-name=any))\n"
        "(|(auth-addr=192.0.2.3)(auth-addr=192.0.2.131)(auth-addr=any))\n"
        "(|(auth-cred=chap/foo)(auth-cred=srp/my-user-name)\n (auth-cred=any))",
        "(boot-list=iqn.1998-03.com.example:hostid.045A7B)",
    ):
        assert parse_predicate(query).matches(target), query
    assert not parse_predicate("(iscsi-name=iqn.2001-04.com.example:sn.457)").matches(target)


@pytest.mark.parametrize(
    "predicate",
    [
        "(a=1",
        "a=1",
        "((a=1))",
        "(&)",
        "(|)",
        "(!)",
        "(!(a=1)(b=2))",
        "(a=1)(b=2)",
        "(a=1))",
        "()",
        "(a)",
        "(=1)",
        "(a=)",
        "(a~1)",
        "(a<1)",
        "(a>1)",
        "(a=b(c)",
        "(a>=x*)",  # RFC 2608 8.1: wildcards only with '='
        "(a<=*)",
        "(a~=*x)",
        "(a=\\zz)",
        "(a=\\2)",
        "(a=\\41)",  # escaping a character that is not reserved
        "(a=x\\)",
        "(a=\\ff)",
        "(a=\\ff\\0)",
        "(a=\\ff\\00*)",
        "(a=\x00)",
        "(a_b=1)",  # `_` is a bad-tag character
        "(a*b=1)",
        "(a\\2cb=1)",
        "(&(a=1)x)",
        "&",
    ],
)
def test_malformed_predicates(predicate: str) -> None:
    with pytest.raises(SlpParseError) as caught:
        parse_predicate(predicate)
    assert caught.value.code == ErrorCode.PARSE_ERROR


def test_nesting_depth_is_bounded() -> None:
    def nested(depth: int) -> str:
        return "(!" * (depth - 1) + "(a=1)" + ")" * (depth - 1)

    assert parse_predicate(nested(MAX_PREDICATE_DEPTH)).matches([Attribute("a", (2,))]) is True
    for depth in (MAX_PREDICATE_DEPTH + 1, 5000):
        with pytest.raises(SlpParseError):
            parse_predicate(nested(depth))


def test_length_is_bounded() -> None:
    wide = "(|" + "(a=1)" * ((MAX_PREDICATE_LENGTH - 3) // 5) + ")"
    assert parse_predicate(wide).matches([Attribute("a", (1,))])
    with pytest.raises(SlpParseError):
        parse_predicate("(a=" + "x" * MAX_PREDICATE_LENGTH + ")")


class _CountingKey(str):
    """A value that counts the searches made in it."""

    searches = 0

    def find(
        self, sub: str, start: SupportsIndex | None = None, end: SupportsIndex | None = None
    ) -> int:
        type(self).searches += 1
        return super().find(sub, start, end)


def test_hostile_wildcards_stay_linear() -> None:
    """One search per wildcard part, never a retry (a backtracking matcher would need
    astronomically many here): counted, not timed."""
    predicate = parse_predicate("(a=" + "*a" * 1500 + "*c*b)")
    hostile = "a" * 60000 + "b"  # every part but the last placeable many ways
    assert not predicate.matches([Attribute("a", (hostile,))])
    substring = predicate.root
    assert isinstance(substring, Substring) and len(substring.middle) == 1501
    assert not substring.matches(_CountingKey(hostile))
    assert _CountingKey.searches == len(substring.middle)


@pytest.mark.parametrize(
    ("pattern", "tag", "expected"),
    [
        # RFC 2608 9.4: "*bob*" matches all of these
        ("*bob*", "some bob I know", True),
        ("*bob*", "bigbob", True),
        ("*bob*", "bobby", True),
        ("*bob*", "bob", True),
        ("*bob*", "bo b", False),
        ("loc*", "location-description", True),
        ("x-*", "x-OK", True),
        ("resolution", "Resolution", True),
        ("resolution", "resolutions", False),
        ("*", "anything", True),
    ],
)
def test_tag_list_matching(pattern: str, tag: str, expected: bool) -> None:
    assert tag_matches(pattern, tag) is expected


# Classical logic holds when every attribute has at most one value: then "!" is plain
# negation. Random filters over such registrations check the evaluator against it.
SINGLE_VALUED = st.lists(
    st.sampled_from(
        [
            Attribute("a", (1,)),
            Attribute("a", (2,)),
            Attribute("b", ("x",)),
            Attribute("b", (True,)),
            Attribute("c", ("xy",)),
            Attribute("c", (b"\x01",)),
            Attribute("k"),
        ]
    ),
    max_size=3,
    unique_by=lambda attribute: attribute.tag,
)


@settings(max_examples=60, deadline=None)
@given(FILTER, SINGLE_VALUED)
def test_negation_is_classical_for_single_values(
    predicate: str, attributes: list[Attribute]
) -> None:
    assert parse_predicate(f"(!{predicate})").matches(attributes) is not parse_predicate(
        predicate
    ).matches(attributes)


@settings(max_examples=100, deadline=None)
@given(st.text("()&|!=<>~*\\ab01fF \x00", max_size=40))
def test_arbitrary_text_raises_only_slp_parse_error(text: str) -> None:
    with contextlib.suppress(SlpParseError):
        parse_predicate(text).matches(REGISTERED)

"""SrvRqst predicates: LDAPv3 search filters (RFC 2254) as RFC 2608 8.1 uses them.

    (&(iscsi-name=iqn.2001-04.com.example:*)(|(auth-name=any)(portal-group>=2)))

Matching follows RFC 2608 5 and 8.1: a term only matches values of its own type
(integers numerically, booleans only by equality, strings case-insensitively with white
space folded, opaques bytewise); wildcards make a string term and are only allowed with
`=`; `~=` is equality, as SLP gives it no other meaning. Against a multi-valued
attribute each term is tried on every value and the results ORed, so "(!(y=0))" matches
y=0,1: negation is pushed down to the terms (De Morgan) and a negated term holds when
some value fails it, or when the attribute has no values at all.

Hostile input is bounded: at most MAX_PREDICATE_LENGTH characters and
MAX_PREDICATE_DEPTH nested filters, and wildcard matching never backtracks. Matching
reads an `AttributeIndex`, the attributes with tags and strings folded once, so a table
folds each value when it is stored rather than on every request; `equalities` names the
(tag, value) pairs a match must hold, for a table to look those up instead of scanning.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from .attributes import Attribute, AttrValue, parse_opaque, typed_value
from .strings import ATTR_TAG, FILTER_VALUE, comparison_key, fold, parse_error

MAX_PREDICATE_LENGTH = 8192
MAX_PREDICATE_DEPTH = 32
_SPACE = " \r\n\t"
_OPERATOR = re.compile(r"[=~<>]")


class Match(Enum):
    """RFC 2254 filter types."""

    EQUAL = "="
    APPROX = "~="
    GREATER_OR_EQUAL = ">="
    LESS_OR_EQUAL = "<="


@dataclass(frozen=True, slots=True)
class And:
    children: tuple["Node", ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple["Node", ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: "Node"


@dataclass(frozen=True, slots=True)
class Present:
    tag: str  # comparison_key of the attribute tag, as in every term


@dataclass(frozen=True, slots=True)
class Compare:
    tag: str
    match: Match
    value: AttrValue  # strings held as their comparison_key


@dataclass(frozen=True, slots=True)
class Substring:
    """`initial*middle*...*final`, each part folded; initial/final may be empty."""

    tag: str
    initial: str
    middle: tuple[str, ...]
    final: str

    def matches(self, key: str) -> bool:
        # Leftmost placement of each middle part is always optimal: no backtracking.
        if len(key) < len(self.initial) + len(self.final):
            return False
        if not (key.startswith(self.initial) and key.endswith(self.final)):
            return False
        pos, limit = len(self.initial), len(key) - len(self.final)
        for part in self.middle:
            found = key.find(part, pos, limit)
            if found < 0:
                return False
            pos = found + len(part)
        return True


Node = And | Or | Not | Present | Compare | Substring
_Ordered = TypeVar("_Ordered", int, str, bytes)


def _wildcard(tag: str, parts: list[str]) -> Substring:
    """Fold wildcard parts as a whole string would be: outer space ignored, runs folded."""
    folded = [fold(part) for part in parts]
    folded[0] = folded[0].lstrip(" ")
    folded[-1] = folded[-1].rstrip(" ")
    return Substring(tag, folded[0], tuple(part for part in folded[1:-1] if part), folded[-1])


def _item(text: str) -> Node:
    """attr filtertype value, attr=*, or attr=[initial]*any*[final]."""
    operator = _OPERATOR.search(text)
    if operator is None:
        raise parse_error(f"no operator in {text!r}")
    tag_text, rest = text[: operator.start()], text[operator.start() :]
    match = next((m for m in Match if rest.startswith(m.value)), None)
    if match is None:
        raise parse_error(f"bad operator in {text!r}")
    raw = rest[len(match.value) :]
    if not tag_text:
        raise parse_error(f"no attribute in {text!r}")
    tag = comparison_key(ATTR_TAG.unescape(tag_text))
    if match is Match.EQUAL and raw == "*":
        return Present(tag)
    if "*" in raw:
        if match is not Match.EQUAL:
            raise parse_error("wildcards are only allowed with '='")  # RFC 2608 8.1
        return _wildcard(tag, [FILTER_VALUE.unescape(part) for part in raw.split("*")])
    opaque = parse_opaque(raw)
    if opaque is not None:
        return Compare(tag, match, opaque)
    if not raw:
        raise parse_error(f"empty value in {text!r}")
    value = typed_value(FILTER_VALUE.unescape(raw))
    return Compare(tag, match, comparison_key(value) if isinstance(value, str) else value)


class _Parser:
    """Recursive descent over RFC 2254 4; depth is capped so recursion stays shallow."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def _skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _SPACE:
            self.pos += 1

    def _expect(self, char: str) -> None:
        self._skip_space()
        if not self.text.startswith(char, self.pos):
            raise parse_error(f"expected {char!r} at offset {self.pos}")
        self.pos += 1

    def filter(self, depth: int) -> Node:
        if depth > MAX_PREDICATE_DEPTH:
            raise parse_error(f"filters nested deeper than {MAX_PREDICATE_DEPTH}")
        self._expect("(")
        kind = self.text[self.pos : self.pos + 1]
        if kind in ("&", "|"):
            self.pos += 1
            children = [self.filter(depth + 1)]
            self._skip_space()
            while self.text.startswith("(", self.pos):
                children.append(self.filter(depth + 1))
                self._skip_space()
            node: Node = And(tuple(children)) if kind == "&" else Or(tuple(children))
        elif kind == "!":
            self.pos += 1
            node = Not(self.filter(depth + 1))
        else:
            # `(` and `)` are escaped inside values, so the item ends at the next `)`.
            end = self.text.find(")", self.pos)
            if end < 0 or "(" in self.text[self.pos : end]:
                raise parse_error(f"unbalanced item at offset {self.pos}")
            node = _item(self.text[self.pos : end])
            self.pos = end
        self._expect(")")
        return node

    def parse(self) -> Node:
        node = self.filter(1)
        self._skip_space()
        if self.pos != len(self.text):
            raise parse_error(f"text after the filter at offset {self.pos}")
        return node


def _sign(value: _Ordered, term: _Ordered) -> int:
    return (value > term) - (value < term)


def _holds(match: Match, sign: int) -> bool:
    if match is Match.GREATER_OR_EQUAL:
        return sign >= 0
    if match is Match.LESS_OR_EQUAL:
        return sign <= 0
    return sign == 0


# Tag comparison key -> values, strings as their comparison keys.
AttributeIndex = dict[str, tuple[AttrValue, ...]]


def attribute_index(attributes: Iterable[Attribute]) -> AttributeIndex:
    index: dict[str, list[AttrValue]] = {}
    for attribute in attributes:
        index.setdefault(comparison_key(attribute.tag), []).extend(
            comparison_key(value) if isinstance(value, str) else value for value in attribute.values
        )
    return {tag: tuple(values) for tag, values in index.items()}


def _test(term: Compare | Substring, value: AttrValue) -> bool:
    """One term against one (folded) value: types must agree (RFC 2608 8.1)."""
    if isinstance(term, Substring):
        return isinstance(value, str) and term.matches(value)
    wanted = term.value
    if isinstance(wanted, bool) or isinstance(value, bool):
        # RFC 2608 5: booleans "may only be compared with '='".
        equality = term.match in (Match.EQUAL, Match.APPROX)
        return equality and isinstance(value, bool) and isinstance(wanted, bool) and value == wanted
    if isinstance(wanted, int) and isinstance(value, int):
        return _holds(term.match, _sign(value, wanted))
    if isinstance(wanted, str) and isinstance(value, str):
        return _holds(term.match, _sign(value, wanted))
    if isinstance(wanted, bytes) and isinstance(value, bytes):
        return _holds(term.match, _sign(value, wanted))
    return False


def _evaluate(node: Node, index: AttributeIndex, negated: bool) -> bool:
    if isinstance(node, And | Or):
        results = (_evaluate(child, index, negated) for child in node.children)
        # De Morgan: under negation & becomes | and | becomes &.
        return all(results) if isinstance(node, And) != negated else any(results)
    if isinstance(node, Not):
        return _evaluate(node.child, index, not negated)
    if isinstance(node, Present):
        return (node.tag in index) != negated
    values = index.get(node.tag, ())
    if negated:
        return not values or not all(_test(node, value) for value in values)
    return any(_test(node, value) for value in values)


@dataclass(frozen=True, slots=True)
class Predicate:
    """A parsed predicate; `root` None is the empty predicate, which everything matches."""

    root: Node | None

    def matches(self, attributes: Iterable[Attribute]) -> bool:
        return self.matches_index(attribute_index(attributes))

    def matches_index(self, index: AttributeIndex) -> bool:
        return self.root is None or _evaluate(self.root, index, negated=False)

    def equalities(self) -> tuple[tuple[str, str], ...]:
        """(tag, string value) pairs, as comparison keys, that every match holds: the
        string equality terms at the top or under a top-level `&`."""
        terms = self.root.children if isinstance(self.root, And) else (self.root,)
        return tuple(
            (term.tag, term.value)
            for term in terms
            if isinstance(term, Compare)
            and term.match in (Match.EQUAL, Match.APPROX)
            and isinstance(term.value, str)
        )


def parse_predicate(text: str) -> Predicate:
    """Parse a SrvRqst <predicate>; raises SlpParseError(PARSE_ERROR) on any fault.

    RFC 4018 5.2's queries omit the outer parentheses ("&(a=1)(b=2)"); those are accepted.
    """
    if len(text) > MAX_PREDICATE_LENGTH:
        raise parse_error(f"predicate longer than {MAX_PREDICATE_LENGTH} characters")
    text = text.strip(_SPACE)
    if not text:
        return Predicate(None)
    if text[0] in "&|!":
        text = f"({text})"
    return Predicate(_Parser(text).parse())


def tag_matches(pattern: str, tag: str) -> bool:
    """RFC 2608 9.4: does a <tag-list> entry (with `*` wildcards) select `tag`?"""
    if "*" not in pattern:
        return comparison_key(pattern) == comparison_key(tag)
    return _wildcard("", pattern.split("*")).matches(comparison_key(tag))

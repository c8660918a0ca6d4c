"""Hypothesis strategies for SLP values and messages that survive a wire round trip."""

from typing import Any

from hypothesis import strategies as st

from discovery_agent.slp.attributes import Attribute, AttrValue, format_attr_list, typed_value
from discovery_agent.slp.constants import ErrorCode, Flags
from discovery_agent.slp.messages import (
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

TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
ITEM = TEXT.filter(bool)
ITEMS = st.lists(ITEM, max_size=3).map(tuple)
TAG = st.text("abcXYZ019-.: ", min_size=1, max_size=8)  # RFC 2608 5 safe-tag characters
TAG_FILTERS = st.lists(st.text("abcXYZ019-.: *", min_size=1, max_size=8), max_size=3).map(tuple)
# Plain compositions rather than from_regex/ip_addresses: they generate several times faster.
ADDRESS = st.sampled_from(["192.0.2.1", "127.0.0.1", "[::1]", "[fe80::1%25eth0]", "host.example"])
PR_LIST = st.lists(ADDRESS, max_size=3).map(tuple)
_ALPHA = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
LANGUAGE = st.builds(
    lambda primary, subtags: "-".join([primary, *subtags]),
    st.text(_ALPHA, min_size=1, max_size=8),
    st.lists(st.text(_ALPHA + "0123456789", min_size=1, max_size=8), max_size=2),
)
ERROR = st.sampled_from(list(ErrorCode)[1:]) | st.integers(16, 0xFFFF)
_NAME = st.builds(str.__add__, st.sampled_from("aiz"), st.text("abz09+-.", max_size=6))
TYPE_NAME = _NAME | st.builds(lambda a, b: f"{a}:{b}", _NAME, _NAME)
SERVICE_URL = st.builds(
    lambda kind, host, path: f"service:{kind}://{host}{path}",
    TYPE_NAME,
    ADDRESS,
    st.sampled_from(["", ":3260", ":3260/iqn.2001-04.com.example:sn.1"]),
)

_TERM = st.builds(
    "({}{}{})".format,
    st.sampled_from(["a", "b", "c", "k", "z"]),
    st.sampled_from(["=", "<=", ">=", "~="]),
    st.sampled_from(["1", "2", "x", "X", "true", "\\ff\\01"]),
) | st.sampled_from(["(a=*)", "(k=*)", "(z=*)", "(c=x*)", "(c=*y)"])
FILTER = st.recursive(  # well-formed predicates over the tags a, b, c, k, z
    _TERM,
    lambda inner: (
        st.builds("(!{})".format, inner)
        | st.builds(
            lambda op, parts: f"({op}{''.join(parts)})",
            st.sampled_from("&|"),
            st.lists(inner, min_size=1, max_size=3),
        )
    ),
    max_leaves=8,
)

AUTH_BLOCKS = st.lists(
    st.builds(
        AuthBlock,
        bsd=st.integers(0, 0xFFFF),
        timestamp=st.integers(0, 2**32 - 1),
        spi=TEXT,
        data=st.binary(max_size=16),
    ),
    max_size=2,
).map(tuple)
URL_ENTRY = st.builds(UrlEntry, url=TEXT, lifetime=st.integers(0, 0xFFFF), auth_blocks=AUTH_BLOCKS)


def _canonical_string(text: str) -> bool:
    """A string value that parses back as this same string, not as an integer or boolean."""
    return bool(text) and isinstance(typed_value(text), str)


VALUES: st.SearchStrategy[tuple[AttrValue, ...]] = st.one_of(
    st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=3).map(tuple),
    st.lists(
        st.text("aZ09 -.(),\\!<=>~*_\t\u00e9\u4e2d", min_size=1, max_size=8).filter(
            _canonical_string
        ),
        min_size=1,
        max_size=3,
    ).map(tuple),
    st.lists(st.binary(min_size=1, max_size=4), min_size=1, max_size=3).map(tuple),
    st.booleans().map(lambda b: (b,)),
    st.just(()),
)
ATTRIBUTES = st.lists(st.builds(Attribute, TAG, VALUES), max_size=3).map(tuple)
ATTR_LIST = ATTRIBUTES.map(format_attr_list)


def _message(cls: type[Message], **fields: Any) -> st.SearchStrategy[Message]:
    return st.builds(
        cls,
        xid=st.integers(0, 0xFFFF),
        language=LANGUAGE,
        flags=st.integers(0, 7).map(lambda bits: Flags(bits << 13)),
        extensions=st.lists(
            st.builds(
                Extension,
                st.integers(0, 0x3FFF) | st.integers(0x8000, 0xFFFF),
                st.binary(max_size=8),
            ),
            max_size=3,
        ).map(tuple),
        **fields,
    )


def _reply(cls: type[Message], **fields: Any) -> st.SearchStrategy[Message]:
    """A successful reply with content, or an error reply that carries only its code."""
    return _message(cls, **fields) | _message(cls, error_code=ERROR)


MESSAGES: dict[type[Message], st.SearchStrategy[Message]] = {
    SrvRqst: _message(
        SrvRqst,
        pr_list=PR_LIST,
        service_type=ITEM,
        scopes=ITEMS,
        predicate=st.just("") | FILTER,
        spi=TEXT,
    ),
    SrvRply: _reply(SrvRply, url_entries=st.lists(URL_ENTRY, max_size=3).map(tuple)),
    SrvReg: _message(
        SrvReg,
        url_entry=st.builds(
            UrlEntry, url=SERVICE_URL, lifetime=st.integers(1, 0xFFFF), auth_blocks=AUTH_BLOCKS
        ),
        service_type=TYPE_NAME.map(lambda name: f"service:{name}"),
        scopes=ITEMS,
        attr_list=ATTR_LIST,
        auth_blocks=AUTH_BLOCKS,
    ),
    SrvDeReg: _message(SrvDeReg, scopes=ITEMS, url_entry=URL_ENTRY, tag_list=TAG_FILTERS),
    SrvAck: _message(SrvAck, error_code=st.just(ErrorCode.OK) | ERROR),
    AttrRqst: _message(
        AttrRqst, pr_list=PR_LIST, url=TEXT, scopes=ITEMS, tag_list=TAG_FILTERS, spi=TEXT
    ),
    AttrRply: _reply(AttrRply, attr_list=ATTR_LIST, auth_blocks=AUTH_BLOCKS),
    DAAdvert: _reply(
        DAAdvert,
        boot_timestamp=st.integers(0, 2**32 - 1),
        url=TEXT,
        scopes=ITEMS,
        attr_list=ATTR_LIST,
        spi_list=ITEMS,
        auth_blocks=AUTH_BLOCKS,
    ),
    SrvTypeRqst: _message(
        SrvTypeRqst, pr_list=PR_LIST, naming_authority=st.none() | TEXT, scopes=ITEMS
    ),
    SrvTypeRply: _reply(SrvTypeRply, service_types=ITEMS),
    SAAdvert: _message(
        SAAdvert, url=TEXT, scopes=ITEMS, attr_list=ATTR_LIST, auth_blocks=AUTH_BLOCKS
    ),
}

"""SLPv2 codec: golden bytes from the RFC 2608 layouts, round trips, and hostile input."""

import contextlib
from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discovery_agent.slp.codec import (
    build_error_reply,
    build_message,
    error_reply,
    fit_to_budget,
    message_length,
    parse_message,
)
from discovery_agent.slp.constants import REPLY_FUNCTION, ErrorCode, Flags
from discovery_agent.slp.errors import SlpParseError
from discovery_agent.slp.messages import (
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

from .strategies import MESSAGES

# Wire pieces written straight from the RFC 2608 diagrams, independent of the codec.


def u8(n: int) -> bytes:
    return n.to_bytes(1, "big")


def u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def u24(n: int) -> bytes:
    return n.to_bytes(3, "big")


def u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return u16(len(raw)) + raw


def header(function: int, body: bytes, *, xid: int, flags: int = 0, lang: str = "en") -> bytes:
    """RFC 2608 8 header for `body` (no extensions)."""
    length = 14 + len(lang) + len(body)
    return u8(2) + u8(function) + u24(length) + u16(flags) + u24(0) + u16(xid) + s(lang) + body


def url_entry(url: str, lifetime: int, auths: bytes = b"\x00") -> bytes:
    return u8(0) + u16(lifetime) + s(url) + auths  # RFC 2608 4.3


def auth_block(bsd: int, timestamp: int, spi: str, data: bytes) -> bytes:
    return u16(bsd) + u16(10 + len(spi) + len(data)) + u32(timestamp) + s(spi) + data  # 9.2


ISCSI_URL = "service:iscsi:target://192.0.2.3:3260/iqn.2001-04.com.example:sn.45678"
ISCSI_ATTRS = "(iscsi-name=iqn.2001-04.com.example:sn.45678),(portal-group=1),(transports=tcp)"
LPR_URL = "service:printer:lpr://igore.wco.ftp.com/draft"

# fmt: off
SRVRQST_HEX = (
    "02" "01" "000047"          # version 2, SrvRqst, length 71
    "2000" "000000" "1234"      # REQUEST MCAST, no extension, XID
    "0002" "656e"               # language "en"
    "0000"                      # <PRList> empty
    "0014" + b"service:iscsi:target".hex() +
    "0007" + b"DEFAULT".hex() +
    "0012" + b"(iscsi-name=iqn.x)".hex() +
    "0000"                      # no SLP SPI
)
# fmt: on

REGISTRATION = SrvReg(
    xid=7,
    flags=Flags.FRESH,
    url_entry=UrlEntry(ISCSI_URL, 900, (AuthBlock(2, 0x5F5E1000, "spi-1", b"\x30\x2c"),)),
    service_type="service:iscsi:target",
    scopes=("DEFAULT", "BLDG 32"),
    attr_list=ISCSI_ATTRS,
)

GOLDEN: list[tuple[Message, bytes]] = [
    (
        SrvRqst(
            xid=0x1234,
            flags=Flags.REQUEST_MCAST,
            service_type="service:iscsi:target",
            scopes=("DEFAULT",),
            predicate="(iscsi-name=iqn.x)",
        ),
        bytes.fromhex(SRVRQST_HEX),
    ),
    (
        SrvRply(xid=0x1234, url_entries=(UrlEntry(ISCSI_URL, 900),)),
        header(2, u16(0) + u16(1) + url_entry(ISCSI_URL, 900), xid=0x1234),
    ),
    (
        REGISTRATION,
        header(
            3,
            url_entry(ISCSI_URL, 900, u8(1) + auth_block(2, 0x5F5E1000, "spi-1", b"\x30\x2c"))
            + s("service:iscsi:target")
            + s("DEFAULT,BLDG 32")
            + s(ISCSI_ATTRS)
            + u8(0),
            xid=7,
            flags=0x4000,
        ),
    ),
    (
        SrvDeReg(xid=8, scopes=("DEFAULT",), url_entry=UrlEntry(ISCSI_URL, 0), tag_list=("x-*",)),
        header(4, s("DEFAULT") + url_entry(ISCSI_URL, 0) + s("x-*"), xid=8),
    ),
    (SrvAck(xid=7), header(5, u16(0), xid=7)),
    (
        # RFC 2608 10.5, first example request
        AttrRqst(
            xid=9,
            language="de",
            url=LPR_URL,
            scopes=("Development",),
            tag_list=("resolution", "loc*"),
        ),
        header(
            6,
            s("") + s(LPR_URL) + s("Development") + s("resolution,loc*") + s(""),
            xid=9,
            lang="de",
        ),
    ),
    (
        AttrRply(
            xid=9, language="de", attr_list="(location-description=13te Etage),(resolution=res-600)"
        ),
        header(
            7,
            u16(0) + s("(location-description=13te Etage),(resolution=res-600)") + u8(0),
            xid=9,
            lang="de",
        ),
    ),
    (
        DAAdvert(
            boot_timestamp=0x65000000,
            url="service:directory-agent://192.0.2.1",
            scopes=("DEFAULT",),
            attr_list="(min-refresh-interval=60)",
        ),
        header(
            8,
            u16(0)
            + u32(0x65000000)
            + s("service:directory-agent://192.0.2.1")
            + s("DEFAULT")
            + s("(min-refresh-interval=60)")
            + s("")
            + u8(0),
            xid=0,
        ),
    ),
    (
        SrvTypeRqst(xid=10, scopes=("a,b",)),  # all naming authorities; an escaped comma
        header(9, s("") + u16(0xFFFF) + s("a\\2cb"), xid=10),
    ),
    (
        SrvTypeRply(xid=10, service_types=("service:iscsi:target", "service:iscsi:sms")),
        header(10, u16(0) + s("service:iscsi:target,service:iscsi:sms"), xid=10),
    ),
    (
        SAAdvert(
            xid=11,
            url="service:service-agent://192.0.2.2",
            scopes=("DEFAULT",),
            attr_list="(service-type=iscsi)",
        ),
        header(
            11,
            s("service:service-agent://192.0.2.2")
            + s("DEFAULT")
            + s("(service-type=iscsi)")
            + u8(0),
            xid=11,
        ),
    ),
]
GOLDEN_IDS = [type(message).__name__ for message, _ in GOLDEN]


def test_golden_covers_every_message_type() -> None:
    assert {type(message) for message, _ in GOLDEN} == set(MESSAGE_TYPES.values())


@pytest.mark.parametrize(("message", "wire"), GOLDEN, ids=GOLDEN_IDS)
def test_golden_bytes(message: Message, wire: bytes) -> None:
    assert build_message(message) == wire
    assert parse_message(wire) == message


@pytest.mark.parametrize("cls", list(MESSAGES), ids=lambda cls: cls.__name__)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_round_trip(cls: type[Message], data: st.DataObject) -> None:
    message = data.draw(MESSAGES[cls])
    wire = build_message(message)
    assert parse_message(wire) == message
    assert message_length(wire[:5]) == len(wire)


def expect_error(wire: bytes, code: ErrorCode, replyable: bool) -> SlpParseError:
    with pytest.raises(SlpParseError) as caught:
        parse_message(wire)
    assert caught.value.code == code, caught.value
    assert caught.value.replyable == replyable
    return caught.value


def is_unicast_request(wire: bytes) -> bool:
    return wire[1] in REPLY_FUNCTION and not wire[5] & 0x20


def with_length(wire: bytes, length: int) -> bytes:
    return wire[:2] + u24(length) + wire[5:]


@pytest.mark.parametrize(("message", "wire"), GOLDEN, ids=GOLDEN_IDS)
def test_every_truncation_is_a_parse_error(message: Message, wire: bytes) -> None:
    body_start = 14 + len(message.language)
    for cut in range(len(wire)):
        # As received: the length field no longer matches the datagram.
        expect_error(
            wire[:cut], ErrorCode.PARSE_ERROR, cut >= body_start and is_unicast_request(wire)
        )
        # Consistently shortened: the body itself ends early.
        if cut >= body_start:
            shortened = with_length(wire[:cut], cut)
            expect_error(shortened, ErrorCode.PARSE_ERROR, is_unicast_request(wire))


@pytest.mark.parametrize(("message", "wire"), GOLDEN, ids=GOLDEN_IDS)
def test_length_field_past_the_end_and_stray_bytes(message: Message, wire: bytes) -> None:
    replyable = is_unicast_request(wire)
    expect_error(with_length(wire, len(wire) + 1), ErrorCode.PARSE_ERROR, replyable)
    expect_error(with_length(wire, 0xFFFFFF), ErrorCode.PARSE_ERROR, replyable)
    expect_error(with_length(wire + b"\x00", len(wire) + 1), ErrorCode.PARSE_ERROR, replyable)


@pytest.mark.parametrize(("message", "wire"), GOLDEN, ids=GOLDEN_IDS)
def test_bad_version_and_language(message: Message, wire: bytes) -> None:
    for version in (0, 1, 3, 255):
        expect_error(bytes([version]) + wire[1:], ErrorCode.VER_NOT_SUPPORTED, False)
    for tag in ("e1", "en_US", "toolongtag", "en-", "-en", "\u00e9n"):
        bad = build_message(replace(message, language=tag))
        code = ErrorCode.LANGUAGE_NOT_SUPPORTED
        error = expect_error(bad, code, is_unicast_request(wire))
        assert error.xid == message.xid and error.function == message.function
    empty = build_message(replace(message, language=""))
    code = (
        ErrorCode.INVALID_REGISTRATION
        if isinstance(message, SrvReg)
        else ErrorCode.LANGUAGE_NOT_SUPPORTED
    )
    expect_error(empty, code, is_unicast_request(wire))


@pytest.mark.parametrize(("message", "wire"), GOLDEN, ids=GOLDEN_IDS)
def test_mutations_raise_only_slp_parse_error(message: Message, wire: bytes) -> None:
    for position in range(len(wire)):
        for value in (0x00, 0x01, 0x7F, 0xFF):
            mutated = wire[:position] + bytes([value]) + wire[position + 1 :]
            with contextlib.suppress(SlpParseError):
                parse_message(mutated)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_raise_only_slp_parse_error(data: bytes) -> None:
    with contextlib.suppress(SlpParseError):
        parse_message(data)


@settings(max_examples=100, deadline=None)
@given(
    function=st.integers(0, 12),
    flags=st.integers(0, 0xFFFF),
    extension=st.integers(0, 80),
    body=st.binary(max_size=60),
)
def test_arbitrary_bodies_raise_only_slp_parse_error(
    function: int, flags: int, extension: int, body: bytes
) -> None:
    data = u8(2) + u8(function) + u24(16 + len(body)) + u16(flags) + u24(extension)
    data += u16(1) + s("en") + body
    try:
        parse_message(data)
    except SlpParseError as error:
        assert isinstance(error.code, ErrorCode)


def test_header_errors_that_cannot_be_answered() -> None:
    expect_error(b"", ErrorCode.PARSE_ERROR, False)
    expect_error(b"\x02\x01\x00", ErrorCode.PARSE_ERROR, False)
    wire = GOLDEN[4][1]  # SrvAck
    expect_error(
        wire[:2] + u24(len(wire)) + wire[5:12] + u16(50) + wire[14:], ErrorCode.PARSE_ERROR, False
    )
    for function in (0, 12, 255):
        error = expect_error(u8(2) + u8(function) + wire[2:], ErrorCode.PARSE_ERROR, False)
        assert error.xid == 7 and error.function is None
    assert build_error_reply(error) is None


def test_reserved_flag_bits_are_refused() -> None:
    request = build_message(SrvRqst(xid=3, service_type="service:x"))
    expect_error(request[:5] + u16(0x1000) + request[7:], ErrorCode.PARSE_ERROR, True)
    expect_error(request[:5] + u16(0x0001) + request[7:], ErrorCode.PARSE_ERROR, True)


def test_multicast_requests_and_replies_get_no_error_reply() -> None:
    bad = SrvRqst(xid=3, service_type="", flags=Flags.REQUEST_MCAST)
    error = expect_error(build_message(bad), ErrorCode.PARSE_ERROR, False)
    assert build_error_reply(error) is None
    error = expect_error(build_message(replace(bad, flags=Flags.NONE)), ErrorCode.PARSE_ERROR, True)
    assert parse_message(build_error_reply(error) or b"") == SrvRply(
        xid=3, error_code=ErrorCode.PARSE_ERROR
    )
    reply = build_message(SrvRply(xid=4, language="x_y"))
    expect_error(reply, ErrorCode.LANGUAGE_NOT_SUPPORTED, False)


def test_error_reply_echoes_xid_and_a_well_formed_language_tag() -> None:
    # RFC 2608 8: a reply carries the request's language tag...
    bad_predicate = SrvRqst(xid=0xBEEF, language="de-CH", service_type="service:x", predicate="(a")
    error = expect_error(build_message(bad_predicate), ErrorCode.PARSE_ERROR, True)
    assert build_error_reply(error) == build_message(
        SrvRply(xid=0xBEEF, language="de-CH", error_code=ErrorCode.PARSE_ERROR)
    )
    # ...but not a malformed one, which the reply's reader would refuse (issue 12 item 8).
    for tag in ("en_GB", "\u00e9", "x" * 1300, "en-" * 400):
        request = build_message(SrvTypeRqst(xid=1, language=tag))
        error = expect_error(request, ErrorCode.LANGUAGE_NOT_SUPPORTED, True)
        reply = build_error_reply(error)
        assert reply == build_message(
            SrvTypeRply(xid=1, language="en", error_code=ErrorCode.LANGUAGE_NOT_SUPPORTED)
        )
        assert isinstance(parse_message(reply), SrvTypeRply)


@pytest.mark.parametrize(
    ("request_", "reply_type"),
    [
        (SrvRqst(xid=1, service_type="service:x"), SrvRply),
        (SrvReg(xid=1, url_entry=UrlEntry("service:x://h", 1), service_type="service:x"), SrvAck),
        (SrvDeReg(xid=1, url_entry=UrlEntry("service:x://h", 1)), SrvAck),
        (AttrRqst(xid=1, url="service:x"), AttrRply),
        (SrvTypeRqst(xid=1), SrvTypeRply),
    ],
    ids=lambda value: getattr(value, "__name__", type(value).__name__),
)
def test_error_reply_for_each_request(request_: Message, reply_type: type[Message]) -> None:
    reply = error_reply(replace(request_, xid=77, language="fr"), ErrorCode.SCOPE_NOT_SUPPORTED)
    assert type(reply) is reply_type
    assert (reply.xid, reply.language) == (77, "fr")
    assert reply.function == REPLY_FUNCTION[request_.function]
    assert parse_message(build_message(reply)) == reply


def test_error_reply_refuses_replies() -> None:
    with pytest.raises(ValueError):
        error_reply(SrvAck(xid=1), ErrorCode.PARSE_ERROR)


@pytest.mark.parametrize(
    "registration",
    [
        replace(REGISTRATION, url_entry=UrlEntry(ISCSI_URL, 0)),  # RFC 2608 7: zero lifetime
        replace(REGISTRATION, url_entry=UrlEntry("", 900)),
        replace(REGISTRATION, url_entry=UrlEntry("not a url", 900)),
        replace(REGISTRATION, url_entry=UrlEntry("service:iscsi:target", 900)),
        replace(REGISTRATION, url_entry=UrlEntry("service://192.0.2.1", 900)),
        replace(REGISTRATION, url_entry=UrlEntry("service:x://a\x01b", 900)),
        replace(REGISTRATION, service_type=""),
        replace(REGISTRATION, attr_list="(x=4,true,sue,\\ff\\00\\00)"),  # RFC 2608 5
        replace(REGISTRATION, attr_list="(portal-group=1,two)"),
        replace(REGISTRATION, attr_list="(b=true,false)"),
    ],
)
def test_invalid_registration(registration: SrvReg) -> None:
    error = expect_error(build_message(registration), ErrorCode.INVALID_REGISTRATION, True)
    assert parse_message(build_error_reply(error) or b"") == SrvAck(
        xid=REGISTRATION.xid, error_code=ErrorCode.INVALID_REGISTRATION
    )


@pytest.mark.parametrize(
    "attr_list", ["(a=\\2)", "(a=\\zz)", "(a=\\41)", "(a=b", "(a=b=c)", "a_b", "(a=1),"]
)
def test_registration_with_malformed_attr_list_is_a_parse_error(attr_list: str) -> None:
    # RFC 2608 5: a bad escape is PARSE_ERROR; INVALID_REGISTRATION is for bad content.
    expect_error(
        build_message(replace(REGISTRATION, attr_list=attr_list)), ErrorCode.PARSE_ERROR, True
    )


@pytest.mark.parametrize(
    "wire",
    [
        # RFC 2608 8.1: the service type is required
        header(1, s("") + s("") + s("DEFAULT") + s("") + s(""), xid=1),
        # a literal reserved `;` in a scope, and a `,` in a single SPI (6.4.1)
        header(1, s("") + s("service:x") + s("a;b") + s("") + s(""), xid=1),
        header(1, s("") + s("service:x") + s("DEFAULT") + s("") + s("a,b"), xid=1),
        # `_` is a bad-tag character; tag lists take no escapes (5, 9.4)
        header(6, s("") + s("service:x") + s("DEFAULT") + s("a_b") + s(""), xid=1),
        header(4, s("DEFAULT") + url_entry("service:x://h", 0) + s("a\\2cb"), xid=1),
        header(9, s("") + s("") + s("DEFAULT,,x"), xid=1),
        # attribute lists are checked wherever they appear
        header(7, u16(0) + s("(a=\\4") + u8(0), xid=1),
        header(
            8,
            u16(0) + u32(1) + s("service:directory-agent://h") + s("D") + s("(a=1") + s("") + u8(0),
            xid=0,
        ),
        header(11, s("service:service-agent://h") + s("D") + s("x*") + u8(0), xid=0),
        header(10, u16(0) + s("a,,b"), xid=1),
    ],
)
def test_body_content_errors(wire: bytes) -> None:
    expect_error(wire, ErrorCode.PARSE_ERROR, is_unicast_request(wire))


@pytest.mark.parametrize("flags", [Flags.NONE, Flags.REQUEST_MCAST])
def test_bad_predicate_is_answered_like_any_parse_error(flags: Flags) -> None:
    request = SrvRqst(xid=5, flags=flags, service_type="service:x", predicate="(a>=b*)")
    error = expect_error(build_message(request), ErrorCode.PARSE_ERROR, not flags)
    assert build_error_reply(error) == (
        None if flags else build_message(SrvRply(xid=5, error_code=ErrorCode.PARSE_ERROR))
    )


def test_strings_must_be_utf8() -> None:
    wire = build_message(SrvRqst(xid=1, service_type="service:\u00e9"))
    expect_error(wire.replace("\u00e9".encode(), b"\xe9\xe9"), ErrorCode.PARSE_ERROR, True)


def srvreg_body(entry: bytes, attrs: str = "", tail: bytes = b"\x00") -> bytes:
    return entry + s("service:x") + s("DEFAULT") + s(attrs) + tail


@pytest.mark.parametrize(
    "body",
    [
        srvreg_body(u8(0) + u16(60) + u16(200) + b"service:x://h" + u8(0)),  # URL length past end
        srvreg_body(url_entry("service:x://h", 60, u8(2) + auth_block(2, 0, "s", b"d"))),
        srvreg_body(url_entry("service:x://h", 60, u8(1) + u16(2) + u16(9) + u32(0) + s("s"))),
        srvreg_body(url_entry("service:x://h", 60, u8(1) + u16(2) + u16(0xFFFF) + u32(0) + s("s"))),
        srvreg_body(
            url_entry("service:x://h", 60, u8(1) + u16(2) + u16(12) + u32(0) + u16(9) + b"s")
        ),
        srvreg_body(url_entry("service:x://h", 60), tail=u8(1)),  # attr auth count, no block
        srvreg_body(url_entry("service:x://h", 60), tail=b""),  # no attr auth count
        url_entry("service:x://h", 60) + s("service:x") + u16(40),  # scope list length past end
    ],
)
def test_lengths_that_run_past_the_message(body: bytes) -> None:
    assert parse_message(header(3, srvreg_body(url_entry("service:x://h", 60)), xid=5))
    expect_error(header(3, body, xid=5), ErrorCode.PARSE_ERROR, True)


def test_url_entry_count_past_the_message() -> None:
    body = u16(0) + u16(3) + url_entry("service:x://h", 60) + url_entry("service:x://i", 60)
    expect_error(header(2, body, xid=5), ErrorCode.PARSE_ERROR, False)


def test_error_replies_carry_their_counts_and_lengths_zero() -> None:
    # OpenSLP and Wireshark read the fields after the code (issue 11 item 6).
    assert build_message(SrvRply(xid=2, error_code=4)) == header(2, u16(4) + u16(0), xid=2)
    assert build_message(SrvTypeRply(xid=2, error_code=4)) == header(10, u16(4) + u16(0), xid=2)
    assert build_message(AttrRply(xid=2, error_code=4)) == header(7, u16(4) + u16(0) + u8(0), xid=2)
    advert = DAAdvert(xid=2, error_code=4, boot_timestamp=9)
    empty = u16(0) + u16(0) + u16(0) + u16(0) + u8(0)  # URL, scopes, attrs, SPIs, auths
    assert build_message(advert) == header(8, u16(4) + u32(9) + empty, xid=2)
    assert build_message(SrvAck(xid=2, error_code=4)) == header(5, u16(4), xid=2)
    # RFC 2608 7: a reply cut after its code, or carrying more, still parses.
    assert parse_message(header(2, u16(4), xid=2)) == SrvRply(
        xid=2, error_code=ErrorCode.SCOPE_NOT_SUPPORTED
    )
    assert parse_message(header(2, u16(4) + u16(3) + b"\x00\x01", xid=2)) == SrvRply(
        xid=2, error_code=ErrorCode.SCOPE_NOT_SUPPORTED
    )
    unnamed = parse_message(header(5, u16(200), xid=2))
    assert isinstance(unnamed, SrvAck) and unnamed.error_code == 200


@pytest.mark.parametrize(
    ("authority", "wire"), [(None, u16(0xFFFF)), ("", u16(0)), ("x-corp", s("x-corp"))]
)
def test_naming_authority(authority: str | None, wire: bytes) -> None:
    # RFC 2608 10.1: 0xFFFF means every naming authority, empty means IANA only.
    message = SrvTypeRqst(xid=1, naming_authority=authority)
    assert build_message(message) == header(9, s("") + wire + s(""), xid=1)
    assert parse_message(build_message(message)) == message


def with_extensions(message: Message, chain: bytes, first: int) -> bytes:
    wire = build_message(message) + chain
    return with_length(wire[:7] + u24(first) + wire[10:], len(wire))


def test_extension_chain_golden() -> None:
    ack = SrvAck(xid=7, extensions=(Extension(0x0001, b"xy"), Extension(0x8000)))
    base = header(5, u16(0), xid=7)  # 18 bytes; extensions at 18 and 25
    chain = u16(0x0001) + u24(25) + b"xy" + u16(0x8000) + u24(0)
    wire = with_extensions(SrvAck(xid=7), chain, len(base))
    assert build_message(ack) == wire
    assert parse_message(wire) == ack
    assert not ack.extensions[0].mandatory and Extension(0x4000).mandatory


@pytest.mark.parametrize(
    "chain_after",
    [
        lambda end: (u16(1) + u24(end), end),  # points at itself: a loop
        lambda end: (u16(1) + u24(end + 7) + b"xy" + u16(1) + u24(end), end),  # a loop back
        lambda end: (u16(1) + u24(0), 10),  # points into the header
        lambda end: (u16(1) + u24(end + 60), end),  # points past the message
        lambda end: (u16(1), end),  # cut short
        lambda end: (b"", end),  # at the very end
        lambda end: (u16(1) + u24(0), end + 1),  # tears the body
    ],
)
def test_bad_extension_offsets(chain_after: Callable[[int], tuple[bytes, int]]) -> None:
    for message in (SrvAck(xid=7), SrvTypeRqst(xid=7)):
        chain, first = chain_after(len(build_message(message)))
        wire = with_extensions(message, chain, first)
        expect_error(wire, ErrorCode.PARSE_ERROR, is_unicast_request(wire))


def test_mandatory_extension_is_not_understood() -> None:
    # RFC 2608 9.1: an unknown extension in 0x4000-0x7FFF makes a request fail.
    request = SrvRqst(xid=1, service_type="service:x", extensions=(Extension(0x4001, b"?"),))
    error = expect_error(build_message(request), ErrorCode.OPTION_NOT_UNDERSTOOD, True)
    assert parse_message(build_error_reply(error) or b"") == SrvRply(
        xid=1, error_code=ErrorCode.OPTION_NOT_UNDERSTOOD
    )


def test_message_length_frames_a_stream() -> None:
    wire = GOLDEN[0][1]
    assert message_length(wire[:4]) is None
    assert message_length(wire[:5]) == len(wire)
    with pytest.raises(SlpParseError) as caught:
        message_length(b"\x01\x01\x00\x00\x40")
    assert caught.value.code == ErrorCode.VER_NOT_SUPPORTED
    with pytest.raises(SlpParseError):
        message_length(b"\x02\x01\x00\x00\x0d")


def test_build_refuses_what_the_layout_cannot_carry() -> None:
    for bad in (
        SrvAck(xid=0x10000),
        SrvRply(url_entries=(UrlEntry("x", 0x10000),)),
        SrvRqst(service_type="x" * 0x10000),
        SrvTypeRqst(naming_authority="x" * 0xFFFF),
        SrvRqst(service_type="x", scopes=("",)),
        SrvRqst(service_type="x", pr_list=("1.2.3.4,5.6.7.8",)),
        SrvDeReg(url_entry=UrlEntry("x", 1), tag_list=("a_b",)),
        AttrRply(auth_blocks=(AuthBlock(2, 0, "", b"x" * 0xFFFF),)),
        SrvAck(extensions=(Extension(0x10000),)),
    ):
        with pytest.raises(ValueError):
            build_message(bad)


ENTRIES = tuple(
    UrlEntry(f"service:iscsi:target://192.0.2.{n}:3260/iqn.x:{n}", 900) for n in range(40)
)


def test_fit_to_budget_keeps_whole_entries_and_sets_overflow() -> None:
    reply = SrvRply(xid=9, url_entries=ENTRIES)
    full = len(build_message(reply))
    assert fit_to_budget(reply, full) == reply
    for budget in (full - 1, 1400, 600, 100, 30):
        fitted = fit_to_budget(reply, budget)
        wire = build_message(fitted)
        kept = len(fitted.url_entries)
        assert fitted.url_entries == ENTRIES[:kept] and kept < len(ENTRIES)
        assert fitted.flags & Flags.OVERFLOW
        assert len(wire) <= budget or kept == 0
        one_more = replace(fitted, url_entries=ENTRIES[: kept + 1])
        assert len(build_message(one_more)) > budget
        assert parse_message(wire) == fitted
    assert fit_to_budget(SrvRply(xid=9), 10) == SrvRply(xid=9)


def test_cve_2019_5544_shape_oversized_url_auth_block() -> None:
    """CVE-2019-5544: a SrvReg whose URL entry carries a 4 KiB auth block (SPI length
    0x0ff6). OpenSLP stored the whole entry but sized later SrvRply buffers from the URL
    length alone, so answering a SrvRqst overflowed the heap. Here the block is framed
    exactly, and reply sizing counts every byte an entry will take on the wire."""
    entry = url_entry(
        "http://192.0.2.9", 0x1000, u8(1) + auth_block(0, 0x01010101, "y" * 0xFF6, b"")
    )
    body = srvreg_body(entry, attrs="pppppppppp")
    exact = header(3, body, xid=0x660D)
    # The published trigger's length field claims two bytes more than it sends.
    expect_error(with_length(exact, len(exact) + 2), ErrorCode.PARSE_ERROR, True)
    registration = parse_message(exact)
    assert isinstance(registration, SrvReg)
    (block,) = registration.url_entry.auth_blocks
    assert (block.bsd, block.spi, block.data) == (0, "y" * 0xFF6, b"")
    reply = SrvRply(xid=1, url_entries=(registration.url_entry,) * 3)
    fitted = fit_to_budget(reply, 1400)
    assert fitted.url_entries == () and fitted.flags & Flags.OVERFLOW
    fitted = fit_to_budget(reply, 9000)
    assert len(fitted.url_entries) == 2 and len(build_message(fitted)) <= 9000

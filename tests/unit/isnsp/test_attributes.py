"""Attribute TLVs: every typed attribute round-trips; malformed values are rejected."""

from ipaddress import IPv4Address, IPv6Address

import pytest

from isns_server.isnsp import (
    ATTRIBUTE_SPECS,
    Attribute,
    AttrValue,
    MessageFormatError,
    PortNumber,
    Status,
    Tag,
    ValueKind,
    decode_attributes,
    encode_attribute,
    encode_attributes,
    spec_for,
)

SAMPLES: dict[ValueKind, AttrValue] = {
    ValueKind.TEXT: "iqn.2026-11.org.example:disk1",
    ValueKind.U32: 0xDEADBEEF,
    ValueKind.U64: 0x2000_0000_C912_3456,
    ValueKind.IP_ADDRESS: IPv6Address("2001:db8::1"),
    ValueKind.PORT: PortNumber(3260),
    ValueKind.OPAQUE: b"\x30\x82\x01\x0a",
}


def sample(tag: int) -> AttrValue:
    spec = spec_for(tag)
    if spec.kind is ValueKind.OPAQUE and spec.size is not None:
        return bytes(range(spec.size))
    return SAMPLES[spec.kind]


def tlv(tag: int, value: bytes) -> bytes:
    return tag.to_bytes(4, "big") + len(value).to_bytes(4, "big") + value


TYPED_TAGS = [tag for tag, spec in ATTRIBUTE_SPECS.items() if spec.kind is not ValueKind.DELIMITER]


@pytest.mark.parametrize("tag", TYPED_TAGS, ids=lambda t: Tag(t).name)
def test_every_typed_attribute_round_trips(tag: int) -> None:
    attr = Attribute(tag, sample(tag))
    encoded = encode_attribute(attr)
    assert len(encoded) % 4 == 0
    assert decode_attributes(encoded) == (attr,)


@pytest.mark.parametrize("tag", [*ATTRIBUTE_SPECS, 300, 1600, 5000], ids=str)
def test_zero_length_tlv_is_none(tag: int) -> None:
    assert encode_attribute(Attribute(tag)) == tlv(tag, b"")
    assert decode_attributes(tlv(tag, b"")) == (Attribute(tag, None),)


def test_iscsi_attributes_have_their_rfc_types() -> None:
    kinds = {tag: spec_for(tag).kind for tag in Tag}
    assert kinds[Tag.ENTITY_IDENTIFIER] is ValueKind.TEXT
    assert kinds[Tag.TIMESTAMP] is ValueKind.U64
    assert kinds[Tag.WWNN_TOKEN] is ValueKind.U64
    assert kinds[Tag.PROTOCOL_VERSION_RANGE] is ValueKind.U32
    assert kinds[Tag.MGMT_IP_ADDRESS] is ValueKind.IP_ADDRESS
    for port_tag in (
        Tag.PORTAL_TCP_UDP_PORT,
        Tag.ESI_PORT,
        Tag.SCN_PORT,
        Tag.PG_PORTAL_TCP_UDP_PORT,
        Tag.DD_MEMBER_PORTAL_TCP_UDP_PORT,
    ):
        assert kinds[port_tag] is ValueKind.PORT
    for opaque in (Tag.ENTITY_CERTIFICATE, Tag.PORTAL_ISAKMP_PHASE_2, 700, 2100):
        assert spec_for(opaque).kind is ValueKind.OPAQUE
    assert spec_for(Tag.ISCSI_NAME).size == 224
    assert spec_for(Tag.ISCSI_ALIAS).size == 256


def test_text_is_nul_terminated_and_padded() -> None:
    assert encode_attribute(Attribute(Tag.ENTITY_IDENTIFIER, "abc")) == tlv(1, b"abc\0")
    assert encode_attribute(Attribute(Tag.ENTITY_IDENTIFIER, "abcd")) == tlv(1, b"abcd\0\0\0\0")
    assert encode_attribute(Attribute(Tag.ENTITY_IDENTIFIER, "")) == tlv(1, b"\0\0\0\0")
    assert decode_attributes(tlv(1, b"\0\0\0\0")) == (Attribute(1, ""),)
    # UTF-8, counted in bytes
    assert decode_attributes(tlv(34, "dépôt".encode() + b"\0")) == (Attribute(34, "dépôt"),)


def test_ipv4_is_carried_mapped() -> None:
    encoded = encode_attribute(Attribute(Tag.PORTAL_IP_ADDRESS, IPv4Address("192.0.2.10")))
    assert encoded == tlv(16, bytes(10) + b"\xff\xff\xc0\x00\x02\x0a")
    (attr,) = decode_attributes(encoded)
    assert attr.value == IPv4Address("192.0.2.10")
    (attr,) = decode_attributes(tlv(16, IPv6Address("::1").packed))
    assert attr.value == IPv6Address("::1")


def test_port_udp_bit() -> None:
    encoded = encode_attribute(Attribute(Tag.SCN_PORT, PortNumber(3205, udp=True)))
    assert encoded == tlv(23, b"\x00\x01\x0c\x85")
    assert decode_attributes(encoded) == (Attribute(23, PortNumber(3205, True)),)
    # reserved high bits are ignored
    assert decode_attributes(tlv(17, b"\xff\xfe\x0c\xbc")) == (Attribute(17, PortNumber(3260)),)


def test_unknown_and_vendor_tags_are_opaque_bytes() -> None:
    data = tlv(1600, b"\x00\x11\x22\x33\x44\x55\x66\x77") + tlv(9999, b"abcd")
    assert decode_attributes(data) == (
        Attribute(1600, b"\x00\x11\x22\x33\x44\x55\x66\x77"),
        Attribute(9999, b"abcd"),
    )
    assert encode_attributes(decode_attributes(data)) == data
    # opaque values are zero-padded on the way out
    assert encode_attribute(Attribute(12, b"\x01\x02")) == tlv(12, b"\x01\x02\0\0")


def test_longest_iscsi_name_fits_and_one_more_byte_does_not() -> None:
    name = "iqn.2026-11.org.example:" + "x" * (223 - 24)
    assert len(name) == 223
    encoded = encode_attribute(Attribute(Tag.ISCSI_NAME, name))
    assert len(encoded) == 8 + 224
    assert decode_attributes(encoded) == (Attribute(32, name),)
    with pytest.raises(ValueError, match="ISCSI_NAME"):
        encode_attribute(Attribute(Tag.ISCSI_NAME, name + "x"))
    with pytest.raises(MessageFormatError, match="more than the 224"):
        decode_attributes(tlv(32, (name + "x").encode() + b"\0\0\0\0"))


MALFORMED = {
    "truncated header": (b"\x00\x00\x00\x20\x00\x00", "truncated attribute"),
    "length past end": (tlv(32, b"abc\0")[:-4], "runs past the end"),
    "length not aligned": (tlv(32, b"ab\0"), "not a multiple of 4"),
    "u32 of 8 bytes": (tlv(2, bytes(8)), "must be 4"),
    "u64 of 4 bytes": (tlv(4, bytes(4)), "must be 8"),
    "short address": (tlv(16, bytes(4)), "must be 16"),
    "port of 8 bytes": (tlv(17, bytes(8)), "must be 4"),
    "fixed opaque": (tlv(72, bytes(16)), "must be 32"),
    "no NUL": (tlv(1, b"abcd"), "not NUL-terminated"),
    "inner NUL": (tlv(1, b"ab\0d\0\0\0\0"), "NUL byte before its end"),
    "bad UTF-8": (tlv(34, b"\xff\xfe\0\0"), "not valid UTF-8"),
    "alias too long": (tlv(34, b"a" * 259 + b"\0"), "more than the 256"),
    "delimiter with value": (tlv(0, bytes(4)), "must be 0"),
}


@pytest.mark.parametrize("case", MALFORMED, ids=str)
def test_malformed_tlvs_are_message_format_errors(case: str) -> None:
    data, message = MALFORMED[case]
    with pytest.raises(MessageFormatError, match=message) as info:
        decode_attributes(tlv(33, b"\0\0\0\x01") + data)
    assert info.value.status is Status.MESSAGE_FORMAT_ERROR
    assert not info.value.fatal
    assert "offset 12" in str(info.value)


def test_error_names_the_tag() -> None:
    with pytest.raises(MessageFormatError, match=r"ISCSI_ALIAS \(34\)"):
        decode_attributes(tlv(34, b"\xff\0\0\0"))


@pytest.mark.parametrize(
    ("attr", "error"),
    [
        (Attribute(Tag.ISCSI_NAME, 5), TypeError),
        (Attribute(Tag.ISCSI_NAME, "a\0b"), ValueError),
        (Attribute(Tag.ENTITY_PROTOCOL, "2"), TypeError),
        (Attribute(Tag.ENTITY_PROTOCOL, 1 << 32), ValueError),
        (Attribute(Tag.ENTITY_PROTOCOL, -1), ValueError),
        (Attribute(Tag.TIMESTAMP, 1 << 64), ValueError),
        (Attribute(Tag.PORTAL_IP_ADDRESS, "10.0.0.1"), TypeError),
        (Attribute(Tag.PORTAL_TCP_UDP_PORT, 3260), TypeError),
        (Attribute(Tag.PORTAL_TCP_UDP_PORT, PortNumber(70000)), ValueError),
        (Attribute(Tag.ENTITY_CERTIFICATE, "pem"), TypeError),
        (Attribute(Tag.FC4_FEATURES, bytes(4)), ValueError),
        (Attribute(Tag.DELIMITER, 0), ValueError),
    ],
    ids=repr,
)
def test_encoding_a_value_the_tag_cannot_carry(attr: Attribute, error: type[Exception]) -> None:
    with pytest.raises(error, match="cannot encode"):
        encode_attribute(attr)


def test_repeated_tlvs_decode_equal() -> None:
    # exercised twice so the second pass goes through the decoded-TLV memo
    data = encode_attributes([Attribute(Tag.ISCSI_NODE_TYPE, 2), Attribute(Tag.ESI_PORT, None)])
    first = decode_attributes(data)
    assert decode_attributes(data) == first == (Attribute(33, 2), Attribute(20, None))

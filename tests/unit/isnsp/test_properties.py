"""Property tests: encode -> decode is the identity; garbage only ever raises
MessageFormatError."""

import random
from ipaddress import IPv4Address, IPv6Address

from hypothesis import given, settings
from hypothesis import strategies as st

from isns_server.isnsp import (
    ATTRIBUTE_SPECS,
    Attribute,
    AttrValue,
    DatagramDecoder,
    Flags,
    FunctionId,
    Message,
    MessageFormatError,
    PortNumber,
    Status,
    StreamDecoder,
    ValueKind,
    encode_message,
)
from isns_server.isnsp.attributes import encode_tlvs
from isns_server.isnsp.pdu import HEADER

TEXT_CHARS = st.characters(codec="utf-8", exclude_characters="\0")


def not_v4_mapped(address: IPv4Address | IPv6Address) -> bool:
    return not (isinstance(address, IPv6Address) and address.ipv4_mapped)


def values(kind: ValueKind, size: int | None) -> st.SearchStrategy[AttrValue]:
    if kind is ValueKind.TEXT:
        limit = (size or 1024) - 1  # room for the NUL
        return st.text(TEXT_CHARS, max_size=40).filter(lambda s: len(s.encode()) < limit)
    if kind is ValueKind.U32:
        return st.integers(0, 2**32 - 1)
    if kind is ValueKind.U64:
        return st.integers(0, 2**64 - 1)
    if kind is ValueKind.IP_ADDRESS:
        return st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6).filter(not_v4_mapped))
    if kind is ValueKind.PORT:
        return st.builds(PortNumber, st.integers(0, 0xFFFF), st.booleans())
    if size is not None:
        return st.binary(min_size=size, max_size=size)
    # b"" would be a zero-length TLV, which decodes as None
    return st.binary(min_size=1, max_size=40).map(lambda b: b + bytes(-len(b) % 4))


TYPED = {tag: spec for tag, spec in ATTRIBUTE_SPECS.items() if spec.kind is not ValueKind.DELIMITER}
OTHER_TAGS = st.integers(1, 2**32 - 1).filter(lambda t: t not in ATTRIBUTE_SPECS)


@st.composite
def attributes(draw: st.DrawFn) -> Attribute:
    tag = draw(st.one_of(st.sampled_from(sorted(TYPED)), OTHER_TAGS))
    spec = TYPED.get(tag)
    kind, size = (spec.kind, spec.size) if spec else (ValueKind.OPAQUE, None)
    value = draw(st.one_of(st.none(), values(kind, size)))
    return Attribute(tag, value)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    function = draw(
        st.one_of(
            st.sampled_from([f for f in FunctionId if f is not FunctionId.HEARTBEAT]),
            st.integers(0, 0xFFFF).filter(lambda f: f != FunctionId.HEARTBEAT),
        )
    )
    flags = Flags(draw(st.sampled_from([0x8000, 0x4000, 0x9000, 0])))
    attrs = tuple(draw(st.lists(st.one_of(attributes(), st.just(Attribute(0))), max_size=12)))
    status = None
    if function & 0x8000:
        status = draw(st.one_of(st.sampled_from(Status), st.integers(0, 2**32 - 1)))
    return Message(function, draw(st.integers(0, 0xFFFF)), flags, attrs, status)


pdu_sizes = st.integers(1, 64).map(lambda n: n * 4)


@settings(max_examples=60, deadline=None)
@given(messages(), pdu_sizes, st.data())
def test_stream_round_trip(message: Message, pdu_size: int, data: st.DataObject) -> None:
    wire = b"".join(encode_message(message, max_pdu_payload=pdu_size))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=5)))
    decoder = StreamDecoder()
    decoded = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        decoder.receive_data(wire[start:end])
        while (out := decoder.next_message()) is not None:
            decoded.append(out)
    assert decoded == [message]
    assert decoder.buffered == 0


@settings(max_examples=60, deadline=None)
@given(messages(), pdu_sizes, st.randoms(use_true_random=False))
def test_datagram_round_trip_in_any_order(
    message: Message, pdu_size: int, rnd: random.Random
) -> None:
    pdus = encode_message(message, max_pdu_payload=pdu_size)
    rnd.shuffle(pdus)
    decoder = DatagramDecoder()
    results = [decoder.receive_datagram(p, "peer") for p in pdus]
    assert results[:-1] == [None] * (len(pdus) - 1)
    assert results[-1] == message
    assert decoder.partial_messages == 0


@settings(max_examples=60, deadline=None)
@given(messages(), pdu_sizes)
def test_pdus_are_cut_inside_an_attribute_only_when_it_is_longer_than_a_pdu(
    message: Message, pdu_size: int
) -> None:
    units = encode_tlvs(message.attributes)
    if message.status is not None:
        units.insert(0, bytes(4))
    ends, spans = {0}, []  # offsets where a unit ends; (start, end) of units too long
    offset = 0
    for unit in units:
        if len(unit) > pdu_size:
            spans.append((offset, offset + len(unit)))
        offset += len(unit)
        ends.add(offset)
    cut = 0
    for pdu in encode_message(message, max_pdu_payload=pdu_size):
        cut += len(pdu) - HEADER.size
        assert cut in ends or any(start < cut < end for start, end in spans)


def test_addresses_come_back_with_their_family() -> None:
    for address in (IPv4Address("10.1.2.3"), IPv6Address("fe80::1")):
        message = Message(FunctionId.DEV_ATTR_REG, 1, attributes=(Attribute(16, address),))
        decoder = DatagramDecoder()
        (wire,) = encode_message(message)
        decoded = decoder.receive_datagram(wire, "peer")
        assert decoded is not None
        assert type(decoded.attributes[0].value) is type(address)


@st.composite
def plausible_pdus(draw: st.DrawFn) -> bytes:
    """Mostly-valid headers with arbitrary payloads, to get past framing into the TLVs."""
    payload = draw(st.binary(max_size=64))
    length = draw(st.one_of(st.just(len(payload)), st.integers(0, 0xFFFF)))
    header = HEADER.pack(
        draw(st.sampled_from([1, 1, 1, 2])),
        draw(st.sampled_from([1, 2, 0x8002, 0x000E, 0x4242])),
        length,
        draw(st.integers(0, 0xFFFF)),
        draw(st.integers(0, 3)),
        draw(st.integers(0, 3)),
    )
    return header + payload


garbage = st.lists(st.one_of(st.binary(max_size=40), plausible_pdus()), max_size=8)


@settings(max_examples=100, deadline=None)
@given(garbage)
def test_stream_decoder_only_raises_format_errors(chunks: list[bytes]) -> None:
    decoder = StreamDecoder(max_message_size=256, max_partial_messages=2)
    for chunk in chunks:
        decoder.receive_data(chunk)
        while True:
            try:
                if decoder.next_message() is None:
                    break
            except MessageFormatError as exc:
                if exc.fatal:
                    return
                assert isinstance(exc.status, Status)


@settings(max_examples=100, deadline=None)
@given(garbage)
def test_datagram_decoder_only_raises_format_errors(datagrams: list[bytes]) -> None:
    decoder = DatagramDecoder(max_message_size=256, max_partial_messages=2)
    for datagram in datagrams:
        try:
            decoder.receive_datagram(datagram, "peer")
        except MessageFormatError as exc:
            assert str(exc)
        assert decoder.partial_messages <= 2

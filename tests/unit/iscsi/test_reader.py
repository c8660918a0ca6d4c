"""PduReader on bad input, negotiated settings and the zero-copy receive path."""

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isns_server.portal.iscsi import (
    DataDigestError,
    DataOut,
    DataSegmentTooLongError,
    HeaderDigestError,
    IscsiError,
    LoginRequest,
    NopOut,
    Pdu,
    PduFormatError,
    PduReader,
    ScsiCommand,
    UnsupportedOpcodeError,
    encode_pdu,
)
from isns_server.portal.iscsi.constants import RejectReason

from .strategies import any_pdu


def _wire(pdu: Pdu, header_digest: bool = False, data_digest: bool = False) -> bytes:
    return b"".join(encode_pdu(pdu, header_digest, data_digest))


def _drain(reader: PduReader) -> list[Pdu]:
    pdus = []
    while (pdu := reader.next_pdu()) is not None:
        pdus.append(pdu)
    return pdus


def test_truncated_bhs_waits_for_more() -> None:
    wire = _wire(NopOut(itt=1, data=b"ping"))
    reader = PduReader()
    for byte in wire[:-1]:
        reader.receive_data(bytes([byte]))
        assert reader.next_pdu() is None
    reader.receive_data(wire[-1:])
    assert reader.next_pdu() == NopOut(itt=1, data=b"ping")
    assert reader.next_pdu() is None


def test_ahs_length_running_past_total_ahs_length_is_fatal() -> None:
    header = bytearray(_wire(ScsiCommand()))
    header[4] = 1  # one word of AHS ...
    ahs = bytes.fromhex("0005 01 00")  # ... claiming 5 bytes
    reader = PduReader()
    reader.receive_data(bytes(header) + ahs)
    with pytest.raises(PduFormatError) as caught:
        reader.next_pdu()
    assert caught.value.fatal
    assert caught.value.header == bytes(header) + ahs
    with pytest.raises(PduFormatError):  # the reader stays failed
        reader.next_pdu()


def test_oversize_data_segment_is_refused_before_it_arrives() -> None:
    wire = _wire(DataOut(itt=9, data=bytes(8193)))
    reader = PduReader()
    reader.receive_data(wire[:48])
    with pytest.raises(DataSegmentTooLongError) as caught:
        reader.next_pdu()
    assert (caught.value.length, caught.value.limit) == (8193, 8192)
    assert caught.value.fatal
    assert caught.value.header == wire[:48]


def test_limit_is_the_negotiated_one() -> None:
    reader = PduReader()
    reader.max_recv_data_segment_length = 262144
    reader.receive_data(_wire(DataOut(data=bytes(262144))))
    assert reader.next_pdu() == DataOut(data=bytes(262144))


def test_header_digest_error_is_fatal() -> None:
    wire = bytearray(_wire(NopOut(itt=5), header_digest=True))
    wire[20] ^= 0x01
    reader = PduReader(header_digest=True)
    reader.receive_data(bytes(wire) + _wire(NopOut(), header_digest=True))
    with pytest.raises(HeaderDigestError) as caught:
        reader.next_pdu()
    assert caught.value.fatal
    assert caught.value.reject_reason is None
    assert caught.value.header == bytes(wire[:48])
    with pytest.raises(HeaderDigestError):
        reader.next_pdu()


@pytest.mark.parametrize("flip", [48, 48 + 4095, 48 + 4096])  # data, last data byte, digest
def test_data_digest_error_skips_one_pdu(flip: int) -> None:
    bad = DataOut(final=True, itt=7, ttt=3, datasn=2, buffer_offset=8192, data=os.urandom(4096))
    wire = bytearray(_wire(bad, data_digest=True))
    wire[flip] ^= 0x80
    reader = PduReader(data_digest=True)
    reader.receive_data(bytes(wire) + _wire(NopOut(itt=1, data=b"x"), data_digest=True))
    with pytest.raises(DataDigestError) as caught:
        reader.next_pdu()
    error = caught.value
    assert not error.fatal
    assert error.reject_reason == RejectReason.DATA_DIGEST_ERROR
    assert error.header == bytes(wire[:48])
    assert isinstance(error.pdu, DataOut)
    assert (error.pdu.itt, error.pdu.ttt, error.pdu.datasn) == (7, 3, 2)
    assert error.pdu.buffer_offset == 8192
    assert reader.next_pdu() == NopOut(itt=1, data=b"x")


def test_no_data_digest_without_data() -> None:
    reader = PduReader(data_digest=True)
    reader.receive_data(_wire(NopOut(), data_digest=True))
    assert len(_wire(NopOut(), data_digest=True)) == 48
    assert reader.next_pdu() == NopOut()


@pytest.mark.parametrize("opcode", [0x07, 0x1C, 0x3E])
def test_unknown_opcode_is_framed_skipped_and_reported(opcode: int) -> None:
    wire = bytearray(_wire(NopOut(data=b"vendor data")))
    wire[0] = 0x40 | opcode
    reader = PduReader()
    reader.receive_data(bytes(wire) + _wire(NopOut(itt=2)))
    with pytest.raises(UnsupportedOpcodeError) as caught:
        reader.next_pdu()
    assert caught.value.opcode == opcode
    assert caught.value.reject_reason == RejectReason.COMMAND_NOT_SUPPORTED
    assert caught.value.header == bytes(wire[:48])
    assert reader.next_pdu() == NopOut(itt=2)


def test_digest_settings_apply_from_the_next_pdu() -> None:
    login = LoginRequest(transit=True, csg=1, nsg=3, data=b"HeaderDigest=CRC32C\0")
    first_ffp = ScsiCommand(itt=1, data=b"immediate")
    reader = PduReader()
    reader.receive_data(_wire(login) + _wire(first_ffp, header_digest=True, data_digest=True))
    assert reader.next_pdu() == login
    reader.header_digest = reader.data_digest = True  # the final Login Response went out
    assert reader.next_pdu() == first_ffp


def test_large_payload_arrives_in_pieces() -> None:
    payload = os.urandom(256 * 1024)
    pdus = [DataOut(itt=n, datasn=n, data=payload) for n in range(4)]
    wire = b"".join(_wire(p, data_digest=True) for p in pdus)
    reader = PduReader(data_digest=True, max_recv_data_segment_length=len(payload))
    received = []
    for start in range(0, len(wire), 65536):
        reader.receive_data(memoryview(wire)[start : start + 65536])
        received += _drain(reader)
    assert received == pdus
    assert isinstance(received[0].data, memoryview) and received[0].data.readonly


LONG_PAYLOAD = os.urandom(60_000)  # long enough for get_buffer() to lend it out


@settings(max_examples=40, deadline=None)
@given(
    st.lists(any_pdu, min_size=1, max_size=3),
    st.booleans(),
    st.lists(st.integers(1000, 100_000), min_size=1, max_size=10),
)
def test_buffered_protocol_path(pdus: list[Pdu], digests: bool, reads: list[int]) -> None:
    pdus.append(DataOut(itt=1, data=LONG_PAYLOAD))
    wire = b"".join(_wire(p, digests, digests) for p in pdus)
    reader = PduReader(
        header_digest=digests, data_digest=digests, max_recv_data_segment_length=len(LONG_PAYLOAD)
    )
    received: list[Pdu] = []
    position, turn = 0, 0
    while position < len(wire):  # what asyncio's recv_into loop does
        buffer = reader.get_buffer(-1)
        size = min(len(buffer), len(wire) - position, reads[turn % len(reads)])
        buffer[:size] = wire[position : position + size]
        reader.buffer_updated(size)
        position, turn = position + size, turn + 1
        received += _drain(reader)
    assert received == pdus


def _mutated_streams() -> st.SearchStrategy[bytes]:
    """Valid PDU streams with bytes overwritten, cut short or extended with noise."""

    def mutate(wire: bytes, edits: list[tuple[int, int]], cut: int, noise: bytes) -> bytes:
        damaged = bytearray(wire)
        for index, value in edits:
            damaged[index % len(damaged)] = value
        return bytes(damaged[: max(1, len(damaged) - cut)]) + noise

    streams = st.lists(any_pdu, min_size=1, max_size=3).map(
        lambda pdus: b"".join(_wire(p) for p in pdus)
    )
    return st.builds(
        mutate,
        streams,
        st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
        st.integers(0, 60),
        st.binary(max_size=200),
    )


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(st.binary(max_size=2000), _mutated_streams()),
    st.booleans(),
    st.booleans(),
    st.integers(1, 97),
)
def test_arbitrary_bytes_raise_only_codec_errors(
    wire: bytes, header_digest: bool, data_digest: bool, chunk: int
) -> None:
    reader = PduReader(header_digest=header_digest, data_digest=data_digest)
    for start in range(0, len(wire), chunk):
        reader.receive_data(wire[start : start + chunk])
        while True:
            try:
                if reader.next_pdu() is None:
                    break
            except IscsiError as error:
                if error.fatal:
                    return

"""Every PDU type survives encode -> PduReader, whatever the digests and TCP segmentation."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isns_server.portal.iscsi import (
    Ahs,
    DataOut,
    LoginRequest,
    Pdu,
    PduReader,
    ScsiCommand,
    encode_pdu,
)
from isns_server.portal.iscsi.constants import AhsType, Opcode

from .strategies import ALL_PDU_CLASSES, any_pdu


def _wire(pdus: list[Pdu], header_digest: bool, data_digest: bool) -> bytes:
    return b"".join(b"".join(encode_pdu(p, header_digest, data_digest)) for p in pdus)


def test_every_opcode_has_a_class() -> None:
    assert {cls.OPCODE for cls in ALL_PDU_CLASSES} == set(Opcode)


@settings(max_examples=60, deadline=None)
@given(
    pdus=st.lists(any_pdu, min_size=1, max_size=3),
    header_digest=st.booleans(),
    data_digest=st.booleans(),
    cuts=st.lists(st.integers(1, 700), max_size=8),
)
def test_roundtrip_through_reader(
    pdus: list[Pdu], header_digest: bool, data_digest: bool, cuts: list[int]
) -> None:
    wire = _wire(pdus, header_digest, data_digest)
    reader = PduReader(header_digest=header_digest, data_digest=data_digest)
    received: list[Pdu] = []
    position = 0
    for size in [*cuts, len(wire)]:
        reader.receive_data(wire[position : position + size])
        position += size
        while (pdu := reader.next_pdu()) is not None:
            received.append(pdu)
    assert received == pdus
    assert _wire(received, header_digest, data_digest) == wire


@settings(max_examples=50, deadline=None)
@given(any_pdu, st.booleans(), st.booleans())
def test_encoded_layout(pdu: Pdu, header_digest: bool, data_digest: bool) -> None:
    parts = encode_pdu(pdu, header_digest, data_digest)
    header = parts[0]
    ahs_length = header[4] * 4
    assert len(header) == 48 + ahs_length + (4 if header_digest else 0)
    assert header[0] & 0x3F == pdu.OPCODE
    assert int.from_bytes(header[5:8], "big") == len(pdu.data)
    if pdu.data:
        assert parts[1] is pdu.data  # passed through, not copied
        trailer = parts[2] if len(parts) > 2 else b""
        assert len(trailer) == -len(pdu.data) % 4 + (4 if data_digest else 0)
    else:
        assert len(parts) == 1


def test_scsi_command_cdb_and_bidi_ahs() -> None:
    cdb32 = bytes(range(32))
    command = ScsiCommand(
        read=True,
        write=True,
        cdb=cdb32[:16],
        ahs=(
            Ahs(AhsType.EXTENDED_CDB, b"\0" + cdb32[16:]),
            Ahs(AhsType.BIDI_READ_DATA_LENGTH, b"\0" + (4096).to_bytes(4, "big")),
        ),
    )
    assert command.full_cdb == cdb32
    assert command.bidi_read_data_length == 4096
    assert ScsiCommand().full_cdb == bytes(16)
    assert ScsiCommand().bidi_read_data_length is None
    header = encode_pdu(command)[0]
    assert header[4] == (20 + 8) // 4  # 3 + 17 bytes, and 3 + 5 padded to 8
    assert struct.unpack_from(">HB", header, 48) == (17, AhsType.EXTENDED_CDB)


@pytest.mark.parametrize(
    "pdu",
    [
        LoginRequest(csg=4),
        LoginRequest(isid=bytes(7)),
        DataOut(itt=1 << 32),
        DataOut(buffer_offset=-1),
        ScsiCommand(attr=8),
        ScsiCommand(ahs=(Ahs(256, b""),)),
        ScsiCommand(ahs=(Ahs(1, bytes(1100)),)),
        DataOut(data=memoryview(bytearray(1 << 24))),
    ],
)
def test_encode_rejects_values_that_do_not_fit(pdu: Pdu) -> None:
    with pytest.raises(ValueError):
        encode_pdu(pdu)


def test_short_cdb_and_isid_are_zero_padded() -> None:
    header = encode_pdu(ScsiCommand(cdb=b"\x12\x00\x00\x00\x24\x00"))[0]
    assert header[32:48] == bytes.fromhex("120000002400") + bytes(10)

"""CRC32C digests against RFC 3720 appendix B.4."""

import pytest

from isns_server.portal.iscsi import PduReader, ScsiCommand, encode_pdu
from isns_server.portal.iscsi.digests import crc32c, data_digest, header_digest

# B.4 "An iSCSI - SCSI Read (10) Command PDU", 48 bytes, and its CRC as listed.
READ10_PDU = bytes.fromhex(
    "01c00000 00000000 00000000 00000000 14000000 00000400 00000014 00000018"
    "28000000 00000000 02000000 00000000"
)
READ10_CRC = bytes.fromhex("563a96d9")


@pytest.mark.parametrize(
    ("data", "crc"),
    [
        (bytes(32), "aa 36 91 8a"),
        (b"\xff" * 32, "43 ab a8 62"),
        (bytes(range(32)), "4e 79 dd 46"),
        (bytes(range(31, -1, -1)), "5c db 3f 11"),
    ],
)
def test_rfc3720_b4_vectors(data: bytes, crc: str) -> None:
    assert header_digest(data) == bytes.fromhex(crc)
    assert data_digest(data) == bytes.fromhex(crc)


def test_rfc3720_b4_read10_header_digest() -> None:
    assert header_digest(READ10_PDU) == READ10_CRC


def test_data_digest_covers_padding() -> None:
    assert data_digest(b"abc", b"\0") == header_digest(b"abc\0")
    assert crc32c(b"def", crc32c(b"abc")) == crc32c(b"abcdef")


def test_read10_pdu_parses_and_reencodes_with_header_digest() -> None:
    reader = PduReader(header_digest=True)
    reader.receive_data(READ10_PDU + READ10_CRC)
    pdu = reader.next_pdu()
    assert pdu == ScsiCommand(
        immediate=False,
        final=True,
        read=True,
        write=False,
        attr=0,
        itt=0x14000000,
        expected_data_transfer_length=0x400,
        cmdsn=0x14,
        expstatsn=0x18,
        cdb=bytes.fromhex("28000000 00000000 02000000 00000000"),
    )
    assert b"".join(encode_pdu(pdu, header_digest=True)) == READ10_PDU + READ10_CRC

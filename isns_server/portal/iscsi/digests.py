"""CRC32C header and data digests (RFC 3720 10.2.3, 12.1; examples in appendix B.4).

The digest goes on the wire least significant byte first: appendix B.4 lists the CRC
of 32 zero bytes, 0x8a9136aa, as the bytes "aa 36 91 8a", and Linux and libiscsi agree.
"""

from crc32c import crc32c as _crc32c

from .constants import DIGEST_LENGTH

Buffer = bytes | bytearray | memoryview


def crc32c(data: Buffer, crc: int = 0) -> int:
    """CRC32C of `data`, continuing from `crc` (the CRC of what came before)."""
    return int(_crc32c(data, crc))


def to_wire(crc: int) -> bytes:
    return crc.to_bytes(DIGEST_LENGTH, "little")


def from_wire(digest: Buffer) -> int:
    return int.from_bytes(digest, "little")


def header_digest(header: Buffer) -> bytes:
    """HeaderDigest=CRC32C over the BHS and any AHS."""
    return to_wire(crc32c(header))


def data_digest(data: Buffer, padding: bytes = b"") -> bytes:
    """DataDigest=CRC32C over the data segment and its padding bytes."""
    return to_wire(crc32c(padding, crc32c(data)))

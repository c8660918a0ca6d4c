"""INQUIRY data (SPC-4 6.6): standard data and the vital product data pages."""

import hashlib
import struct
from dataclasses import dataclass
from enum import IntEnum

from .. import __version__
from .constants import PeripheralDevice, VpdPage

VENDOR = "ISNSSRV"  # T10 vendor identification, 8 bytes space-padded
PRODUCT = "PORTAL DISK"
REVISION = __version__.replace(".", "")[:4]
# Version descriptors (SPC-4 table 29): SAM-5, iSCSI, SPC-4, SBC-3, "no version claimed".
VERSION_DESCRIPTORS = (0x00A0, 0x0960, 0x0460, 0x04C0)
_STANDARD_LENGTH = 96  # through the version descriptors and the reserved bytes after them
_SPC4 = 0x06
_HISUP_FORMAT_2 = 0x12  # HISUP: hierarchical LUNs; response data format 2
_CMDQUE = 0x02
_RMB = 0x80  # removable medium
_ISCSI_PROTOCOL = 0x5  # protocol identifier (SPC-4 7.6.1)


class _CodeSet(IntEnum):
    BINARY = 1
    ASCII = 2
    UTF8 = 3


class _Association(IntEnum):
    LOGICAL_UNIT = 0
    TARGET_PORT = 1
    TARGET_DEVICE = 2


class _Designator(IntEnum):
    T10_VENDOR_ID = 1
    NAA = 3
    RELATIVE_TARGET_PORT = 4
    SCSI_NAME_STRING = 8


@dataclass(frozen=True, slots=True)
class UnitIdentity:
    """Names of one logical unit, stable across restarts: derived from target name and LUN."""

    target_name: str
    portal_group_tag: int
    lun: int

    @property
    def _digest(self) -> bytes:
        return hashlib.sha256(f"{self.target_name}\0{self.lun}".encode()).digest()

    @property
    def serial(self) -> str:
        return self._digest[:8].hex().upper()

    @property
    def naa(self) -> bytes:
        """NAA 3 (locally assigned, SPC-4 7.8.6.6.4): 4 bits of type, 60 of our own."""
        return bytes([0x30 | self._digest[0] & 0x0F]) + self._digest[1:8]

    @property
    def port_name(self) -> str:
        """The SCSI target port name of iSCSI (RFC 3720 appendix E.2)."""
        return f"{self.target_name},t,0x{self.portal_group_tag:04x}"


def standard_inquiry(device: PeripheralDevice, removable: bool) -> bytes:
    data = bytearray(_STANDARD_LENGTH)
    rmb = _RMB if removable else 0
    data[0:8] = bytes([device, rmb, _SPC4, _HISUP_FORMAT_2, _STANDARD_LENGTH - 5, 0, 0, _CMDQUE])
    data[8:36] = f"{VENDOR:<8}{PRODUCT:<16}{REVISION:<4}".encode("ascii")
    struct.pack_into(f">{len(VERSION_DESCRIPTORS)}H", data, 58, *VERSION_DESCRIPTORS)
    return bytes(data)


_NON_ROTATING = struct.pack(">H58x", 1)  # Block Device Characteristics (SBC-3 6.5.2)


def vpd_page(
    page: int,
    identity: UnitIdentity,
    block_limits: bytes,
    provisioning: bytes,
    third_party_copy: bytes,
) -> bytes | None:
    """A VPD page of a direct-access unit, or None for a page it does not have; the
    block pages' bodies come from the block command set."""
    if page == VpdPage.SUPPORTED_PAGES:
        body = bytes(VpdPage)
    elif page == VpdPage.UNIT_SERIAL_NUMBER:
        body = identity.serial.encode("ascii")
    elif page == VpdPage.DEVICE_IDENTIFICATION:
        body = _device_identification(identity)
    elif page == VpdPage.THIRD_PARTY_COPY:
        body = third_party_copy
    elif page == VpdPage.BLOCK_LIMITS:
        body = block_limits
    elif page == VpdPage.BLOCK_DEVICE_CHARACTERISTICS:
        body = _NON_ROTATING
    elif page == VpdPage.LOGICAL_BLOCK_PROVISIONING:
        body = provisioning
    else:
        return None
    return struct.pack(">BBH", PeripheralDevice.DIRECT_ACCESS_BLOCK, page, len(body)) + body


def unit_designators(identity: UnitIdentity) -> set[tuple[int, bytes]]:
    """The unit's own designators, (designator type, value), as EXTENDED COPY matches them."""
    return {(_Designator.NAA, identity.naa), (_Designator.T10_VENDOR_ID, _vendor_id(identity))}


def _vendor_id(identity: UnitIdentity) -> bytes:
    return f"{VENDOR:<8}{identity.serial}".encode("ascii")


def _device_identification(identity: UnitIdentity) -> bytes:
    vendor_id = _vendor_id(identity)
    port = struct.pack(">HH", 0, 1)  # relative target port 1: the portal's only port
    return b"".join(
        (
            _designator(_Designator.NAA, _CodeSet.BINARY, _Association.LOGICAL_UNIT, identity.naa),
            _designator(
                _Designator.T10_VENDOR_ID, _CodeSet.ASCII, _Association.LOGICAL_UNIT, vendor_id
            ),
            _designator(
                _Designator.RELATIVE_TARGET_PORT, _CodeSet.BINARY, _Association.TARGET_PORT, port
            ),
            _designator(
                _Designator.SCSI_NAME_STRING,
                _CodeSet.UTF8,
                _Association.TARGET_PORT,
                _name_string(identity.port_name),
            ),
            _designator(
                _Designator.SCSI_NAME_STRING,
                _CodeSet.UTF8,
                _Association.TARGET_DEVICE,
                _name_string(identity.target_name),
            ),
        )
    )


def _designator(
    kind: _Designator, code_set: _CodeSet, association: _Association, value: bytes
) -> bytes:
    """A designation descriptor (SPC-4 7.8.6.1); port and device ones name the protocol."""
    protocol = 0 if association is _Association.LOGICAL_UNIT else _ISCSI_PROTOCOL
    piv = 0 if association is _Association.LOGICAL_UNIT else 0x80
    header = bytes([protocol << 4 | code_set, piv | association << 4 | kind, 0, len(value)])
    return header + value


def _name_string(name: str) -> bytes:
    """A SCSI name string: UTF-8, NUL-terminated, padded with NULs to a multiple of 4."""
    raw = name.encode() + b"\0"
    return raw + bytes(-len(raw) % 4)

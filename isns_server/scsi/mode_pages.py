"""Mode parameters (SPC-4 7.5, SBC-3 6.4): caching, control, informational exceptions.

Only WCE, the unit's write-back switch, can be changed; every other field reads as its
default and MODE SELECT refuses a different value.
"""

import struct
from enum import IntEnum

from .constants import BLOCK_SIZE
from .sense import invalid_field, invalid_parameter
from .unit import UnitState

ALL_PAGES = 0x3F
_WCE = 0x04
_SWP = 0x08  # control page byte 4: software write protect


class PageControl(IntEnum):
    CURRENT = 0
    CHANGEABLE = 1
    DEFAULT = 2
    SAVED = 3


class ModePage(IntEnum):
    CACHING = 0x08
    CONTROL = 0x0A
    INFORMATIONAL_EXCEPTIONS_CONTROL = 0x1C


def _page(unit: UnitState, page: ModePage, control: PageControl) -> bytes:
    if page is ModePage.CACHING:
        body = bytearray(18)
        if (
            control is PageControl.CHANGEABLE
            or unit.write_cache
            or control is not PageControl.CURRENT
        ):
            body[0] = _WCE
    elif page is ModePage.CONTROL:
        body = bytearray(10)
        if control is not PageControl.CHANGEABLE:
            body[0] = 0x00  # TST 0, D_SENSE 0: fixed-format sense
            body[2] = _SWP if unit.backstore.read_only else 0
            body[6:8] = b"\xff\xff"  # busy timeout period: unlimited
    else:
        body = bytearray(10)
    return bytes([page, len(body)]) + bytes(body)


def mode_pages(unit: UnitState, page_code: int, subpage: int, control: PageControl) -> bytes:
    if subpage not in (0, 0xFF) or (subpage == 0xFF and page_code != ALL_PAGES):
        raise invalid_field()
    if page_code == ALL_PAGES:
        return b"".join(_page(unit, page, control) for page in ModePage)
    if page_code not in ModePage.__members__.values():
        raise invalid_field()
    return _page(unit, ModePage(page_code), control)


def block_descriptor(unit: UnitState, long_lba: bool) -> bytes:
    if long_lba:
        return struct.pack(">Q4xI", unit.block_count, BLOCK_SIZE)
    return struct.pack(">II", min(unit.block_count, 0xFFFFFFFF), BLOCK_SIZE)


def select_pages(unit: UnitState, pages: memoryview) -> None:
    """Apply the pages of a MODE SELECT parameter list (after header and descriptors)."""
    parsed: list[tuple[ModePage, bytes]] = []
    while pages:
        if len(pages) < 2 or pages[0] & 0x40:  # no subpages here
            raise invalid_parameter()
        code, length = pages[0] & 0x3F, pages[1]
        if code not in ModePage.__members__.values() or len(pages) < 2 + length:
            raise invalid_parameter()
        page = ModePage(code)
        body = bytes(pages[2 : 2 + length])
        changeable = _page(unit, page, PageControl.CHANGEABLE)[2:]
        current = _page(unit, page, PageControl.CURRENT)[2:]
        if len(body) != len(current) or any(
            (b ^ c) & ~m for b, c, m in zip(body, current, changeable, strict=True)
        ):
            raise invalid_parameter()
        parsed.append((page, body))
        pages = pages[2 + length :]
    for page, body in parsed:
        if page is ModePage.CACHING:
            unit.write_cache = bool(body[0] & _WCE)

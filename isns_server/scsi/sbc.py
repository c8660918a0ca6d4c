"""Block commands (SBC-3): reads, writes, verification, caching and provisioning.

The LBA and transfer length sit where the CDB's group puts them (SBC-3 5.1), so one
decoder serves READ/WRITE/VERIFY 6, 10, 12 and 16. Reads fill a buffer handed to the
transport as is; writes take the Data-Out buffer as it arrived.
"""

import struct

from .constants import BLOCK_SIZE, AdditionalSense, Opcode, SenseKey, ServiceAction
from .sense import (
    CheckCondition,
    DataBuffer,
    ScsiResult,
    invalid_field,
    invalid_parameter,
    lba_out_of_range,
    write_protected,
)
from .unit import Handler, ScsiRequest, UnitState, field_value

MAX_TRANSFER_BLOCKS = 16384  # 8 MiB: the Block Limits page's MAXIMUM TRANSFER LENGTH
MAX_UNMAP_BLOCKS = 0x100000  # per UNMAP descriptor: 512 MiB
MAX_UNMAP_DESCRIPTORS = 64
MAX_WRITE_SAME_BLOCKS = 0x8000  # 16 MiB: one command should not hold the unit for long
MAX_COMPARE_AND_WRITE_BLOCKS = 255
MAX_ATOMIC_BLOCKS = MAX_TRANSFER_BLOCKS  # one pwrite: no other command runs meanwhile
FILE_SYSTEM_BLOCKS = 8  # 4 KiB: the least optimal transfer and unmap granularity
_FUA = 0x08
_PROTECT = 0xE0  # RDPROTECT/WRPROTECT/VRPROTECT: no protection information here
_UNMAP = 0x08  # WRITE SAME
_NDOB = 0x01  # WRITE SAME (16): no Data-Out buffer, write zeros
_ANCHOR = 0x10
_SAME_CHUNK_BLOCKS = 2048  # WRITE SAME writes its pattern 1 MiB at a time
_LBA_STATUS_DESCRIPTOR = struct.Struct(">QIB3x")


def extent(cdb: bytes) -> tuple[int, int]:
    """LBA and number of blocks of a block command, by CDB group (SBC-3 5.1)."""
    group = cdb[0] >> 5
    if cdb[0] == Opcode.WRITE_ATOMIC_16:  # a 2-byte length after the ATOMIC BOUNDARY
        return field_value(cdb, 2, 8), field_value(cdb, 12, 2)
    if group == 0:  # 6-byte: 21-bit LBA; a length of 0 means 256 blocks
        return field_value(cdb, 1, 3) & 0x1FFFFF, cdb[4] or 256
    if group in (1, 2):
        return field_value(cdb, 2, 4), field_value(cdb, 7, 2)
    if group == 5:
        return field_value(cdb, 2, 4), field_value(cdb, 6, 4)
    return field_value(cdb, 2, 8), field_value(cdb, 10, 4)


def _checked_extent(unit: UnitState, cdb: bytes) -> tuple[int, int]:
    if cdb[0] >> 5 and cdb[1] & _PROTECT:
        raise invalid_field()
    lba, count = extent(cdb)
    if lba + count > unit.block_count:
        raise lba_out_of_range()
    return lba, count


def _writable(unit: UnitState) -> None:
    if unit.backstore.read_only:
        raise write_protected()


def _exact_data_out(request: ScsiRequest, length: int) -> None:
    """WRITE SAME and COMPARE AND WRITE cannot do part of their work: a Data-Out buffer
    of another size than the CDB implies is refused."""
    if len(request.data_out) != length:
        raise invalid_field()


def _durable(unit: UnitState, cdb: bytes, fua_bit: bool = True) -> None:
    """Write-through, or FUA (not in 6-byte CDBs): on stable storage before GOOD.
    `fua_bit` False for a CDB without FUA, where bit 3 of byte 1 means something else
    (WRITE SAME (10) and (16): UNMAP; a flush per unmap made each one an fdatasync)."""
    fua = fua_bit and cdb[0] >> 5 and cdb[1] & _FUA
    if not unit.write_cache or fua:
        unit.backstore.flush()


def read(unit: UnitState, request: ScsiRequest) -> DataBuffer:
    lba, count = _checked_extent(unit, request.cdb)
    if count > MAX_TRANSFER_BLOCKS:
        raise invalid_field()
    buffer = bytearray(count * BLOCK_SIZE)
    unit.backstore.read_into(lba * BLOCK_SIZE, memoryview(buffer), request.nowait)
    return buffer


def write(unit: UnitState, request: ScsiRequest) -> ScsiResult:
    """Writes what the initiator sent, up to the CDB's length. A shorter Data-Out (its
    Expected Data Transfer Length said so) is written as far as it goes, into the middle
    of a block if it ends there, and the residual counts the rest (RFC 3720 10.3.4: the
    bytes processed); tgtd does the same, and GOOD never stands for data dropped."""
    lba, count = _checked_extent(unit, request.cdb)
    _writable(unit)
    wanted = count * BLOCK_SIZE
    data = request.data_out[:wanted]
    if data:
        unit.backstore.write(lba * BLOCK_SIZE, data)
        _durable(unit, request.cdb)
    return ScsiResult(data_out_length=wanted)


def write_atomic(unit: UnitState, request: ScsiRequest) -> ScsiResult:
    """SBC-4 5.48: all or nothing (so a short Data-Out is refused); no atomic boundary is
    supported."""
    blocks = extent(request.cdb)[1]
    if field_value(request.cdb, 10, 2) or blocks > MAX_ATOMIC_BLOCKS:
        raise invalid_field()
    if len(request.data_out) < blocks * BLOCK_SIZE:
        raise CheckCondition(
            SenseKey.ILLEGAL_REQUEST, AdditionalSense.INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT
        )
    return write(unit, request)


def orwrite(unit: UnitState, request: ScsiRequest) -> ScsiResult:
    """SBC-3 5.10: the stored blocks become the OR of themselves and the data sent."""
    lba, count = _checked_extent(unit, request.cdb)
    _writable(unit)
    size = count * BLOCK_SIZE
    data = request.data_out[:size]  # a short Data-Out: as far as it goes, as WRITE does
    stored = bytearray(len(data))
    unit.backstore.read_into(lba * BLOCK_SIZE, memoryview(stored))
    combined = int.from_bytes(stored, "big") | int.from_bytes(data, "big")
    if data:
        unit.backstore.write(lba * BLOCK_SIZE, combined.to_bytes(len(data), "big"))
        _durable(unit, request.cdb)
    return ScsiResult(data_out_length=size)


def read_defect_data(unit: UnitState, request: ScsiRequest) -> DataBuffer:
    """An empty defect list in the format asked for (SBC-3 5.17, 5.18)."""
    cdb = request.cdb
    if cdb[0] == Opcode.READ_DEFECT_DATA_10:
        data = struct.pack(">xBH", cdb[2] & 0x1F, 0)
        return data[: field_value(cdb, 7, 2)]
    data = struct.pack(">xBHI", cdb[1] & 0x1F, 0, 0)
    return data[: field_value(cdb, 6, 4)]


def verify(unit: UnitState, request: ScsiRequest) -> ScsiResult:
    """BYTCHK 00b checks the range only, 01b compares every block, 11b compares one block
    with each (SBC-4 5.29); a mismatch is a MISCOMPARE at the byte offset."""
    lba, count = _checked_extent(unit, request.cdb)
    bytchk = request.cdb[1] >> 1 & 0x03
    if bytchk == 0:
        return ScsiResult()
    if bytchk == 2:
        raise invalid_field()
    length = BLOCK_SIZE if bytchk == 3 else count * BLOCK_SIZE
    expected = request.data_out[:length]
    if len(expected) < length:
        return ScsiResult(data_out_length=length)
    stored = bytearray(count * BLOCK_SIZE)
    unit.backstore.read_into(lba * BLOCK_SIZE, memoryview(stored))
    pattern = bytes(expected) * (count if bytchk == 3 else 1)
    _compare(stored, pattern)
    return ScsiResult(data_out_length=length)


def _compare(stored: DataBuffer, expected: DataBuffer) -> None:
    if stored != expected:
        # The first differing byte, found in C: the highest set bit of the XOR.
        difference = int.from_bytes(stored, "big") ^ int.from_bytes(expected, "big")
        offset = len(stored) - (difference.bit_length() + 7) // 8
        raise CheckCondition(
            SenseKey.MISCOMPARE, AdditionalSense.MISCOMPARE_DURING_VERIFY_OPERATION, offset
        )


def write_and_verify(unit: UnitState, request: ScsiRequest) -> ScsiResult:
    if request.cdb[1] & 0x04:  # BYTCHK of SBC-4 is two bits; 1xb is reserved
        raise invalid_field()
    return write(unit, request)  # what was written reads back the same from the file


def synchronize_cache(unit: UnitState, request: ScsiRequest) -> DataBuffer:
    _checked_extent(unit, request.cdb)
    unit.backstore.flush()
    return b""


def pre_fetch(unit: UnitState, request: ScsiRequest) -> DataBuffer:
    _checked_extent(unit, request.cdb)
    return b""  # the page cache decides; GOOD says it was not all cached (SBC-3 5.9)


def write_same(unit: UnitState, request: ScsiRequest) -> ScsiResult:
    cdb = request.cdb
    if cdb[1] & _ANCHOR:
        raise invalid_field()
    no_data = cdb[0] == Opcode.WRITE_SAME_16 and bool(cdb[1] & _NDOB)
    lba, count = _checked_extent(unit, cdb)
    if count == 0:  # "to the last LBA" (the Block Limits page leaves WSNZ 0)
        count = unit.block_count - lba
    if count > MAX_WRITE_SAME_BLOCKS:
        raise invalid_field()
    _writable(unit)
    length = 0 if no_data else BLOCK_SIZE
    _exact_data_out(request, length)
    block = bytes(BLOCK_SIZE) if no_data else bytes(request.data_out)
    if cdb[1] & _UNMAP and unit.backstore.thin:  # the data need not be zeros (SBC-3 5.45)
        unit.backstore.unmap(lba * BLOCK_SIZE, count * BLOCK_SIZE)
    else:
        for start in range(lba, lba + count, _SAME_CHUNK_BLOCKS):
            blocks = min(_SAME_CHUNK_BLOCKS, lba + count - start)
            unit.backstore.write(start * BLOCK_SIZE, block * blocks)
    _durable(unit, cdb, fua_bit=False)  # no FUA in WRITE SAME: bit 3 is UNMAP
    return ScsiResult(data_out_length=length)


def unmap(unit: UnitState, request: ScsiRequest) -> ScsiResult:
    """SBC-3 5.28: a header and 16-byte block descriptors (LBA, number of blocks)."""
    cdb, data = request.cdb, request.data_out
    if cdb[1] & 0x01:  # ANCHOR
        raise invalid_field()
    length = field_value(cdb, 7, 2)
    _writable(unit)
    if length == 0:
        return ScsiResult(data_out_length=0)
    if length < 8 or len(data) < length:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, AdditionalSense.PARAMETER_LIST_LENGTH_ERROR)
    descriptors = data[8 : 8 + min(field_value(data, 2, 2), length - 8)]
    if len(descriptors) // 16 > MAX_UNMAP_DESCRIPTORS:
        raise invalid_parameter()
    ranges = [
        struct.unpack_from(">QI", descriptors, i) for i in range(0, len(descriptors) - 15, 16)
    ]
    for lba, count in ranges:
        if lba + count > unit.block_count:
            raise lba_out_of_range()
        if count > MAX_UNMAP_BLOCKS:
            raise invalid_parameter()
    for lba, count in ranges:
        if count:
            unit.backstore.unmap(lba * BLOCK_SIZE, count * BLOCK_SIZE)
    return ScsiResult(data_out_length=length)


def compare_and_write(unit: UnitState, request: ScsiRequest) -> ScsiResult:
    """SBC-3 5.2: the first half of the Data-Out buffer is compared, the second written."""
    cdb = request.cdb
    if cdb[1] & _PROTECT:
        raise invalid_field()
    lba, count = field_value(cdb, 2, 8), cdb[13]
    if count > MAX_COMPARE_AND_WRITE_BLOCKS:
        raise invalid_field()
    if lba + count > unit.block_count:
        raise lba_out_of_range()
    _writable(unit)
    size = count * BLOCK_SIZE
    _exact_data_out(request, 2 * size)
    stored = bytearray(size)
    unit.backstore.read_into(lba * BLOCK_SIZE, memoryview(stored))
    _compare(stored, request.data_out[:size])
    if size:
        unit.backstore.write(lba * BLOCK_SIZE, request.data_out[size : 2 * size])
        _durable(unit, cdb)
    return ScsiResult(data_out_length=2 * size)


def read_capacity_10(unit: UnitState, request: ScsiRequest) -> DataBuffer:
    # 0xffffffff: "too big, ask READ CAPACITY (16)"
    return struct.pack(">II", min(unit.block_count - 1, 0xFFFFFFFF), BLOCK_SIZE)


def read_capacity_16(unit: UnitState, request: ScsiRequest) -> DataBuffer:
    """Last LBA, block length, and LBPME/LBPRZ when unmapped blocks read as zeros."""
    provisioning = 0xC000 if unit.backstore.thin else 0
    exponent = unit.physical_block_exponent
    data = struct.pack(">QIxBH16x", unit.block_count - 1, BLOCK_SIZE, exponent, provisioning)
    return data[: field_value(request.cdb, 10, 4)]


def get_lba_status(unit: UnitState, request: ScsiRequest) -> DataBuffer:
    """SBC-3 5.7: one descriptor, the run of mapped or deallocated blocks at the LBA."""
    lba = field_value(request.cdb, 2, 8)
    if lba >= unit.block_count:
        raise lba_out_of_range()
    mapped, length = unit.backstore.mapped(lba * BLOCK_SIZE)
    blocks = max(1, min(length // BLOCK_SIZE, 0xFFFFFFFF))
    descriptor = _LBA_STATUS_DESCRIPTOR.pack(lba, blocks, 0 if mapped else 1)
    data = struct.pack(">I4x", 4 + len(descriptor)) + descriptor
    return data[: field_value(request.cdb, 10, 4)]


def block_limits(unit: UnitState) -> bytes:
    """The Block Limits VPD page body (SBC-3 6.5.3)."""
    unmap_blocks = MAX_UNMAP_BLOCKS if unit.backstore.thin else 0
    unmap_descriptors = MAX_UNMAP_DESCRIPTORS if unit.backstore.thin else 0
    granularity = max(FILE_SYSTEM_BLOCKS, 1 << unit.physical_block_exponent)
    return struct.pack(
        ">BBHIIIIIIIQIIIII",
        0,  # WSNZ 0: WRITE SAME with 0 blocks means up to the last LBA
        MAX_COMPARE_AND_WRITE_BLOCKS,
        granularity,  # optimal transfer length granularity
        MAX_TRANSFER_BLOCKS,
        MAX_TRANSFER_BLOCKS,
        MAX_TRANSFER_BLOCKS,  # maximum prefetch length
        unmap_blocks,
        unmap_descriptors,
        granularity,  # optimal unmap granularity: smaller unmaps only zero
        0,  # unmap granularity alignment, UGAVALID 0
        MAX_WRITE_SAME_BLOCKS,
        MAX_ATOMIC_BLOCKS,
        0,  # atomic alignment: any
        0,  # atomic transfer length granularity: any
        0,  # no atomic boundaries
        0,
    )


def provisioning(unit: UnitState) -> bytes:
    """The Logical Block Provisioning VPD page body (SBC-3 6.5.4)."""
    if not unit.backstore.thin:
        return bytes(4)  # fully provisioned
    # LBPU, LBPWS, LBPWS10 and LBPRZ; provisioning type 2: thin
    return bytes([0, 0x80 | 0x40 | 0x20 | 0x04, 0x02, 0])


COMMANDS: dict[tuple[int, int | None], Handler] = {
    **{(op, None): read for op in (Opcode.READ_6, Opcode.READ_10, Opcode.READ_12, Opcode.READ_16)},
    **{
        (op, None): write
        for op in (Opcode.WRITE_6, Opcode.WRITE_10, Opcode.WRITE_12, Opcode.WRITE_16)
    },
    **{
        (op, None): write_and_verify
        for op in (
            Opcode.WRITE_AND_VERIFY_10,
            Opcode.WRITE_AND_VERIFY_12,
            Opcode.WRITE_AND_VERIFY_16,
        )
    },
    **{(op, None): verify for op in (Opcode.VERIFY_10, Opcode.VERIFY_12, Opcode.VERIFY_16)},
    (Opcode.SYNCHRONIZE_CACHE_10, None): synchronize_cache,
    (Opcode.SYNCHRONIZE_CACHE_16, None): synchronize_cache,
    (Opcode.PRE_FETCH_10, None): pre_fetch,
    (Opcode.PRE_FETCH_16, None): pre_fetch,
    (Opcode.WRITE_SAME_10, None): write_same,
    (Opcode.WRITE_SAME_16, None): write_same,
    (Opcode.UNMAP, None): unmap,
    (Opcode.COMPARE_AND_WRITE, None): compare_and_write,
    (Opcode.WRITE_ATOMIC_16, None): write_atomic,
    (Opcode.ORWRITE_16, None): orwrite,
    (Opcode.READ_DEFECT_DATA_10, None): read_defect_data,
    (Opcode.READ_DEFECT_DATA_12, None): read_defect_data,
    (Opcode.READ_CAPACITY_10, None): read_capacity_10,
    (Opcode.SERVICE_ACTION_IN_16, ServiceAction.READ_CAPACITY_16): read_capacity_16,
    (Opcode.SERVICE_ACTION_IN_16, ServiceAction.GET_LBA_STATUS): get_lba_status,
}

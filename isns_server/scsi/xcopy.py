"""EXTENDED COPY (LID1) and RECEIVE COPY RESULTS (SPC-4 6.4, 6.18): block-to-block copies
between the logical units of one target, done by the target without the data crossing
the network.

A copy names its sources and destinations by identification CSCD descriptors (E4h) that
designate a unit of the same target (the designators of its Device Identification VPD
page); segments are block-to-block (02h). Every segment is checked before any block is
copied. The copy runs to completion before the command ends, so COPY STATUS only ever
reports finished copies.

The copy reaches the units it names only through `CopyPeer` (unit.py), the one access
across units: their blocks are read and written with the backstore's plain pread/pwrite
from this unit's worker thread, without the other unit's ordering: its own commands run
meanwhile on its worker, so a copy racing a write to the same blocks is like two
initiators writing them, and a COMPARE AND WRITE there is not atomic against the copy.
Their state (reservations, size, medium) is read as it stands when the copy is checked
and never changed. The results kept for RECEIVE COPY RESULTS are this unit's own.
"""

import struct
from dataclasses import dataclass

from .constants import BLOCK_SIZE, AdditionalSense, Opcode, ScsiStatus, SenseKey, field_value
from .sense import CheckCondition, DataBuffer, ScsiResult, invalid_field, invalid_parameter
from .unit import CopyPeer, Handler, ScsiRequest, UnitState

MAX_CSCD_DESCRIPTORS = 8
MAX_SEGMENT_DESCRIPTORS = 8
_HEADER = 16
_CSCD_LENGTH = 32
_SEGMENT_LENGTH = 28  # a block-to-block segment descriptor, its 4-byte header included
MAX_DESCRIPTOR_LIST = MAX_CSCD_DESCRIPTORS * _CSCD_LENGTH + MAX_SEGMENT_DESCRIPTORS * (
    _SEGMENT_LENGTH
)
MAX_SEGMENT_BLOCKS = 0xFFFF  # the 2-byte BLOCK DEVICE NUMBER OF BLOCKS
_IDENTIFICATION_CSCD = 0xE4
_BLOCK_TO_BLOCK = 0x02
_NUL = 0x20
_CHUNK_BLOCKS = 2048  # copied 1 MiB at a time
_LIST_ID_USAGE_HOLD = 0  # keep the results for RECEIVE COPY RESULTS
_COPY_STATUS = 0x00
_OPERATING_PARAMETERS = 0x03
_COMPLETED = 0x01  # copy manager status: completed without errors
_BLOCKS = 0xF1  # transfer count units: logical blocks


@dataclass(frozen=True, slots=True)
class _Segment:
    source: int
    destination: int
    blocks: int
    source_lba: int
    destination_lba: int


def _sense(code: AdditionalSense, key: SenseKey = SenseKey.ILLEGAL_REQUEST) -> CheckCondition:
    return CheckCondition(key, code)


def _length_error() -> CheckCondition:
    return _sense(AdditionalSense.PARAMETER_LIST_LENGTH_ERROR)


def _copy_aborted(code: AdditionalSense) -> CheckCondition:
    return _sense(code, SenseKey.COPY_ABORTED)


def extended_copy(unit: UnitState, request: ScsiRequest) -> ScsiResult:
    data, length = request.data_out, field_value(request.cdb, 10, 4)
    if length == 0:
        return ScsiResult(data_out_length=0)
    if length < _HEADER or len(data) < length:
        raise _length_error()
    list_id, usage = data[0], data[1] >> 3 & 0x03
    cscd_length, segment_length = field_value(data, 2, 2), field_value(data, 8, 4)
    if cscd_length + segment_length > MAX_DESCRIPTOR_LIST:
        raise _length_error()
    if _HEADER + cscd_length + segment_length > length or cscd_length % _CSCD_LENGTH:
        raise _length_error()
    if field_value(data, 12, 4):  # inline data: only for stream devices
        raise invalid_parameter()
    targets = dict(enumerate(_cscd_descriptors(unit, data[_HEADER : _HEADER + cscd_length])))
    start = _HEADER + cscd_length
    copies = []
    for segment in _segments(data[start : start + segment_length]):
        source, destination = targets.get(segment.source), targets.get(segment.destination)
        if source is None or destination is None:
            raise _copy_aborted(AdditionalSense.UNREACHABLE_COPY_TARGET)
        if not (source.medium_loaded and destination.medium_loaded):  # a medium is out
            raise _copy_aborted(AdditionalSense.UNREACHABLE_COPY_TARGET)
        if destination.backstore.read_only:
            raise _sense(AdditionalSense.WRITE_PROTECTED, SenseKey.DATA_PROTECT)
        if (
            segment.source_lba + segment.blocks > source.block_count
            or segment.destination_lba + segment.blocks > destination.block_count
        ):
            raise _copy_aborted(AdditionalSense.NO_ADDITIONAL_SENSE)
        # The units are read and written for this nexus: their reservations apply as
        # they would to READ and WRITE sent to them
        if source.conflicts(request.nexus, Opcode.READ_16) or destination.conflicts(
            request.nexus, Opcode.WRITE_16
        ):
            return ScsiResult(ScsiStatus.RESERVATION_CONFLICT)
        copies.append((source, destination, segment))
    for source, destination, segment in copies:
        _copy(source, destination, segment)
    for destination in {id(d): d for _, d, _ in copies}.values():  # once each
        if not destination.write_cache:  # write-through: on stable storage before GOOD
            destination.backstore.flush()
    if usage == _LIST_ID_USAGE_HOLD:
        copied = sum(segment.blocks for _, _, segment in copies)
        unit.copy_results[(request.nexus, list_id)] = (len(copies), copied)
    return ScsiResult(data_out_length=length)


def _cscd_descriptors(unit: UnitState, descriptors: memoryview) -> list[CopyPeer | None]:
    """The unit of this target each CSCD descriptor designates, None if none does."""
    count = len(descriptors) // _CSCD_LENGTH
    if count > MAX_CSCD_DESCRIPTORS:
        raise _sense(AdditionalSense.TOO_MANY_TARGET_DESCRIPTORS)
    targets = []
    for offset in range(0, len(descriptors), _CSCD_LENGTH):
        descriptor = descriptors[offset : offset + _CSCD_LENGTH]
        if descriptor[0] != _IDENTIFICATION_CSCD:
            raise _sense(AdditionalSense.UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE)
        # LU ID TYPE (byte 1, bits 7-6) is obsolete in SPC-4 and ignored.
        kind, size = descriptor[5] & 0x0F, min(descriptor[7], 20)
        target = unit.copy_targets.get((kind, bytes(descriptor[8 : 8 + size])))
        block_length = field_value(descriptor, 29, 3)
        usable = not descriptor[1] & _NUL and block_length in (0, BLOCK_SIZE)
        targets.append(target if usable else None)
    return targets


def _segments(descriptors: memoryview) -> list[_Segment]:
    segments: list[_Segment] = []
    offset = 0
    while offset < len(descriptors):
        if len(segments) == MAX_SEGMENT_DESCRIPTORS:
            raise _sense(AdditionalSense.TOO_MANY_SEGMENT_DESCRIPTORS)
        descriptor = descriptors[offset:]
        if len(descriptor) < 4:
            raise _length_error()
        if descriptor[0] != _BLOCK_TO_BLOCK:
            raise _sense(AdditionalSense.UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE)
        if field_value(descriptor, 2, 2) != _SEGMENT_LENGTH - 4 or len(descriptor) < 28:
            raise _length_error()
        source, destination, _, blocks, source_lba, destination_lba = struct.unpack_from(
            ">HHHHQQ", descriptor, 4
        )
        segments.append(_Segment(source, destination, blocks, source_lba, destination_lba))
        offset += _SEGMENT_LENGTH
    return segments


def _copy(source: CopyPeer, destination: CopyPeer, segment: _Segment) -> None:
    """Chunk by chunk, backwards when the destination overlaps the source from above."""
    starts = list(range(0, segment.blocks, _CHUNK_BLOCKS))
    if source is destination and segment.destination_lba > segment.source_lba:
        starts.reverse()
    buffer = bytearray(_CHUNK_BLOCKS * BLOCK_SIZE)
    for start in starts:
        size = min(_CHUNK_BLOCKS, segment.blocks - start) * BLOCK_SIZE
        chunk = memoryview(buffer)[:size]
        source.backstore.read_into((segment.source_lba + start) * BLOCK_SIZE, chunk)
        destination.backstore.write((segment.destination_lba + start) * BLOCK_SIZE, chunk)


def receive_copy_results(unit: UnitState, request: ScsiRequest) -> DataBuffer:
    cdb = request.cdb
    if cdb[1] & 0x1F == _OPERATING_PARAMETERS:
        implemented = bytes([_BLOCK_TO_BLOCK, _IDENTIFICATION_CSCD])
        data = struct.pack(
            ">IB3xHHIIIIIxxHBBBB3xB",
            40 + len(implemented),  # available data after these 4 bytes
            0x01,  # SNLID: lists may be held
            MAX_CSCD_DESCRIPTORS,
            MAX_SEGMENT_DESCRIPTORS,
            MAX_DESCRIPTOR_LIST,
            MAX_SEGMENT_BLOCKS * BLOCK_SIZE,  # maximum segment length
            0,  # maximum inline data length
            0,  # held data limit
            0,  # maximum stream device transfer size
            1,  # total concurrent copies
            1,  # maximum concurrent copies
            0,  # data segment granularity: 1 byte
            0,  # inline data granularity
            0,  # held data granularity
            len(implemented),
        )
        data += implemented
    else:  # COPY STATUS
        result = unit.copy_results.get((request.nexus, cdb[2]))
        if result is None:
            raise invalid_field(2)  # no copy with that list identifier
        segments, blocks = result
        data = struct.pack(">IBHBI", 8, _COMPLETED, segments, _BLOCKS, blocks)
    return data[: field_value(cdb, 10, 4)]


def third_party_copy_page() -> bytes:
    """The Third-party Copy VPD page body (SPC-4 7.8.17): its Supported Commands."""
    commands = bytes([Opcode.EXTENDED_COPY, 1, 0x00])
    commands += bytes([Opcode.RECEIVE_COPY_RESULTS, 2, _COPY_STATUS, _OPERATING_PARAMETERS])
    body = bytes([len(commands)]) + commands
    body += bytes(-len(body) % 4)
    return struct.pack(">HH", 0x0001, len(body)) + body


COMMANDS: dict[tuple[int, int | None], Handler] = {
    (Opcode.EXTENDED_COPY, 0x00): extended_copy,  # LID1 only
    (Opcode.RECEIVE_COPY_RESULTS, _COPY_STATUS): receive_copy_results,
    (Opcode.RECEIVE_COPY_RESULTS, _OPERATING_PARAMETERS): receive_copy_results,
}

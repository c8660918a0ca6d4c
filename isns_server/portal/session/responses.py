"""A SCSI command's outcome as iSCSI PDUs (RFC 3720 10.4, 10.7), sans-IO.

Read data goes out in Data-In PDUs no longer than the initiator's
MaxRecvDataSegmentLength; when the command succeeded the last one carries the status
(the S bit, 10.7.3), otherwise a SCSI Response carries status and sense data (10.4.7).
Residual counts compare what the command produced with what the initiator expected.
"""

import struct
from dataclasses import dataclass

from ...scsi import ScsiResult
from ...scsi.constants import ScsiStatus
from ..iscsi.constants import ServiceResponse
from ..iscsi.pdu import DataIn, ScsiCommand, ScsiResponse

_SENSE_LENGTH = struct.Struct(">H")  # 10.4.7.1: SenseLength precedes the sense data


@dataclass(frozen=True, slots=True)
class ResponseNumbers:
    """StatSN for the PDU carrying status; ExpCmdSN and MaxCmdSN for all of them."""

    statsn: int
    expcmdsn: int
    maxcmdsn: int


def sense_segment(sense: bytes) -> bytes:
    """A data segment carrying sense data: SCSI Response (10.4.7), Async Message (10.9.4)."""
    return _SENSE_LENGTH.pack(len(sense)) + sense


def command_responses(
    command: ScsiCommand, result: ScsiResult, numbers: ResponseNumbers, max_segment: int
) -> list[DataIn | ScsiResponse]:
    """Data-In PDUs and the status; residuals compare the Expected Data Transfer Length
    with what the command produced (reads) or asked the initiator for (writes)."""
    if command.write and result.data_out_length is not None:
        expected, produced = command.expected_data_transfer_length, result.data_out_length
    else:
        expected = command.expected_data_transfer_length if command.read else 0
        produced = len(result.data)
    data = memoryview(result.data)[:expected] if command.read else memoryview(b"")
    overflow = produced > expected
    residual = abs(produced - expected)
    underflow = produced < expected
    good = result.status == ScsiStatus.GOOD
    pdus: list[DataIn | ScsiResponse] = []
    for offset in range(0, len(data), max_segment):
        last = offset + max_segment >= len(data)
        with_status = last and good
        pdus.append(
            DataIn(
                final=last,
                residual_overflow=with_status and overflow,
                residual_underflow=with_status and underflow,
                status_present=with_status,
                status=result.status if with_status else 0,
                lun=command.lun,
                itt=command.itt,
                statsn=numbers.statsn if with_status else 0,
                expcmdsn=numbers.expcmdsn,
                maxcmdsn=numbers.maxcmdsn,
                datasn=len(pdus),
                buffer_offset=offset,
                residual_count=residual if with_status else 0,
                data=data[offset : offset + max_segment],
            )
        )
    if data and good:
        return pdus
    sense = sense_segment(result.sense) if result.sense else b""
    pdus.append(
        ScsiResponse(
            residual_overflow=overflow,
            residual_underflow=underflow,
            response=ServiceResponse.COMMAND_COMPLETED,
            status=result.status,
            itt=command.itt,
            statsn=numbers.statsn,
            expcmdsn=numbers.expcmdsn,
            maxcmdsn=numbers.maxcmdsn,
            expdatasn=len(pdus),
            residual_count=residual,
            data=sense,
        )
    )
    return pdus

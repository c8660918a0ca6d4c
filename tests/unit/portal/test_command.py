"""A SCSI command's outcome as Data-In and SCSI Response PDUs (RFC 3720 10.4, 10.7)."""

from ipaddress import ip_address

from isns_server.portal.iscsi.pdu import DataIn, ScsiCommand, ScsiResponse
from isns_server.portal.session.responses import ResponseNumbers, command_responses
from isns_server.portal.session.sendtargets import target_address, target_records
from isns_server.registry import TargetPortal, VisibleTarget
from isns_server.scsi import ScsiResult
from isns_server.scsi.constants import ScsiStatus

NUMBERS = ResponseNumbers(statsn=7, expcmdsn=3, maxcmdsn=34)


def read(expected: int) -> ScsiCommand:
    return ScsiCommand(read=True, lun=0, itt=9, expected_data_transfer_length=expected)


def test_data_in_pieces_with_status_on_the_last() -> None:
    pdus = command_responses(read(2000), ScsiResult(data=bytes(range(250)) * 8), NUMBERS, 512)
    data_ins = [p for p in pdus if isinstance(p, DataIn)]
    assert len(data_ins) == len(pdus) == 4
    assert [(p.datasn, p.buffer_offset, len(p.data), p.final) for p in data_ins] == [
        (0, 0, 512, False),
        (1, 512, 512, False),
        (2, 1024, 512, False),
        (3, 1536, 464, True),
    ]
    assert not any(p.status_present for p in data_ins[:-1])
    last = pdus[-1]
    assert isinstance(last, DataIn) and last.status_present and last.statsn == 7
    assert not last.residual_underflow and not last.residual_overflow
    assert b"".join(bytes(p.data) for p in pdus) == bytes(range(250)) * 8


def test_residuals() -> None:
    (short,) = command_responses(read(100), ScsiResult(data=b"x" * 36), NUMBERS, 512)
    assert isinstance(short, DataIn)
    assert short.residual_underflow and short.residual_count == 64 and len(short.data) == 36
    (long,) = command_responses(read(16), ScsiResult(data=b"x" * 36), NUMBERS, 512)
    assert isinstance(long, DataIn)
    assert long.residual_overflow and long.residual_count == 20 and len(long.data) == 16


def test_no_data_is_a_scsi_response() -> None:
    unready = ScsiCommand(itt=9, expected_data_transfer_length=0)
    (response,) = command_responses(unready, ScsiResult(), NUMBERS, 512)
    assert isinstance(response, ScsiResponse)
    assert (response.status, response.statsn, response.data) == (ScsiStatus.GOOD, 7, b"")


def test_check_condition_carries_sense_length_and_sense() -> None:
    sense = bytes([0x70, 0, 5]) + bytes(15)
    result = ScsiResult(ScsiStatus.CHECK_CONDITION, sense=sense)
    (response,) = command_responses(read(36), result, NUMBERS, 512)
    assert isinstance(response, ScsiResponse)
    assert response.status == ScsiStatus.CHECK_CONDITION
    assert bytes(response.data) == b"\0\x12" + sense
    assert response.residual_underflow and response.residual_count == 36


def test_target_addresses_and_records() -> None:
    v4 = TargetPortal(ip_address("10.1.0.45"), 3000, 1)
    v6 = TargetPortal(ip_address("fe80::1"), 3260, 2)
    compatible = TargetPortal(ip_address("::127.0.0.2"), 3260, 1)  # as isnsadm registers
    assert target_address(v4) == "10.1.0.45:3000,1"
    assert target_address(v6) == "[fe80::1]:3260,2"
    assert target_address(compatible) == "127.0.0.2:3260,1"
    assert target_address(TargetPortal(ip_address("::1"), 3260, 1)) == "[::1]:3260,1"
    records = target_records(
        [VisibleTarget("iqn.a", None, (v4, v6)), VisibleTarget("iqn.b", "b", ())]
    )
    assert records == [
        ("TargetName", "iqn.a"),
        ("TargetAddress", "10.1.0.45:3000,1"),
        ("TargetAddress", "[fe80::1]:3260,2"),
        ("TargetName", "iqn.b"),
    ]

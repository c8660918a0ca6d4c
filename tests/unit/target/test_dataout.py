"""Data-Out bookkeeping (RFC 3720 3.2.4.2, 10.7, 10.8, 6.7, 6.8)."""

import dataclasses
import itertools

import pytest

from isns_server.target.dataout import BurstRequest, DataOutError, DataOutLimits, DataOutTransfer
from isns_server.target.iscsi.constants import RESERVED_TAG
from isns_server.target.iscsi.pdu import DataOut, ScsiCommand
from isns_server.target.scsi.constants import AdditionalSense, SenseKey

WRITE = ScsiCommand(write=True, final=True, itt=7, expected_data_transfer_length=1024)
SOLICITED_ONLY = DataOutLimits(
    max_burst=1024, first_burst=512, initial_r2t=True, max_outstanding_r2t=1
)
TTT = 0x55


def r2ts(transfer: DataOutTransfer, first_tag: int = TTT) -> list[BurstRequest]:
    return transfer.next_bursts(itertools.count(first_tag).__next__)


def transfer(limits: DataOutLimits = SOLICITED_ONLY) -> DataOutTransfer:
    transfer = DataOutTransfer(WRITE, 1024, limits)
    assert r2ts(transfer) == [BurstRequest(TTT, 0, 0, min(1024, limits.max_burst))]
    return transfer


def data_out(datasn: int, offset: int, final: bool, ttt: int = TTT) -> DataOut:
    return DataOut(
        final=final, itt=7, ttt=ttt, datasn=datasn, buffer_offset=offset, data=b"x" * 512
    )


def test_a_burst_in_sequence_completes_the_transfer() -> None:
    write = transfer()
    write.receive(data_out(0, 0, final=False))
    assert not write.complete and r2ts(write) == []  # the one R2T allowed is outstanding
    write.receive(data_out(1, 512, final=True))
    assert write.complete and write.failed is None and bytes(write.buffer) == b"x" * 1024


def test_each_burst_numbers_its_data_from_zero() -> None:
    write = transfer(dataclasses.replace(SOLICITED_ONLY, max_burst=512))
    write.receive(data_out(0, 0, final=True))
    assert not write.complete
    assert r2ts(write, TTT + 1) == [BurstRequest(TTT + 1, 1, 512, 512)]
    write.receive(data_out(0, 512, final=True, ttt=TTT + 1))
    assert write.complete


def test_several_r2ts_outstanding_are_answered_in_order() -> None:
    limits = dataclasses.replace(SOLICITED_ONLY, max_burst=256, max_outstanding_r2t=2)
    command = dataclasses.replace(WRITE, data=b"i" * 256)
    early = DataOutTransfer(command, 1024, limits)
    r2ts(early)
    with pytest.raises(DataOutError, match="before the earlier ones ended"):
        early.receive(DataOut(final=True, itt=7, ttt=TTT + 1, buffer_offset=512))
    write = DataOutTransfer(command, 1024, limits)
    assert [(b.r2tsn, b.offset, b.length) for b in r2ts(write)] == [(0, 256, 256), (1, 512, 256)]
    write.receive(DataOut(final=True, itt=7, ttt=TTT, buffer_offset=256, data=b"a" * 256))
    assert [(b.r2tsn, b.offset) for b in r2ts(write, TTT + 2)] == [(2, 768)]
    write.receive(DataOut(final=True, itt=7, ttt=TTT + 1, buffer_offset=512, data=b"b" * 256))
    write.receive(DataOut(final=True, itt=7, ttt=TTT + 2, buffer_offset=768, data=b"c" * 256))
    assert (
        write.complete and bytes(write.buffer) == b"i" * 256 + b"a" * 256 + b"b" * 256 + b"c" * 256
    )


def test_unsolicited_data_up_to_the_first_burst_then_r2ts_for_the_rest() -> None:
    limits = DataOutLimits(max_burst=512, first_burst=512, initial_r2t=False, max_outstanding_r2t=4)
    command = dataclasses.replace(WRITE, final=False, data=b"i" * 256)  # 10.3.1: F=0, more follows
    write = DataOutTransfer(command, 1024, limits)
    assert r2ts(write) == [BurstRequest(TTT, 0, 512, 512)]  # past the unsolicited burst
    unsolicited = DataOut(final=True, itt=7, ttt=RESERVED_TAG, buffer_offset=256, data=b"u" * 256)
    write.receive(unsolicited)
    write.receive(DataOut(final=True, itt=7, ttt=TTT, buffer_offset=512, data=b"s" * 512))
    assert write.complete and bytes(write.buffer) == b"i" * 256 + b"u" * 256 + b"s" * 512


@pytest.mark.parametrize("command_final", [True, False])
def test_no_unsolicited_data_without_initial_r2t_no_or_with_the_f_bit(command_final: bool) -> None:
    limits = DataOutLimits(
        max_burst=1024, first_burst=512, initial_r2t=not command_final, max_outstanding_r2t=1
    )
    write = DataOutTransfer(dataclasses.replace(WRITE, final=command_final), 1024, limits)
    assert r2ts(write) == [BurstRequest(TTT, 0, 0, 1024)]
    with pytest.raises(DataOutError, match="not asked for"):
        write.receive(DataOut(final=True, itt=7, ttt=RESERVED_TAG, data=b"u" * 512))


@pytest.mark.parametrize(
    "sequence",
    [
        [(0, 0, False), (0, 512, True)],  # a DataSN repeated
        [(27, 0, True)],  # a gap
        [(0xFFFFFFFF, 0, True)],
        [(1, 0, False), (0, 512, True)],  # reversed
        [(1, 512, True)],  # the PDU before it was lost, offsets and all
    ],
)
def test_a_datasn_error_fails_the_task_once_the_sequence_is_over(
    sequence: list[tuple[int, int, bool]],
) -> None:
    write = transfer()
    *before_last, last = sequence
    for datasn, offset, final in before_last:
        write.receive(data_out(datasn, offset, final))
    assert write.failed is None and not write.complete
    write.receive(data_out(*last))
    failed = write.failed
    assert failed is not None and write.sequence_error is not None
    assert (failed.key, failed.code) == (
        SenseKey.ABORTED_COMMAND,
        AdditionalSense.PROTOCOL_SERVICE_CRC_ERROR,
    )
    assert not write.complete and r2ts(write) == []  # never runs, no further R2T


def test_after_a_datasn_error_the_other_outstanding_sequences_are_awaited() -> None:
    limits = dataclasses.replace(SOLICITED_ONLY, max_burst=512, max_outstanding_r2t=2)
    write = DataOutTransfer(WRITE, 1024, limits)
    assert len(r2ts(write)) == 2
    write.receive(data_out(1, 0, final=True))  # DataSN 0 was lost
    assert write.failed is None  # the second R2T's data is still coming
    write.receive(data_out(0, 512, final=True, ttt=TTT + 1))
    assert write.failed is not None


@pytest.mark.parametrize(
    "pdu",
    [
        DataOut(final=True, itt=7, ttt=TTT + 1, data=b"x" * 1024),  # not asked for
        data_out(0, 512, final=True),  # in sequence, at the wrong offset
        data_out(0, 0, final=True),  # F bit before the end of the burst
    ],
)
def test_other_breaks_of_the_rules_are_unrecoverable(pdu: DataOut) -> None:
    with pytest.raises(DataOutError):
        transfer().receive(pdu)

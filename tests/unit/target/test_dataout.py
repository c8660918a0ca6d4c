"""Data-Out bookkeeping (RFC 3720 3.2.4.2, 10.7, 10.8, 6.7, 6.8, 10.4.7.2)."""

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


UNSOLICITED = DataOutLimits(
    max_burst=512, first_burst=512, initial_r2t=False, max_outstanding_r2t=1
)
UNEXPECTED = AdditionalSense.WRITE_ERROR_UNEXPECTED_UNSOLICITED_DATA
NOT_ENOUGH = AdditionalSense.WRITE_ERROR_NOT_ENOUGH_UNSOLICITED_DATA
CRC_ERROR = AdditionalSense.PROTOCOL_SERVICE_CRC_ERROR


def fails_with(write: DataOutTransfer, sense: AdditionalSense) -> None:
    failed = write.failed
    assert failed is not None and failed.sense == sense
    assert (failed.condition.key, failed.condition.code) == (SenseKey.ABORTED_COMMAND, sense)
    assert not write.complete and r2ts(write, TTT + 100) == []  # never runs, no further R2T


@pytest.mark.parametrize("command_final", [True, False])
def test_unsolicited_data_without_initial_r2t_no_or_with_the_f_bit_is_unexpected(
    command_final: bool,
) -> None:
    limits = dataclasses.replace(SOLICITED_ONLY, initial_r2t=not command_final)
    command = dataclasses.replace(WRITE, final=command_final, data=b"i" * 256)
    write = DataOutTransfer(command, 1024, limits)
    assert r2ts(write) == [BurstRequest(TTT, 0, 256, 768)]
    write.receive(DataOut(final=True, itt=7, ttt=RESERVED_TAG, buffer_offset=256, data=b"u" * 512))
    assert write.failure is not None and write.failure.sense == UNEXPECTED
    assert bytes(write.buffer) == b"i" * 256 + bytes(768)  # dropped, not written
    assert write.failed is None and not write.complete  # the R2T's data is still coming
    write.receive(DataOut(final=True, itt=7, ttt=TTT, buffer_offset=256, data=b"s" * 768))
    fails_with(write, UNEXPECTED)
    assert b"s" not in bytes(write.buffer)  # nor anything after it


def test_unsolicited_data_after_the_unsolicited_burst_ended_is_unexpected() -> None:
    write = DataOutTransfer(dataclasses.replace(WRITE, final=False), 1024, UNSOLICITED)
    assert r2ts(write) == [BurstRequest(TTT, 0, 512, 512)]
    write.receive(DataOut(final=True, itt=7, ttt=RESERVED_TAG, data=b"u" * 512))
    assert write.failure is None
    write.receive(DataOut(final=True, itt=7, ttt=RESERVED_TAG, buffer_offset=512, data=b"v" * 512))
    assert write.failed is None  # the R2T asked for bytes 512.. first
    write.receive(DataOut(final=True, itt=7, ttt=TTT, buffer_offset=512, data=b"s" * 512))
    fails_with(write, UNEXPECTED)
    assert bytes(write.buffer) == b"u" * 512 + bytes(512)


@pytest.mark.parametrize("length", [1024, 384])  # FirstBurstLength, or all the data if less
def test_an_unsolicited_burst_ending_short_is_not_enough(length: int) -> None:
    command = dataclasses.replace(WRITE, final=False, expected_data_transfer_length=length)
    write = DataOutTransfer(command, length, dataclasses.replace(UNSOLICITED, max_burst=256))
    bursts = r2ts(write)
    assert [(b.offset, b.length) for b in bursts] == ([(512, 256)] if length > 512 else [])
    write.receive(DataOut(itt=7, ttt=RESERVED_TAG, data=b"u" * 128))
    write.receive(DataOut(final=True, itt=7, ttt=RESERVED_TAG, datasn=1, buffer_offset=128))
    assert write.failure is not None and write.failure.sense == NOT_ENOUGH
    if bursts:  # the R2T's sequence must end first; the last 256 bytes are never asked for
        assert write.failed is None and not write.complete and r2ts(write, TTT + 1) == []
        write.receive(DataOut(final=True, itt=7, ttt=TTT, buffer_offset=512, data=b"s" * 256))
    fails_with(write, NOT_ENOUGH)
    assert bytes(write.buffer) == b"u" * 128 + bytes(length - 128)


@pytest.mark.parametrize(
    ("mistakes", "first"),
    [
        ((DataOut(ttt=RESERVED_TAG, data=b"u" * 512), data_out(1, 0, final=False)), UNEXPECTED),
        ((data_out(1, 0, final=False), DataOut(ttt=RESERVED_TAG, final=True)), CRC_ERROR),
    ],
)
def test_the_first_mistake_is_what_the_task_ends_with(
    mistakes: tuple[DataOut, DataOut], first: AdditionalSense
) -> None:
    write = transfer()
    for pdu in mistakes:
        write.receive(dataclasses.replace(pdu, itt=7))
    assert write.failed is None  # the R2T's sequence has not ended
    write.receive(data_out(2, 512, final=True))
    fails_with(write, first)


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
    fails_with(write, CRC_ERROR)


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


@pytest.mark.parametrize(
    "pdu",
    [
        DataOut(final=True, ttt=RESERVED_TAG, data=b"u" * 1024),  # past FirstBurstLength
        DataOut(ttt=RESERVED_TAG, data=b"u" * 512),  # no F bit at its end
        DataOut(final=True, ttt=RESERVED_TAG, buffer_offset=256, data=b"u" * 256),  # a gap
    ],
)
def test_unsolicited_data_past_or_out_of_its_burst_is_unrecoverable(pdu: DataOut) -> None:
    write = DataOutTransfer(dataclasses.replace(WRITE, final=False), 1024, UNSOLICITED)
    with pytest.raises(DataOutError):
        write.receive(dataclasses.replace(pdu, itt=7))

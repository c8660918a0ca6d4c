"""Data-Out bookkeeping (RFC 3720 3.2.4.2, 10.7, 10.8, 6.7, 6.8, 10.4.7.2)."""

import dataclasses
import itertools
from pathlib import Path

import pytest

from isns_server.portal.iscsi.constants import RESERVED_TAG, RejectReason
from isns_server.portal.iscsi.pdu import R2T, DataOut, ScsiCommand, ScsiResponse
from isns_server.portal.session.dataout import (
    BurstRequest,
    DataOutError,
    DataOutLimits,
    DataOutTransfer,
    WriteBudget,
    WritePolicy,
)
from isns_server.portal.session.full_feature import FullFeatureSession, SessionStep
from isns_server.scsi import ScsiResult, ScsiTarget
from isns_server.scsi.constants import AdditionalSense, ScsiStatus, SenseKey

from .test_session import (
    KEEPALIVE,
    WRITE_2_BLOCKS,
    Services,
    new_session,
    one,
    reason_of,
    run_tasks,
    scsi_target,
)

WRITE = ScsiCommand(write=True, final=True, itt=7, expected_data_transfer_length=1024)
SOLICITED_ONLY = DataOutLimits(
    max_burst=1024, first_burst=512, initial_r2t=True, max_outstanding_r2t=1
)
TTT = 0x55
NOW = 1000.0
TIMEOUT = 20.0
POLICY = WritePolicy(WriteBudget(1 << 20), TIMEOUT)


def sense_of(result: ScsiResult) -> tuple[int, int]:
    """Sense key and ASC/ASCQ of a CHECK CONDITION's fixed-format sense data."""
    assert result.status == ScsiStatus.CHECK_CONDITION
    return result.sense[2] & 0x0F, result.sense[12] << 8 | result.sense[13]


def r2ts(transfer: DataOutTransfer, first_tag: int = TTT) -> list[BurstRequest]:
    return transfer.next_bursts(itertools.count(first_tag).__next__)


def transfer(limits: DataOutLimits = SOLICITED_ONLY) -> DataOutTransfer:
    transfer = DataOutTransfer(WRITE, 1024, limits, POLICY, NOW)
    assert r2ts(transfer) == [BurstRequest(TTT, 0, 0, min(1024, limits.max_burst))]
    return transfer


def data_out(datasn: int, offset: int, final: bool, ttt: int = TTT) -> DataOut:
    return DataOut(
        final=final, itt=7, ttt=ttt, datasn=datasn, buffer_offset=offset, data=b"x" * 512
    )


def test_a_burst_in_sequence_completes_the_transfer() -> None:
    write = transfer()
    write.receive(data_out(0, 0, final=False), NOW)
    assert not write.complete and r2ts(write) == []  # the one R2T allowed is outstanding
    write.receive(data_out(1, 512, final=True), NOW)
    assert write.complete and write.failed is None and bytes(write.buffer) == b"x" * 1024


def test_each_burst_numbers_its_data_from_zero() -> None:
    write = transfer(dataclasses.replace(SOLICITED_ONLY, max_burst=512))
    write.receive(data_out(0, 0, final=True), NOW)
    assert not write.complete
    assert r2ts(write, TTT + 1) == [BurstRequest(TTT + 1, 1, 512, 512)]
    write.receive(data_out(0, 512, final=True, ttt=TTT + 1), NOW)
    assert write.complete


def test_several_r2ts_outstanding_are_answered_in_order() -> None:
    limits = dataclasses.replace(SOLICITED_ONLY, max_burst=256, max_outstanding_r2t=2)
    command = dataclasses.replace(WRITE, data=b"i" * 256)
    early = DataOutTransfer(command, 1024, limits, POLICY, NOW)
    r2ts(early)
    with pytest.raises(DataOutError, match="before the earlier ones ended"):
        early.receive(DataOut(final=True, itt=7, ttt=TTT + 1, buffer_offset=512), NOW)
    write = DataOutTransfer(command, 1024, limits, POLICY, NOW)
    assert [(b.r2tsn, b.offset, b.length) for b in r2ts(write)] == [(0, 256, 256), (1, 512, 256)]
    write.receive(DataOut(final=True, itt=7, ttt=TTT, buffer_offset=256, data=b"a" * 256), NOW)
    assert [(b.r2tsn, b.offset) for b in r2ts(write, TTT + 2)] == [(2, 768)]
    write.receive(DataOut(final=True, itt=7, ttt=TTT + 1, buffer_offset=512, data=b"b" * 256), NOW)
    write.receive(DataOut(final=True, itt=7, ttt=TTT + 2, buffer_offset=768, data=b"c" * 256), NOW)
    assert (
        write.complete and bytes(write.buffer) == b"i" * 256 + b"a" * 256 + b"b" * 256 + b"c" * 256
    )


def test_unsolicited_data_up_to_the_first_burst_then_r2ts_for_the_rest() -> None:
    limits = DataOutLimits(max_burst=512, first_burst=512, initial_r2t=False, max_outstanding_r2t=4)
    command = dataclasses.replace(WRITE, final=False, data=b"i" * 256)  # 10.3.1: F=0, more follows
    write = DataOutTransfer(command, 1024, limits, POLICY, NOW)
    assert r2ts(write) == [BurstRequest(TTT, 0, 512, 512)]  # past the unsolicited burst
    unsolicited = DataOut(final=True, itt=7, ttt=RESERVED_TAG, buffer_offset=256, data=b"u" * 256)
    write.receive(unsolicited, NOW)
    write.receive(DataOut(final=True, itt=7, ttt=TTT, buffer_offset=512, data=b"s" * 512), NOW)
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
    assert sense_of(failed.result()) == (SenseKey.ABORTED_COMMAND, sense)
    assert not write.complete and r2ts(write, TTT + 100) == []  # never runs, no further R2T


@pytest.mark.parametrize("command_final", [True, False])
def test_unsolicited_data_without_initial_r2t_no_or_with_the_f_bit_is_unexpected(
    command_final: bool,
) -> None:
    limits = dataclasses.replace(SOLICITED_ONLY, initial_r2t=not command_final)
    command = dataclasses.replace(WRITE, final=command_final, data=b"i" * 256)
    write = DataOutTransfer(command, 1024, limits, POLICY, NOW)
    assert r2ts(write) == [BurstRequest(TTT, 0, 256, 768)]
    write.receive(
        DataOut(final=True, itt=7, ttt=RESERVED_TAG, buffer_offset=256, data=b"u" * 512), NOW
    )
    assert write.failure is not None and write.failure.sense == UNEXPECTED
    assert bytes(write.buffer) == b"i" * 256  # dropped: no buffer for the rest yet
    assert write.failed is None and not write.complete  # the R2T's data is still coming
    write.receive(DataOut(final=True, itt=7, ttt=TTT, buffer_offset=256, data=b"s" * 768), NOW)
    fails_with(write, UNEXPECTED)
    assert b"s" not in bytes(write.buffer)  # nor anything after it


def test_unsolicited_data_after_the_unsolicited_burst_ended_is_unexpected() -> None:
    write = DataOutTransfer(dataclasses.replace(WRITE, final=False), 1024, UNSOLICITED, POLICY, NOW)
    assert r2ts(write) == [BurstRequest(TTT, 0, 512, 512)]
    write.receive(DataOut(final=True, itt=7, ttt=RESERVED_TAG, data=b"u" * 512), NOW)
    assert write.failure is None
    write.receive(
        DataOut(final=True, itt=7, ttt=RESERVED_TAG, buffer_offset=512, data=b"v" * 512), NOW
    )
    assert write.failed is None  # the R2T asked for bytes 512.. first
    write.receive(DataOut(final=True, itt=7, ttt=TTT, buffer_offset=512, data=b"s" * 512), NOW)
    fails_with(write, UNEXPECTED)
    assert bytes(write.buffer) == b"u" * 512 + bytes(512)


@pytest.mark.parametrize("length", [1024, 384])  # FirstBurstLength, or all the data if less
def test_an_unsolicited_burst_ending_short_is_not_enough(length: int) -> None:
    command = dataclasses.replace(WRITE, final=False, expected_data_transfer_length=length)
    write = DataOutTransfer(
        command, length, dataclasses.replace(UNSOLICITED, max_burst=256), POLICY, NOW
    )
    bursts = r2ts(write)
    assert [(b.offset, b.length) for b in bursts] == ([(512, 256)] if length > 512 else [])
    write.receive(DataOut(itt=7, ttt=RESERVED_TAG, data=b"u" * 128), NOW)
    write.receive(DataOut(final=True, itt=7, ttt=RESERVED_TAG, datasn=1, buffer_offset=128), NOW)
    assert write.failure is not None and write.failure.sense == NOT_ENOUGH
    if bursts:  # the R2T's sequence must end first; the last 256 bytes are never asked for
        assert write.failed is None and not write.complete and r2ts(write, TTT + 1) == []
        write.receive(DataOut(final=True, itt=7, ttt=TTT, buffer_offset=512, data=b"s" * 256), NOW)
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
        write.receive(dataclasses.replace(pdu, itt=7), NOW)
    assert write.failed is None  # the R2T's sequence has not ended
    write.receive(data_out(2, 512, final=True), NOW)
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
        write.receive(data_out(datasn, offset, final), NOW)
    assert write.failed is None and not write.complete
    write.receive(data_out(*last), NOW)
    fails_with(write, CRC_ERROR)


def test_after_a_datasn_error_the_other_outstanding_sequences_are_awaited() -> None:
    limits = dataclasses.replace(SOLICITED_ONLY, max_burst=512, max_outstanding_r2t=2)
    write = DataOutTransfer(WRITE, 1024, limits, POLICY, NOW)
    assert len(r2ts(write)) == 2
    write.receive(data_out(1, 0, final=True), NOW)  # DataSN 0 was lost
    assert write.failed is None  # the second R2T's data is still coming
    write.receive(data_out(0, 512, final=True, ttt=TTT + 1), NOW)
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
        transfer().receive(pdu, NOW)


@pytest.mark.parametrize(
    "pdu",
    [
        DataOut(final=True, ttt=RESERVED_TAG, data=b"u" * 1024),  # past FirstBurstLength
        DataOut(ttt=RESERVED_TAG, data=b"u" * 512),  # no F bit at its end
        DataOut(final=True, ttt=RESERVED_TAG, buffer_offset=256, data=b"u" * 256),  # a gap
    ],
)
def test_unsolicited_data_past_or_out_of_its_burst_is_unrecoverable(pdu: DataOut) -> None:
    write = DataOutTransfer(dataclasses.replace(WRITE, final=False), 1024, UNSOLICITED, POLICY, NOW)
    with pytest.raises(DataOutError):
        write.receive(dataclasses.replace(pdu, itt=7), NOW)


# The portal's write budget and the Data-Out timeout ------------------------------------


def test_a_buffer_lent_goes_back_when_it_is_freed() -> None:
    budget = WriteBudget(1000)
    buffer = budget.lend(600)
    assert buffer is not None and len(buffer) == 600 and budget.available == 400
    assert budget.lend(401) is None and budget.held == 600  # refused: nothing taken
    view = memoryview(buffer)[100:]  # a task writing it holds a view, say
    del buffer
    assert budget.held == 600
    view.release()
    del view
    assert budget.held == 0


def test_memory_is_borrowed_when_the_data_starts_to_arrive() -> None:
    policy = WritePolicy(WriteBudget(4096), TIMEOUT)
    write = DataOutTransfer(WRITE, 1024, SOLICITED_ONLY, policy, NOW)
    r2ts(write)
    assert policy.budget.held == 0  # announced and asked for: nothing allocated yet
    write.receive(data_out(0, 0, final=False), NOW)
    assert policy.budget.held == 1024
    write.release()
    assert policy.budget.held == 0


def test_no_memory_left_ends_the_write_task_set_full_once_its_sequence_is_over() -> None:
    policy = WritePolicy(WriteBudget(1024), TIMEOUT)
    holder = policy.budget.lend(512)  # another session's write
    write = DataOutTransfer(WRITE, 1024, SOLICITED_ONLY, policy, NOW)
    r2ts(write)
    write.receive(data_out(0, 0, final=False), NOW)
    assert write.failure is not None and write.failed is None  # the R2T's data still comes
    write.receive(data_out(1, 512, final=True), NOW)
    failed = write.failed
    assert failed is not None and failed.result().status == ScsiStatus.TASK_SET_FULL
    assert "portal.max_write_buffer" in failed.reason and r2ts(write, TTT + 1) == []
    assert policy.budget.held == 512 and holder is not None


def test_the_deadline_moves_with_every_data_out_and_expiry_gives_the_memory_back() -> None:
    policy = WritePolicy(WriteBudget(4096), TIMEOUT)
    write = DataOutTransfer(WRITE, 1024, SOLICITED_ONLY, policy, NOW)
    r2ts(write)
    assert write.deadline == NOW + TIMEOUT
    write.receive(data_out(0, 0, final=False), NOW + 5)
    assert write.deadline == NOW + 5 + TIMEOUT and policy.budget.held == 1024
    failure = write.expired()
    assert sense_of(failure.result()) == (
        SenseKey.ABORTED_COMMAND,
        AdditionalSense.INITIATOR_RESPONSE_TIMEOUT,
    )
    assert "512 of 1024 bytes still to come" in failure.reason and policy.budget.held == 0


def portal_session(scsi: ScsiTarget, policy: WritePolicy) -> FullFeatureSession:
    """A normal session of a portal whose write budget and timeout are `policy`."""
    login = new_session().login  # no target attached: nothing registered by it
    return FullFeatureSession(login, Services(scsi), KEEPALIVE, 32, NOW, writes=policy)


def announce(session: FullFeatureSession, itt: int, cmdsn: int, now: float = NOW) -> R2T:
    write = ScsiCommand(
        write=True, itt=itt, cmdsn=cmdsn, expected_data_transfer_length=1024, cdb=WRITE_2_BLOCKS
    )
    r2t = one(session.receive(write, now))
    assert isinstance(r2t, R2T)
    return r2t


def test_a_write_whose_data_never_comes_ends_at_its_deadline(tmp_path: Path) -> None:
    policy = WritePolicy(WriteBudget(1 << 20), TIMEOUT)
    session = portal_session(scsi_target(tmp_path), policy)
    r2t = announce(session, itt=7, cmdsn=10)
    assert session.deadline == NOW + TIMEOUT  # before the keepalive's NOW + 30
    assert session.handle_timer(NOW + TIMEOUT - 1) == SessionStep()
    step = session.handle_timer(NOW + TIMEOUT)
    response = one(step)
    assert isinstance(response, ScsiResponse) and step.close is None
    assert (response.status, response.data[4], response.data[14:16]) == (2, 0x0B, b"\x4b\x06")
    assert session.deadline == NOW + 30 and policy.budget.held == 0
    late = DataOut(final=True, itt=7, ttt=r2t.ttt, data=b"x" * 1024)
    assert reason_of(session.receive(late, NOW + 21)) == RejectReason.PROTOCOL_ERROR


def test_sessions_share_the_budget_and_give_it_back(tmp_path: Path) -> None:
    policy = WritePolicy(WriteBudget(1024), TIMEOUT)
    scsi = scsi_target(tmp_path)
    first, second = portal_session(scsi, policy), portal_session(scsi, policy)
    r2t = announce(first, itt=7, cmdsn=10)
    second_r2t = announce(second, itt=7, cmdsn=10)  # announced: nothing held yet
    assert first.receive(DataOut(itt=7, ttt=r2t.ttt, data=b"a" * 512), NOW) == SessionStep()
    assert policy.budget.held == 1024
    full = ScsiCommand(write=True, itt=8, cmdsn=11, expected_data_transfer_length=512)
    refused = one(second.receive(dataclasses.replace(full, cdb=WRITE_2_BLOCKS), NOW))
    assert isinstance(refused, ScsiResponse) and refused.status == ScsiStatus.TASK_SET_FULL
    data = DataOut(final=True, itt=7, ttt=second_r2t.ttt, data=b"b" * 1024)
    late = one(second.receive(data, NOW))  # its data came after the budget was taken
    assert isinstance(late, ScsiResponse) and late.status == ScsiStatus.TASK_SET_FULL
    rest = DataOut(final=True, itt=7, ttt=r2t.ttt, datasn=1, buffer_offset=512, data=b"c" * 512)
    step = first.receive(rest, NOW)
    assert len(step.tasks) == 1 and policy.budget.held == 1024  # until it is written
    written = one(run_tasks(first, step))
    assert isinstance(written, ScsiResponse) and written.status == ScsiStatus.GOOD
    assert policy.budget.held == 0
    third = announce(second, itt=9, cmdsn=12)
    second.receive(DataOut(itt=9, ttt=third.ttt, data=b"d" * 512), NOW)
    assert policy.budget.held == 1024
    second.close()
    assert policy.budget.held == 0


def test_a_write_still_running_keeps_its_memory_after_its_session_ends(tmp_path: Path) -> None:
    policy = WritePolicy(WriteBudget(1024), TIMEOUT)
    session = portal_session(scsi_target(tmp_path), policy)
    r2t = announce(session, itt=7, cmdsn=10)
    step = session.receive(DataOut(final=True, itt=7, ttt=r2t.ttt, data=b"a" * 1024), NOW)
    (task,) = step.tasks  # queued on its unit's worker, say
    session.close()
    assert policy.budget.held == 1024  # the data is still to be written
    task.execute()
    del step, task  # the worker is done with it
    assert policy.budget.held == 0

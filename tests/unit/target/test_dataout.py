"""Solicited Data-Out bookkeeping (RFC 3720 10.7, 6.7, 6.8)."""

import pytest

from isns_server.target.dataout import DataOutError, DataOutTransfer
from isns_server.target.iscsi.pdu import DataOut, ScsiCommand
from isns_server.target.scsi.constants import AdditionalSense, SenseKey

WRITE = ScsiCommand(write=True, itt=7, expected_data_transfer_length=1024)
TTT = 0x55


def transfer(max_burst: int = 1024) -> DataOutTransfer:
    transfer = DataOutTransfer(WRITE, 1024, max_burst)
    transfer.next_burst(TTT)
    return transfer


def data_out(datasn: int, offset: int, final: bool) -> DataOut:
    return DataOut(
        final=final, itt=7, ttt=TTT, datasn=datasn, buffer_offset=offset, data=b"x" * 512
    )


def test_a_burst_in_sequence_completes_the_transfer() -> None:
    write = transfer()
    write.receive(data_out(0, 0, final=False))
    assert not write.burst_done and not write.complete
    write.receive(data_out(1, 512, final=True))
    assert write.complete and write.failed is None and bytes(write.buffer) == b"x" * 1024


def test_each_burst_numbers_its_data_from_zero() -> None:
    write = transfer(max_burst=512)
    write.receive(data_out(0, 0, final=True))
    assert write.burst_done and not write.complete
    write.next_burst(TTT)
    write.receive(data_out(0, 512, final=True))
    assert write.complete


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
    assert write.failed is None and not write.complete and not write.burst_done
    write.receive(data_out(*last))
    failed = write.failed
    assert failed is not None and write.sequence_error is not None
    assert (failed.key, failed.code) == (
        SenseKey.ABORTED_COMMAND,
        AdditionalSense.PROTOCOL_SERVICE_CRC_ERROR,
    )
    assert not write.complete and not write.burst_done  # never runs, no further R2T


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

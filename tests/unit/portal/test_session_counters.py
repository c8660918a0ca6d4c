"""A session's counters for the API: SCSI commands answered, bytes read (Data-In sent)
and bytes written (Data-Out of commands that completed GOOD)."""

import dataclasses
from pathlib import Path

from isns_server.portal.iscsi.pdu import R2T, DataOut, ScsiCommand
from isns_server.portal.session.full_feature import SessionCounters

from .test_session import (
    INQUIRY,
    NOW,
    READ_2_BLOCKS,
    WRITE_2_BLOCKS,
    new_session,
    one,
    run_tasks,
    scsi_target,
)


def test_counters_follow_reads_writes_and_failed_writes(tmp_path: Path) -> None:
    session = new_session(scsi=scsi_target(tmp_path))
    assert session.counters == SessionCounters()
    write = ScsiCommand(
        write=True, itt=1, cmdsn=10, expected_data_transfer_length=1024, cdb=WRITE_2_BLOCKS
    )
    r2t = one(session.receive(dataclasses.replace(write, data=b"a" * 512), NOW))
    assert isinstance(r2t, R2T)
    assert session.counters == SessionCounters()  # not answered yet
    data_out = DataOut(final=True, itt=1, ttt=r2t.ttt, buffer_offset=512, data=b"b" * 512)
    run_tasks(session, session.receive(data_out, NOW))
    assert session.counters == SessionCounters(commands=1, bytes_written=1024)

    read = ScsiCommand(
        read=True, itt=2, cmdsn=11, expected_data_transfer_length=1024, cdb=READ_2_BLOCKS
    )
    run_tasks(session, session.receive(read, NOW))
    inquiry = ScsiCommand(read=True, itt=3, cmdsn=12, expected_data_transfer_length=36, cdb=INQUIRY)
    run_tasks(session, session.receive(inquiry, NOW))
    assert session.counters == SessionCounters(commands=3, bytes_read=1024 + 36, bytes_written=1024)

    # A write whose Data-Out goes wrong is answered CHECK CONDITION and writes nothing.
    r2t = one(session.receive(dataclasses.replace(write, itt=4, cmdsn=13), NOW))
    assert isinstance(r2t, R2T)
    gap = DataOut(final=True, itt=4, ttt=r2t.ttt, datasn=1, buffer_offset=0, data=b"x" * 1024)
    run_tasks(session, session.receive(gap, NOW))
    assert session.counters == SessionCounters(commands=4, bytes_read=1060, bytes_written=1024)

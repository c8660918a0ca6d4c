"""The iSCSI portal as an attacker meets it (issue 12): writes announced and never sent,
and a storm of refused logins, against the real server on loopback."""

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from isns_server.portal.iscsi.pdu import R2T, DataOut, ScsiResponse
from isns_server.scsi.constants import AdditionalSense, ScsiStatus, SenseKey

from ..initiator import RawInitiator
from ..polling import eventually_sync
from ..processes import OurServer
from .test_datapath_bad_input import BLOCK, NORMAL, TARGET, Session, sense_of, write16

WRITE = 16 << 20  # the largest write the portal takes
STUCK_SESSIONS = 16
WRITES_PER_SESSION = 4  # 64 MiB: what one session may announce at once
DATA_OUT_TIMEOUT = 5
BUDGET = 128 << 20  # portal.max_write_buffer's default
RSS_BOUND = 256 << 20  # above idle, under every attack here
PDU = 8192  # Data-Out segment: the RFC's default MaxRecvDataSegmentLength


def rss(our_server: OurServer) -> int:
    """The server's resident set, in bytes, from /proc."""
    assert our_server.process is not None
    status = Path(f"/proc/{our_server.process.pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB$", status, re.MULTILINE)
    assert match, status
    return int(match.group(1)) << 10


@pytest.fixture
def portal(our_server: OurServer, tmp_path: Path) -> Iterator[int]:
    port = our_server.enable_portal(data_out_timeout=DATA_OUT_TIMEOUT, login_warning_interval=2)
    lun = {"lun": 0, "path": str(tmp_path / "disk1.img"), "size": "64MiB"}
    our_server.configure(targets=[{"name": TARGET, "luns": [lun]}])
    our_server.start()
    yield port


def solicited_write(session: Session, lba: int, data: bytes) -> ScsiResponse:
    """A write with no immediate data: every byte asked for by R2Ts."""
    command = session.command(
        write16(lba, len(data) // BLOCK), write=True, expected_data_transfer_length=len(data)
    )
    session.initiator.send(command)
    while True:
        pdu = session.initiator.receive()
        if isinstance(pdu, ScsiResponse):
            return pdu
        assert isinstance(pdu, R2T) and pdu.itt == command.itt, pdu
        end = pdu.buffer_offset + pdu.desired_data_transfer_length
        for datasn, offset in enumerate(range(pdu.buffer_offset, end, PDU)):
            piece = data[offset : min(offset + PDU, end)]
            final = offset + len(piece) == end
            session.initiator.send(
                DataOut(
                    final=final,
                    itt=command.itt,
                    ttt=pdu.ttt,
                    datasn=datasn,
                    buffer_offset=offset,
                    data=piece,
                )
            )


def test_writes_announced_and_never_sent_hold_no_memory_and_end_at_the_timeout(
    portal: int, our_server: OurServer, record_property: Callable[[str, object], None]
) -> None:
    idle = rss(our_server)
    stuck: list[tuple[Session, list[int]]] = []
    try:
        for n in range(STUCK_SESSIONS):
            session = Session(portal)
            session.initiator.sock.settimeout(DATA_OUT_TIMEOUT + 10)
            itts = []
            for _ in range(WRITES_PER_SESSION):
                lba = n * WRITES_PER_SESSION  # all aim at the first blocks: never written
                command = session.command(
                    write16(lba, WRITE // BLOCK), write=True, expected_data_transfer_length=WRITE
                )
                session.initiator.send(command)
                r2t = session.initiator.receive()  # asked for: the data never comes
                assert isinstance(r2t, R2T) and r2t.itt == command.itt, r2t
                itts.append(command.itt)
            stuck.append((session, itts))
        announced = STUCK_SESSIONS * WRITES_PER_SESSION * WRITE
        held = rss(our_server) - idle
        record_property("rss_above_idle_with_1GiB_announced", f"{held >> 20} MiB")
        assert held < RSS_BOUND, f"{held >> 20} MiB above idle with {announced >> 20} MiB announced"

        # Meanwhile a fresh session writes (through R2Ts, so through the budget) and reads.
        fresh = Session(portal)
        try:
            pattern = bytes(range(256)) * (4 * BLOCK)  # 512 KiB
            lba = 1 << 16
            assert solicited_write(fresh, lba, pattern).status == ScsiStatus.GOOD
            assert fresh.read(lba, len(pattern) // BLOCK) == pattern
        finally:
            fresh.close()
        assert rss(our_server) - idle < RSS_BOUND

        # After portal.data_out_timeout every stuck write ends with the protocol's error.
        for session, itts in stuck:
            ended = set()
            for _ in itts:
                response = session.response()
                assert response.status == ScsiStatus.CHECK_CONDITION
                assert sense_of(response) == (
                    SenseKey.ABORTED_COMMAND,
                    AdditionalSense.INITIATOR_RESPONSE_TIMEOUT,
                )
                ended.add(response.itt)
            assert ended == set(itts)
            assert session.read(0, 1) == bytes(BLOCK)  # nothing written; the session goes on
    finally:
        for session, _ in stuck:
            session.close()
    log = our_server.log()
    assert "no Data-Out for 5 s with 16777216 of 16777216 bytes still to come" in log
    assert "Traceback" not in log


def test_writes_sent_all_but_their_last_burst_hold_at_most_the_budget(
    portal: int, our_server: OurServer, record_property: Callable[[str, object], None]
) -> None:
    """The data does arrive, all but its last burst: 12 writes of 16 MiB, 192 MiB, over
    12 sessions, burst by burst in turn. The first 8 fill portal.max_write_buffer; the
    others end TASK SET FULL at their first burst, and the 8 end at the timeout."""
    idle = rss(our_server)
    sessions = [Session(portal) for _ in range(12)]
    try:
        r2ts: dict[int, R2T] = {}
        for n, session in enumerate(sessions):
            session.initiator.sock.settimeout(DATA_OUT_TIMEOUT + 10)
            command = session.command(
                write16(0, WRITE // BLOCK), write=True, expected_data_transfer_length=WRITE
            )
            session.initiator.send(command)
            r2t = session.initiator.receive()
            assert isinstance(r2t, R2T), r2t
            r2ts[n] = r2t
        refused = []
        while r2ts:
            for n, r2t in list(r2ts.items()):
                end = r2t.buffer_offset + r2t.desired_data_transfer_length
                if end == WRITE:  # the last burst: withheld
                    del r2ts[n]
                    continue
                initiator = sessions[n].initiator
                initiator.send(
                    DataOut(
                        final=True,
                        itt=r2t.itt,
                        ttt=r2t.ttt,
                        buffer_offset=r2t.buffer_offset,
                        data=bytes(r2t.desired_data_transfer_length),
                    )
                )
                answer = initiator.receive()
                if isinstance(answer, ScsiResponse):
                    assert answer.status == ScsiStatus.TASK_SET_FULL, answer
                    refused.append(n)
                    del r2ts[n]
                else:
                    assert isinstance(answer, R2T), answer
                    r2ts[n] = answer
        held = rss(our_server) - idle
        record_property("rss_above_idle_with_192MiB_sent", f"{held >> 20} MiB")
        assert refused == list(range(BUDGET // WRITE, 12))
        assert held < RSS_BOUND, f"{held >> 20} MiB above idle"
        for session in sessions[: BUDGET // WRITE]:
            response = session.response()
            assert sense_of(response) == (
                SenseKey.ABORTED_COMMAND,
                AdditionalSense.INITIATOR_RESPONSE_TIMEOUT,
            )
        fresh = Session(portal)  # the budget is back
        try:
            pattern = b"\x3c" * (1 << 20)
            assert solicited_write(fresh, 1 << 16, pattern).status == ScsiStatus.GOOD
            assert fresh.read(1 << 16, 8) == pattern[: 8 * BLOCK]
        finally:
            fresh.close()
    finally:
        for session in sessions:
            session.close()
    assert "Traceback" not in our_server.log()


def refused_login(port: int) -> None:
    with RawInitiator(port) as initiator:
        nosuch = [
            (key, value + "-nosuch" if key == "TargetName" else value) for key, value in NORMAL
        ]
        response = initiator.login(*nosuch)
        assert response.status_class == 2, response  # initiator error: not found


REFUSED_LINE = re.compile(
    r"login refused: .*?(?: \(and (\d+) more like it in the previous \d+ s\))?$"
)


def refused_lines(our_server: OurServer) -> list[int]:
    """Per line logged about a refused login: how many more it stands for."""
    lines = [REFUSED_LINE.search(line) for line in our_server.log().splitlines()]
    return [int(match.group(1) or 0) for match in lines if match]


def test_a_storm_of_refused_logins_is_logged_as_a_few_lines_with_a_count(
    portal: int, our_server: OurServer
) -> None:
    started = time.monotonic()
    sent = 0
    for _ in range(200):
        refused_login(portal)
        sent += 1
    storm = time.monotonic() - started
    during = len(refused_lines(our_server))
    assert 1 <= during <= storm / 2 + 2  # portal.login_warning_interval is 2 s

    # Once the interval is over, the next refusal is logged with the count of the rest.
    def summary_logged() -> bool:
        nonlocal sent
        if len(refused_lines(our_server)) != during:
            return True
        refused_login(portal)
        sent += 1
        return False

    eventually_sync(summary_logged, what="a refusal logged with the count of the rest", within=30)
    lines = refused_lines(our_server)
    assert lines[-1] > 0  # "(and N more like it in the previous ... s)"
    assert sum(1 + more for more in lines) == sent  # every refusal logged or counted

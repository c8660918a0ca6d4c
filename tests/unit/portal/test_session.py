"""The Full Feature Phase of one connection (RFC 3720 3.3, 10.10-10.19), sans-IO."""

import dataclasses
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import pytest

from isns_server.portal.iscsi.constants import (
    RESERVED_TAG,
    LogoutResponseCode,
    RejectReason,
    TaskManagementResponseCode,
)
from isns_server.portal.iscsi.keys import SessionType
from isns_server.portal.iscsi.login import LoginResult
from isns_server.portal.iscsi.negotiation import Negotiation, NegotiationPolicy
from isns_server.portal.iscsi.pdu import (
    R2T,
    DataIn,
    DataOut,
    LoginRequest,
    LogoutRequest,
    LogoutResponse,
    NopIn,
    NopOut,
    Pdu,
    Reject,
    ScsiCommand,
    ScsiResponse,
    SnackRequest,
    TaskManagementRequest,
    TaskManagementResponse,
    TextRequest,
    TextResponse,
)
from isns_server.portal.iscsi.text import decode_text, encode_text
from isns_server.portal.session.full_feature import FullFeatureSession, KeepalivePolicy, SessionStep
from isns_server.portal.session.tasks import ScsiTask
from isns_server.registry import TargetPortal, VisibleTarget
from isns_server.scsi import FileBackstore, LogicalUnit, ScsiTarget, UnitIdentity

INITIATOR = "iqn.2026-11.org.example.test:host1"
DISK = "iqn.2026-11.org.example.test:disk1"
OTHER = "iqn.2026-11.org.example.test:disk2"
PORTAL = TargetPortal(ip_address("127.0.0.1"), 3260, 1)
NOW = 1000.0
KEEPALIVE = KeepalivePolicy(30, 15)
INQUIRY = bytes([0x12, 0, 0, 0, 36]).ljust(16, b"\0")


class Services:
    def __init__(self, scsi: ScsiTarget | None = None) -> None:
        self.scsi = scsi
        self.visible = [
            VisibleTarget(DISK, None, (PORTAL,)),
            VisibleTarget(OTHER, None, (TargetPortal(ip_address("10.0.0.2"), 3260, 2),)),
        ]

    def visible_targets(
        self, initiator_name: str, peer: IPv4Address | IPv6Address | None
    ) -> list[VisibleTarget]:
        assert initiator_name == INITIATOR
        return self.visible

    def local_target(self, name: str) -> VisibleTarget | None:
        return VisibleTarget(DISK, None, (PORTAL,)) if name == DISK else None

    def scsi_target(self, name: str) -> ScsiTarget | None:
        return self.scsi if name == DISK else None


def new_session(
    discovery: bool = False,
    scsi: ScsiTarget | None = None,
    keepalive: KeepalivePolicy = KEEPALIVE,
    max_send: int = 8192,
    initial_r2t: bool = True,
) -> FullFeatureSession:
    parameters = dataclasses.replace(
        Negotiation(NegotiationPolicy()).result(1),
        session_type=SessionType.DISCOVERY if discovery else SessionType.NORMAL,
        initiator_name=INITIATOR,
        target_name=None if discovery else DISK,
        initiator_max_recv_data_segment_length=max_send,
        initial_r2t=initial_r2t,
    )
    login = LoginResult(
        parameters, bytes(6), tsih=5, cid=1, leading=True, cmdsn=10, statsn=100, chap_user=None
    )
    return FullFeatureSession(login, Services(scsi), keepalive, 32, NOW)


def run_tasks(session: FullFeatureSession, step: SessionStep) -> SessionStep:
    """`step` with its tasks run to completion, their responses after its PDUs."""
    for task in step.tasks:
        step.pdus += session.complete(task, task.execute()).pdus
    step.tasks = []
    return step


def one(step: SessionStep) -> Pdu:
    (pdu,) = step.pdus
    return pdu


def reason_of(step: SessionStep) -> int:
    pdu = one(step)
    assert isinstance(pdu, Reject), pdu
    return pdu.reason


def send_targets(session: FullFeatureSession, value: str, cmdsn: int = 10) -> list[tuple[str, str]]:
    request = TextRequest(
        immediate=True, itt=1, cmdsn=cmdsn, data=encode_text([("SendTargets", value)])
    )
    response = one(session.receive(request, NOW))
    assert isinstance(response, TextResponse) and response.final
    return list(decode_text(response.data))


def test_discovery_send_targets_all_and_by_name() -> None:
    session = new_session(discovery=True)
    assert send_targets(session, "All") == [
        ("TargetName", DISK),
        ("TargetAddress", "127.0.0.1:3260,1"),
        ("TargetName", OTHER),
        ("TargetAddress", "10.0.0.2:3260,2"),
    ]
    assert send_targets(session, OTHER.upper()) == [
        ("TargetName", OTHER),
        ("TargetAddress", "10.0.0.2:3260,2"),
    ]
    assert send_targets(session, "iqn.2026-11.org.example.test:hidden") == []
    assert send_targets(session, "") == []


def test_normal_session_send_targets_names_only_its_own_target() -> None:
    """Appendix D: never another target; All is answered like the empty value."""
    session = new_session()
    own = [("TargetName", DISK), ("TargetAddress", "127.0.0.1:3260,1")]
    assert send_targets(session, "") == own
    assert send_targets(session, "All") == own
    assert send_targets(session, DISK) == own
    assert send_targets(session, OTHER) == []


@pytest.mark.parametrize("discovery", [True, False])
@pytest.mark.parametrize(
    "pairs",
    [
        [("SendTargets", "Alle")],  # neither All, empty nor an iSCSI name
        [("SendTargets", "A")],
        [("SendTargets", "all")],
        [("SendTargets", "iqn.2026-13.bad")],
        [("SendTargets", "All"), ("X-org.example.q", "1")],  # appendix D: one key only
    ],
)
def test_a_bad_send_targets_is_rejected_and_the_session_goes_on(
    discovery: bool, pairs: list[tuple[str, str]]
) -> None:
    """Rejected, not answered empty ("no targets"): libiscsi fails that one request
    and its session lives on, which a text answer it cannot parse would not let it."""
    session = new_session(discovery=discovery)
    request = TextRequest(immediate=True, itt=2, data=encode_text(pairs))
    assert reason_of(session.receive(request, NOW)) == RejectReason.PROTOCOL_ERROR
    assert ("TargetName", DISK) in send_targets(session, "All")


@pytest.mark.parametrize("key", ["SendTargetsPlease", "SENDTARGETS", "X-org.example.q"])
def test_a_key_not_understood(key: str) -> None:
    """A discovery session takes SendTargets only (3.3): a Reject. A normal session
    answers key=NotUnderstood (5.2) in a final response: nothing is left waiting."""
    request = TextRequest(immediate=True, itt=2, data=encode_text([(key, "All")]))
    discovery = new_session(discovery=True)
    assert reason_of(discovery.receive(request, NOW)) == RejectReason.PROTOCOL_ERROR
    normal = new_session()
    response = one(normal.receive(request, NOW))
    assert isinstance(response, TextResponse) and response.final and not response.continue_
    assert list(decode_text(response.data)) == [(key, "NotUnderstood")]
    assert ("TargetName", DISK) in send_targets(normal, "")


def test_a_key_that_is_no_key_is_rejected() -> None:
    """A lower-case first letter is no standard-label (5.1): a format error."""
    for session in (new_session(discovery=True), new_session()):
        request = TextRequest(immediate=True, itt=2, data=b"sendTargets=All\0")
        assert reason_of(session.receive(request, NOW)) == RejectReason.PROTOCOL_ERROR
        assert ("TargetName", DISK) in send_targets(session, "All")


def test_text_keys_in_the_full_feature_phase() -> None:
    session = new_session()
    ask = [("X-org.example.q", "1"), ("InitiatorAlias", "host one")]
    response = one(session.receive(TextRequest(immediate=True, itt=3, data=encode_text(ask)), NOW))
    assert list(decode_text(response.data)) == [("X-org.example.q", "NotUnderstood")]
    for pairs in ([("HeaderDigest", "CRC32C")], [("MaxRecvDataSegmentLength", "100")]):
        request = TextRequest(immediate=True, itt=4, data=encode_text(pairs))
        assert reason_of(session.receive(request, NOW)) == RejectReason.PROTOCOL_ERROR
    discovery = new_session(discovery=True)
    request = TextRequest(immediate=True, itt=4, data=encode_text([("InitiatorAlias", "h")]))
    assert reason_of(discovery.receive(request, NOW)) == RejectReason.PROTOCOL_ERROR


def test_max_recv_data_segment_length_declared_in_text_takes_effect_after_it() -> None:
    session = new_session()
    ping = NopOut(immediate=True, itt=9, data=b"p" * 600)
    assert len(one(session.receive(ping, NOW)).data) == 600
    declare = encode_text([("MaxRecvDataSegmentLength", "512")])
    assert one(session.receive(TextRequest(immediate=True, itt=1, data=declare), NOW)).data == b""
    assert len(one(session.receive(ping, NOW)).data) == 512


def scsi_target(tmp_path: Path) -> ScsiTarget:
    store = FileBackstore(tmp_path / "disk.img", 1 << 20, False, "lun")
    return ScsiTarget({0: LogicalUnit(store, UnitIdentity(DISK, 1, 0))})


def test_scsi_commands_in_a_normal_session(tmp_path: Path) -> None:
    session = new_session(scsi=scsi_target(tmp_path))
    command = ScsiCommand(read=True, itt=7, cmdsn=10, expected_data_transfer_length=36, cdb=INQUIRY)
    step = session.receive(command, NOW)
    assert step.pdus == [] and len(step.tasks) == 1  # nothing until the task has run
    response = one(run_tasks(session, step))
    assert isinstance(response, DataIn) and response.status_present
    assert (response.statsn, response.expcmdsn, response.maxcmdsn) == (100, 11, 42)
    assert len(response.data) == 36


def test_commands_run_in_cmdsn_order_and_duplicates_are_dropped(tmp_path: Path) -> None:
    session = new_session(scsi=scsi_target(tmp_path))
    command = ScsiCommand(read=True, expected_data_transfer_length=36, cdb=INQUIRY)
    assert session.receive(dataclasses.replace(command, itt=2, cmdsn=11), NOW).pdus == []
    step = session.receive(dataclasses.replace(command, itt=1, cmdsn=10), NOW)
    assert [type(task) for task in step.tasks] == [ScsiTask, ScsiTask]
    assert [task.itt for task in step.tasks if isinstance(task, ScsiTask)] == [1, 2]
    assert [p.itt for p in run_tasks(session, step).pdus if isinstance(p, DataIn)] == [1, 2]
    assert session.receive(dataclasses.replace(command, itt=3, cmdsn=10), NOW).pdus == []


def test_discovery_session_rejects_all_but_send_targets_and_logout() -> None:
    session = new_session(discovery=True)
    refused: list[Pdu] = [
        ScsiCommand(read=True, itt=1, cmdsn=10, cdb=INQUIRY),
        NopOut(itt=2, cmdsn=11),
        TaskManagementRequest(immediate=True, function=5, itt=3, cmdsn=12),
        LogoutRequest(immediate=True, reason_code=1, itt=4, cmdsn=12),
        DataOut(itt=5),
        SnackRequest(itt=6),
        LoginRequest(itt=7),
    ]
    for pdu in refused:
        reject = one(session.receive(pdu, NOW))
        assert isinstance(reject, Reject) and reject.reason == RejectReason.PROTOCOL_ERROR, pdu
        assert bytes(reject.data[:1])[0] & 0x3F == pdu.OPCODE  # the header, echoed
    # The rejected commands still took their CmdSN: the next one is in order.
    assert send_targets(session, "All", cmdsn=12)
    assert isinstance(session.reject(RejectReason.DATA_DIGEST_ERROR, b"h"), Reject)


def test_logout() -> None:
    session = new_session()
    step = session.receive(LogoutRequest(immediate=True, reason_code=1, cid=9, itt=1), NOW)
    response = one(step)
    assert isinstance(response, LogoutResponse)
    assert response.response == LogoutResponseCode.CID_NOT_FOUND and not step.logged_out
    step = session.receive(LogoutRequest(immediate=True, reason_code=2, cid=1, itt=2), NOW)
    response = one(step)
    assert isinstance(response, LogoutResponse)
    assert response.response == LogoutResponseCode.CONNECTION_RECOVERY_NOT_SUPPORTED
    assert response.time2wait == 2 and not step.logged_out
    reject = session.receive(LogoutRequest(immediate=True, reason_code=9, itt=3), NOW)
    assert reason_of(reject) == RejectReason.PROTOCOL_ERROR
    step = session.receive(LogoutRequest(immediate=True, reason_code=1, cid=1, itt=4), NOW)
    response = one(step)
    assert isinstance(response, LogoutResponse) and response.response == 0 and step.logged_out
    discovery = new_session(discovery=True)
    assert discovery.receive(LogoutRequest(immediate=True, reason_code=0, itt=1), NOW).logged_out


def test_nop_out_ping_is_echoed_and_task_management_is_not_supported() -> None:
    session = new_session(max_send=512)
    echo = one(session.receive(NopOut(itt=4, cmdsn=10, lun=3 << 48, data=b"p" * 600), NOW))
    assert isinstance(echo, NopIn)
    assert (echo.itt, echo.ttt, echo.lun, echo.statsn) == (4, RESERVED_TAG, 3 << 48, 100)
    assert echo.data == b"p" * 512
    assert session.receive(NopOut(immediate=True), NOW).pdus == []  # no answer wanted
    response = one(session.receive(TaskManagementRequest(immediate=True, function=1, itt=5), NOW))
    assert isinstance(response, TaskManagementResponse)
    assert response.response == TaskManagementResponseCode.FUNCTION_NOT_SUPPORTED


def test_keepalive_pings_then_closes() -> None:
    session = new_session()
    assert session.deadline == NOW + 30
    assert session.handle_timer(NOW + 29).pdus == []
    ping = one(session.handle_timer(NOW + 30))
    assert isinstance(ping, NopIn) and ping.itt == RESERVED_TAG and ping.ttt != RESERVED_TAG
    assert ping.statsn == 100  # a ping does not advance StatSN
    assert session.deadline == NOW + 45
    session.receive(NopOut(immediate=True, ttt=ping.ttt), NOW + 31)
    assert session.deadline == NOW + 61
    ping = one(session.handle_timer(NOW + 61))
    assert isinstance(ping, NopIn)
    step = session.handle_timer(NOW + 76)
    assert step.close == "no answer to a NOP-In ping in 15 s"


def test_discovery_sessions_are_not_pinged_but_closed_when_idle() -> None:
    session = new_session(discovery=True)
    assert session.deadline == NOW + 45
    assert session.handle_timer(NOW + 45).close == "discovery session idle for 45 s"
    assert new_session(keepalive=KeepalivePolicy(0, 15)).deadline is None


def test_unsolicited_data_out_is_rejected() -> None:
    assert reason_of(new_session().receive(DataOut(itt=1), NOW)) == RejectReason.PROTOCOL_ERROR


@pytest.mark.parametrize("discovery", [True, False])
def test_status_numbers_advance_by_one_per_response(discovery: bool) -> None:
    session = new_session(discovery=discovery)
    statsns = []
    for itt in range(3):
        request = TextRequest(immediate=True, itt=itt, data=encode_text([("SendTargets", "")]))
        response = one(session.receive(request, NOW))
        assert isinstance(response, TextResponse)
        statsns.append(response.statsn)
    assert statsns == [100, 101, 102]


WRITE_2_BLOCKS = bytes([0x2A, 0, 0, 0, 0, 4, 0, 0, 2, 0]).ljust(16, b"\0")
READ_2_BLOCKS = bytes([0x28, 0, 0, 0, 0, 4, 0, 0, 2, 0]).ljust(16, b"\0")


def test_write_with_immediate_data_then_r2t_and_data_out(tmp_path: Path) -> None:
    session = new_session(scsi=scsi_target(tmp_path))
    write = ScsiCommand(
        write=True, itt=7, cmdsn=10, expected_data_transfer_length=1024, cdb=WRITE_2_BLOCKS
    )
    r2t = one(session.receive(dataclasses.replace(write, data=b"a" * 512), NOW))
    assert isinstance(r2t, R2T) and (r2t.buffer_offset, r2t.desired_data_transfer_length) == (
        512,
        512,
    )
    assert (r2t.itt, r2t.r2tsn, r2t.statsn) == (7, 0, 100)  # an R2T does not take a StatSN
    data_out = DataOut(final=True, itt=7, ttt=r2t.ttt, buffer_offset=512, data=b"b" * 512)
    response = one(run_tasks(session, session.receive(data_out, NOW)))
    assert isinstance(response, ScsiResponse) and response.status == 0 and response.statsn == 100
    read = ScsiCommand(read=True, itt=8, cmdsn=11, expected_data_transfer_length=1024)
    data_in = one(
        run_tasks(session, session.receive(dataclasses.replace(read, cdb=READ_2_BLOCKS), NOW))
    )
    assert bytes(data_in.data) == b"a" * 512 + b"b" * 512


def test_data_out_out_of_sequence_fails_the_task_and_unknown_task_is_rejected(
    tmp_path: Path,
) -> None:
    session = new_session(scsi=scsi_target(tmp_path))
    write = ScsiCommand(
        write=True, itt=7, cmdsn=10, expected_data_transfer_length=1024, cdb=WRITE_2_BLOCKS
    )
    r2t = one(session.receive(write, NOW))
    assert isinstance(r2t, R2T)
    assert reason_of(session.receive(DataOut(itt=99, ttt=r2t.ttt), NOW)) == (
        RejectReason.PROTOCOL_ERROR
    )
    gap = DataOut(itt=7, ttt=r2t.ttt, datasn=1, data=b"x" * 512)
    assert session.receive(gap, NOW) == SessionStep()  # waiting for the end of the sequence
    last = DataOut(final=True, itt=7, ttt=r2t.ttt, datasn=0, buffer_offset=512, data=b"y" * 512)
    step = session.receive(last, NOW)
    response = one(step)
    assert step.close is None and isinstance(response, ScsiResponse)
    # CHECK CONDITION, ABORTED COMMAND, PROTOCOL SERVICE CRC ERROR (RFC 3720 6.7, 10.4.7.2)
    assert response.status == 2 and (response.data[4], response.data[14:16]) == (
        0x0B,
        b"\x47\x05",
    )


def aborted_command(step: SessionStep) -> bytes:
    """The ASC and ASCQ of a CHECK CONDITION, ABORTED COMMAND the connection outlives."""
    response = one(step)
    assert step.close is None and isinstance(response, ScsiResponse)
    assert response.status == 2 and response.data[4] == 0x0B
    return bytes(response.data[14:16])


def reads_back_zeros(session: FullFeatureSession) -> None:
    read = ScsiCommand(
        read=True, itt=9, cmdsn=11, expected_data_transfer_length=1024, cdb=READ_2_BLOCKS
    )
    data_in = one(run_tasks(session, session.receive(read, NOW)))
    assert isinstance(data_in, DataIn) and data_in.status == 0
    assert bytes(data_in.data) == bytes(1024)  # the failed write wrote nothing


def test_unexpected_unsolicited_data_fails_the_task_once_the_r2t_is_answered(
    tmp_path: Path,
) -> None:
    session = new_session(scsi=scsi_target(tmp_path))  # InitialR2T=Yes: no unsolicited data
    write = ScsiCommand(
        write=True, itt=7, cmdsn=10, expected_data_transfer_length=1024, cdb=WRITE_2_BLOCKS
    )
    r2t = one(session.receive(write, NOW))
    assert isinstance(r2t, R2T)
    unsolicited = DataOut(final=True, itt=7, ttt=RESERVED_TAG, data=b"u" * 512)
    assert session.receive(unsolicited, NOW) == SessionStep()  # dropped; the R2T is due
    answer = DataOut(final=True, itt=7, ttt=r2t.ttt, data=b"s" * 1024)
    # CHECK CONDITION, ABORTED COMMAND, UNEXPECTED UNSOLICITED DATA (RFC 3720 10.4.7.2)
    assert aborted_command(session.receive(answer, NOW)) == b"\x0c\x0c"
    reads_back_zeros(session)


def test_an_unsolicited_burst_ending_short_fails_the_task(tmp_path: Path) -> None:
    session = new_session(scsi=scsi_target(tmp_path), initial_r2t=False)
    write = ScsiCommand(
        write=True,
        final=False,
        itt=7,
        cmdsn=10,
        expected_data_transfer_length=1024,
        cdb=WRITE_2_BLOCKS,
    )
    assert session.receive(write, NOW) == SessionStep()  # F clear: all 1024 bytes unsolicited
    short = DataOut(final=True, itt=7, ttt=RESERVED_TAG, data=b"u" * 512)
    # CHECK CONDITION, ABORTED COMMAND, NOT ENOUGH UNSOLICITED DATA (RFC 3720 10.4.7.2)
    assert aborted_command(session.receive(short, NOW)) == b"\x0c\x0d"
    reads_back_zeros(session)


def test_abort_task_drops_a_write_waiting_for_data(tmp_path: Path) -> None:
    session = new_session(scsi=scsi_target(tmp_path))
    write = ScsiCommand(
        write=True, itt=7, cmdsn=10, expected_data_transfer_length=1024, cdb=WRITE_2_BLOCKS
    )
    r2t = one(session.receive(write, NOW))
    abort = TaskManagementRequest(
        immediate=True, function=1, itt=8, referenced_task_tag=7, cmdsn=11, refcmdsn=10
    )
    answer = one(session.receive(abort, NOW))
    assert isinstance(answer, TaskManagementResponse)
    assert answer.response == TaskManagementResponseCode.FUNCTION_COMPLETE
    assert isinstance(r2t, R2T)
    late = DataOut(final=True, itt=7, ttt=r2t.ttt, data=b"x" * 1024)
    assert reason_of(session.receive(late, NOW)) == RejectReason.PROTOCOL_ERROR
    again = dataclasses.replace(abort, itt=9)
    assert one(session.receive(again, NOW)).response == (  # type: ignore[attr-defined]
        TaskManagementResponseCode.TASK_DOES_NOT_EXIST
    )


def test_task_management_answers_after_the_tasks_it_aborts_and_they_go_unanswered(
    tmp_path: Path,
) -> None:
    session = new_session(scsi=scsi_target(tmp_path))
    read = ScsiCommand(read=True, expected_data_transfer_length=1024, cdb=READ_2_BLOCKS)
    first = session.receive(dataclasses.replace(read, itt=1, cmdsn=10), NOW).tasks
    second = session.receive(dataclasses.replace(read, itt=2, cmdsn=11), NOW).tasks
    again = session.receive(dataclasses.replace(read, itt=2, cmdsn=12), NOW)
    assert reason_of(again) == RejectReason.TASK_IN_PROGRESS  # its tag is still in use
    abort = TaskManagementRequest(immediate=True, function=2, itt=9, cmdsn=13)  # ABORT TASK SET
    assert session.receive(abort, NOW).pdus == []  # both tasks are still on the disk
    (task,) = first
    assert session.complete(task, task.execute()).pdus == []  # aborted: no response
    (task,) = second
    answer = one(session.complete(task, task.execute()))
    assert isinstance(answer, TaskManagementResponse)
    assert (answer.itt, answer.response) == (9, TaskManagementResponseCode.FUNCTION_COMPLETE)


def test_a_failing_disk_fails_the_command_with_medium_error(tmp_path: Path) -> None:
    target = scsi_target(tmp_path)
    target.units[0].backstore.close()  # reads now fail with EBADF, as a dead disk would
    session = new_session(scsi=target)
    read = ScsiCommand(read=True, itt=1, cmdsn=10, expected_data_transfer_length=1024)
    response = one(
        run_tasks(session, session.receive(dataclasses.replace(read, cdb=READ_2_BLOCKS), NOW))
    )
    assert isinstance(response, ScsiResponse) and response.status == 2  # CHECK CONDITION
    assert response.data[2 + 2] & 0x0F == 0x03  # MEDIUM ERROR


def test_writes_past_the_session_budget_get_task_set_full(tmp_path: Path) -> None:
    session = new_session(scsi=scsi_target(tmp_path))
    blocks = 32768  # 16 MiB: the largest write a command may announce
    cdb = bytes([0x2A, 0, 0, 0, 0, 0, 0]) + blocks.to_bytes(2, "big") + bytes(7)
    write = ScsiCommand(write=True, final=True, expected_data_transfer_length=blocks * 512, cdb=cdb)
    for itt in range(4):  # 64 MiB waiting for Data-Out: the budget
        step = session.receive(dataclasses.replace(write, itt=itt, cmdsn=10 + itt), NOW)
        assert isinstance(step.pdus[0], R2T)
    full = one(session.receive(dataclasses.replace(write, itt=9, cmdsn=14), NOW))
    assert isinstance(full, ScsiResponse) and full.status == 0x28  # TASK SET FULL
    abort = TaskManagementRequest(immediate=True, function=2, itt=20, cmdsn=15)  # ABORT TASK SET
    session.receive(abort, NOW)
    again = session.receive(dataclasses.replace(write, itt=10, cmdsn=15), NOW)
    assert isinstance(again.pdus[0], R2T)  # the budget was given back

"""One portal connection, sans-IO, over a real registry and configured targets: login,
zoning at login, discovery, digests, and the RFC's answer to bad input."""

from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isns_server.config.schema import ChapCredentials, Lun, Target
from isns_server.isnsp.constants import FunctionId, Tag
from isns_server.isnsp.messages import Attribute, request
from isns_server.portal.catalog import PortalCatalog
from isns_server.portal.iscsi.codec import PduReader, encode_pdu
from isns_server.portal.iscsi.constants import LoginStatus, RejectReason
from isns_server.portal.iscsi.login import LoginPolicy
from isns_server.portal.iscsi.pdu import (
    AsyncMessage,
    DataIn,
    LoginRequest,
    LoginResponse,
    NopOut,
    Pdu,
    Reject,
    ScsiCommand,
    ScsiResponse,
    TaskManagementRequest,
    TaskManagementResponse,
    TextRequest,
    TextResponse,
)
from isns_server.portal.iscsi.text import decode_text, encode_text
from isns_server.portal.local_targets import close_local_targets, open_local_targets
from isns_server.portal.self_registration import Registration
from isns_server.portal.session.connection import Connection, PortalSettings, login_warnings
from isns_server.portal.session.dataout import WriteBudget, WritePolicy
from isns_server.portal.session.full_feature import KeepalivePolicy
from isns_server.portal.session.tasks import ScsiTask, UnitJob
from isns_server.registry import Policy, Registry, TargetPortal

PREFIX = "iqn.2026-11.org.example.test:"
DISK, SECRET_DISK = PREFIX + "disk", PREFIX + "secret"
ZONED, STRANGER, FRIEND = PREFIX + "zoned", PREFIX + "stranger", PREFIX + "friend"
ADMIN = PREFIX + "admin"
PORTAL = TargetPortal(ip_address("127.0.0.1"), 3260, 1)
NOW = 1000.0


def settings_of_a_portal() -> PortalSettings:
    """A portal of its own for each peer: a budget, a throttle for login warnings."""
    return PortalSettings(
        LoginPolicy(login_timeout=5),
        KeepalivePolicy(30, 15),
        WritePolicy(WriteBudget(128 << 20), 20),
        login_warnings(60),
    )


INQUIRY = bytes([0x12, 0, 0, 0, 36]).ljust(16, b"\0")


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[PortalCatalog]:
    targets = open_local_targets(
        [
            Target(
                DISK, luns=(Lun(0, tmp_path / "disk.img", 1 << 20),), allowed_initiators=(FRIEND,)
            ),
            Target(SECRET_DISK, chap=ChapCredentials("alice", "alicesecret12")),
        ],
        1,
    )
    registry = Registry(Policy(default_dd=False, control_nodes=frozenset({ADMIN})))
    registration = Registration("portal", ((DISK, None), (SECRET_DISK, None)), (PORTAL,))
    registry.handle(registration.register(), NOW)
    dd = request(
        FunctionId.DD_REG,
        1,
        Attribute(Tag.ISCSI_NAME, ADMIN),
        operating=(
            Attribute(Tag.DD_SYMBOLIC_NAME, "dd"),
            Attribute(Tag.DD_MEMBER_ISCSI_NAME, DISK),
            Attribute(Tag.DD_MEMBER_ISCSI_NAME, ZONED),
        ),
    )
    assert registry.handle(dd, NOW).response.status == 0
    yield PortalCatalog(registry, targets, None, (PORTAL,))
    close_local_targets(targets)


class Peer:
    """The initiator's end of a sans-IO connection."""

    def __init__(
        self,
        directory: PortalCatalog,
        portal: PortalSettings | None = None,
        address: str = "192.0.2.1:40000",
    ) -> None:
        self.woken = 0
        portal = portal or settings_of_a_portal()
        self.connection = Connection(directory, portal, address, NOW, self)
        self.reader = PduReader(max_recv_data_segment_length=1 << 24)
        self.digests = (False, False)

    def wake(self) -> None:
        self.woken += 1

    def send_bytes(self, data: bytes, now: float = NOW) -> list[Pdu]:
        self.connection.reader.receive_data(data)
        self.connection.receive(now)
        return self.answers()

    def answers(self) -> list[Pdu]:
        """As the portal's adapter does after each call: run the tasks asked for (a
        result may release more), then take everything to send at once."""
        while tasks := self.connection.tasks_to_start():
            for task in tasks:
                self.connection.task_done(task, task.execute())
        for piece in self.connection.data_to_send():
            self.reader.receive_data(piece)
        answers = []
        while (pdu := self.reader.next_pdu()) is not None:
            answers.append(pdu)
        return answers

    def send(self, pdu: Pdu) -> list[Pdu]:
        return self.send_bytes(b"".join(encode_pdu(pdu, *self.digests)))

    def login(self, *pairs: tuple[str, str], isid: bytes = bytes(6)) -> LoginResponse:
        (response,) = self.send(
            LoginRequest(transit=True, csg=1, nsg=3, itt=1, isid=isid, data=encode_text(pairs))
        )
        assert isinstance(response, LoginResponse)
        if response.status == 0 and response.transit:
            answers = dict(decode_text(response.data))
            self.digests = (
                answers.get("HeaderDigest") == "CRC32C",
                answers.get("DataDigest") == "CRC32C",
            )
            self.reader.header_digest, self.reader.data_digest = self.digests
        return response


def normal(initiator: str, target: str = DISK) -> tuple[tuple[str, str], ...]:
    return (("InitiatorName", initiator), ("SessionType", "Normal"), ("TargetName", target))


def discovery(initiator: str) -> tuple[tuple[str, str], ...]:
    return (("InitiatorName", initiator), ("SessionType", "Discovery"))


def test_zoned_initiator_logs_in_and_runs_commands(directory: PortalCatalog) -> None:
    peer = Peer(directory)
    response = peer.login(*normal(ZONED), ("HeaderDigest", "CRC32C"), ("DataDigest", "CRC32C"))
    assert response.status == 0 and response.tsih != 0
    assert peer.digests == (True, True)
    command = ScsiCommand(read=True, itt=2, cmdsn=0, expected_data_transfer_length=36, cdb=INQUIRY)
    (data_in,) = peer.send(command)
    assert isinstance(data_in, DataIn) and data_in.status == 0 and len(data_in.data) == 36
    peer.connection.connection_lost()


def test_calls_only_queue_and_the_adapter_pulls_tasks_then_bytes(
    directory: PortalCatalog,
) -> None:
    """Pull-only: receive queues the commands' tasks and sends nothing of theirs; a
    result queues the response and never asks for a wake-up (the adapter called)."""
    peer = Peer(directory)
    assert peer.login(*normal(ZONED)).status == 0
    inquiries = [
        ScsiCommand(read=True, itt=i, cmdsn=i - 2, expected_data_transfer_length=36, cdb=INQUIRY)
        for i in (2, 3)
    ]
    peer.connection.reader.receive_data(b"".join(b"".join(encode_pdu(c)) for c in inquiries))
    peer.connection.receive(NOW)
    tasks = peer.connection.tasks_to_start()
    assert [type(task) for task in tasks] == [ScsiTask, ScsiTask]
    assert [task.itt for task in tasks if isinstance(task, ScsiTask)] == [2, 3]
    assert peer.connection.data_to_send() == [] and peer.connection.tasks_to_start() == []
    for task in reversed(tasks):  # results may come back in any order
        peer.connection.task_done(task, task.execute())
    assert peer.woken == 0
    answers = peer.answers()
    assert [type(pdu) for pdu in answers] == [DataIn, DataIn]
    assert [pdu.itt for pdu in answers if isinstance(pdu, DataIn)] == [3, 2]
    peer.connection.connection_lost()


@pytest.mark.parametrize(
    ("initiator", "target", "status"),
    [
        (STRANGER, DISK, LoginStatus.AUTHORIZATION_FAILURE),  # shares no DD with it
        (ZONED, PREFIX + "nosuch", LoginStatus.NOT_FOUND),
        (ZONED, SECRET_DISK, LoginStatus.AUTHORIZATION_FAILURE),  # in no DD at all
    ],
)
def test_refused_logins(
    directory: PortalCatalog,
    initiator: str,
    target: str,
    status: LoginStatus,
    caplog: pytest.LogCaptureFixture,
) -> None:
    peer = Peer(directory)
    assert peer.login(*normal(initiator, target)).status == status
    assert peer.connection.closing is not None
    assert f"({initiator}) -> {target}: login refused" in caplog.text


def test_refused_and_timed_out_logins_are_summarised_per_source_address(
    directory: PortalCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    portal = settings_of_a_portal()  # one interval of 60 s
    refused = normal(STRANGER, DISK)
    for _ in range(2):
        assert Peer(directory, portal).login(*refused).status == LoginStatus.AUTHORIZATION_FAILURE
    Peer(directory, portal).connection.handle_timer(NOW + 5)  # the login timeout
    assert caplog.text.count("login refused") == 1 and "not completed" not in caplog.text
    Peer(directory, portal, "192.0.2.2:40000").login(*refused)  # another address: its own
    assert caplog.text.count("login refused") == 2
    request = LoginRequest(transit=True, csg=1, nsg=3, itt=1, data=encode_text(refused))
    Peer(directory, portal).send_bytes(b"".join(encode_pdu(request)), now=NOW + 61)
    last = caplog.records[-1].getMessage()
    assert "login refused" in last and last.endswith("(and 2 more like it in the previous 61 s)")


def test_the_access_list_admits_an_unzoned_initiator(directory: PortalCatalog) -> None:
    assert Peer(directory).login(*normal(FRIEND)).status == 0
    assert directory.authorize(FRIEND.upper(), DISK, None)  # names compare normalised
    assert not directory.authorize(FRIEND, SECRET_DISK, None)


def test_discovery_lists_what_zoning_shows(directory: PortalCatalog) -> None:
    for initiator, expected in ((ZONED, [DISK]), (STRANGER, [])):
        peer = Peer(directory)
        assert peer.login(*discovery(initiator)).status == 0
        ask = TextRequest(immediate=True, itt=2, data=encode_text([("SendTargets", "All")]))
        (response,) = peer.send(ask)
        assert isinstance(response, TextResponse)
        names = [value for key, value in decode_text(response.data) if key == "TargetName"]
        assert names == expected


def test_tsihs_are_unique_among_live_sessions(directory: PortalCatalog) -> None:
    peers = [Peer(directory) for _ in range(3)]
    tsihs = {
        peer.login(*discovery(ZONED), isid=bytes([0, 0, 0, 0, 0, i])).tsih
        for i, peer in enumerate(peers)
    }
    assert len(tsihs) == 3 and 0 not in tsihs
    for peer in peers:
        peer.connection.connection_lost()
    assert directory.allocate_tsih() not in tsihs  # not reused at once either


def test_garbage_before_login_closes_silently(
    directory: PortalCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    peer = Peer(directory)
    assert peer.send_bytes(b"\x16\x03\x01" + bytes(45)) == []  # a TLS hello, say
    assert peer.connection.closing == "it did not start with a Login Request"
    assert "login refused" not in caplog.text


def test_unknown_opcode_during_login_is_0x020b(directory: PortalCatalog) -> None:
    peer = Peer(directory)
    first = LoginRequest(
        csg=0, nsg=0, itt=1, data=encode_text([*normal(ZONED), ("AuthMethod", "None")])
    )
    assert peer.send(first)
    raw = bytearray(encode_pdu(NopOut(immediate=True))[0])
    raw[0] = 0x1C
    (response,) = peer.send_bytes(bytes(raw))
    assert isinstance(response, LoginResponse)
    assert response.status == LoginStatus.INVALID_DURING_LOGIN


def test_oversize_first_login_request_is_answered_0x0200(directory: PortalCatalog) -> None:
    peer = Peer(directory)
    (response,) = peer.send(LoginRequest(transit=True, csg=1, nsg=3, itt=77, data=b"x" * 8193))
    assert isinstance(response, LoginResponse)
    assert (response.status, response.itt) == (LoginStatus.INITIATOR_ERROR, 77)
    assert peer.connection.closing is not None


def test_full_feature_codec_errors(directory: PortalCatalog) -> None:
    peer = Peer(directory)
    peer.login(*discovery(ZONED), ("DataDigest", "CRC32C"))
    header, data, _ = encode_pdu(NopOut(immediate=True, itt=3, data=b"ping"), False, True)
    (reject,) = peer.send_bytes(bytes(header) + bytes(data) + b"\0\0\0\0")
    assert isinstance(reject, Reject) and reject.reason == RejectReason.DATA_DIGEST_ERROR
    assert bytes(reject.data) == bytes(header)  # the complete header of the bad PDU
    assert peer.connection.closing is None
    (reject,) = peer.send(NopOut(immediate=True, data=b"x" * 262148))
    assert isinstance(reject, Reject) and reject.reason == RejectReason.PROTOCOL_ERROR
    assert peer.connection.closing is not None


def test_login_timeout(directory: PortalCatalog) -> None:
    peer = Peer(directory)
    assert peer.connection.deadline == NOW + 5
    peer.connection.handle_timer(NOW + 5)
    assert peer.connection.closing == "login not completed in 5 s"
    assert peer.connection.deadline is None


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_crash_a_connection(directory: PortalCatalog, data: bytes) -> None:
    peer = Peer(directory)
    peer.send_bytes(data)
    peer.connection.handle_timer(NOW + 100)
    assert peer.connection.deadline is None or peer.connection.closing is None


def test_a_normal_session_asks_for_its_own_target(directory: PortalCatalog) -> None:
    peer = Peer(directory)
    assert peer.login(*normal(ZONED)).status == 0
    (response,) = peer.send(TextRequest(itt=2, cmdsn=0, data=encode_text([("SendTargets", "")])))
    assert isinstance(response, TextResponse)
    assert list(decode_text(response.data)) == [
        ("TargetName", DISK),
        ("TargetAddress", "127.0.0.1:3260,1"),
    ]


def isid(n: int) -> bytes:
    return bytes([0x40, 0, 0, 0, 0, n])  # a random-qualifier ISID (10.12.5)


def scsi(peer: Peer, cdb: bytes, itt: int, cmdsn: int) -> Pdu:
    (answer,) = peer.send(ScsiCommand(itt=itt, cmdsn=cmdsn, cdb=cdb.ljust(16, b"\0")))
    return answer


RESERVE_6, TEST_UNIT_READY = bytes([0x16]), bytes([0x00])


def test_a_login_with_the_same_isid_reinstates_the_session_and_keeps_the_nexus(
    directory: PortalCatalog,
) -> None:
    old, new, other = Peer(directory), Peer(directory), Peer(directory)
    assert old.login(*normal(ZONED), isid=isid(1)).status == 0
    assert other.login(*normal(ZONED), isid=isid(2)).status == 0
    reserved = scsi(old, RESERVE_6, itt=2, cmdsn=0)
    assert isinstance(reserved, ScsiResponse) and reserved.status == 0
    assert new.login(*normal(ZONED), isid=isid(1)).status == 0
    assert old.connection.closing is not None and "reinstated" in old.connection.closing
    assert old.woken  # the portal is told to close it
    old.connection.connection_lost()
    # The I_T nexus lives on in the new session: its RESERVE (6) still holds.
    answer = scsi(new, TEST_UNIT_READY, itt=2, cmdsn=0)
    assert isinstance(answer, ScsiResponse) and answer.status == 0
    conflict = scsi(other, TEST_UNIT_READY, itt=2, cmdsn=0)
    assert isinstance(conflict, ScsiResponse) and conflict.status == 0x18  # RESERVATION CONFLICT


def test_a_reset_by_one_session_is_an_async_event_for_every_session(
    directory: PortalCatalog,
) -> None:
    watcher, resetter = Peer(directory), Peer(directory)
    assert watcher.login(*normal(ZONED), isid=isid(1)).status == 0
    assert resetter.login(*normal(ZONED), isid=isid(2)).status == 0
    reset = TaskManagementRequest(immediate=True, function=5, itt=3, cmdsn=0)  # LUN RESET
    own_event, answer = resetter.send(reset)  # SAM-5 6.3.3: the sender is told too
    assert isinstance(own_event, AsyncMessage) and isinstance(answer, TaskManagementResponse)
    assert own_event.statsn + 1 == answer.statsn and answer.response == 0
    own_ua = scsi(resetter, TEST_UNIT_READY, itt=4, cmdsn=0)
    assert isinstance(own_ua, ScsiResponse) and own_ua.status == 2
    assert watcher.woken
    (event,) = watcher.answers()  # what it was woken for
    assert isinstance(event, AsyncMessage) and event.async_event == 0  # a SCSI event
    sense = event.data[2:]
    assert (sense[2] & 0x0F, sense[12], sense[13]) == (0x6, 0x29, 0x00)  # UNIT ATTENTION
    # The unit attention is still reported to the next command, for initiators that
    # ignore asynchronous events.
    ua = scsi(watcher, TEST_UNIT_READY, itt=2, cmdsn=0)
    assert isinstance(ua, ScsiResponse) and ua.status == 2


def test_a_reset_and_the_end_of_a_session_are_jobs_for_the_units_workers(
    directory: PortalCatalog,
) -> None:
    """The units' state is changed by their workers only: a LUN reset leaves the session
    as a job, the reset's answer and unit attention wait for it, and so does forgetting
    a nexus when its session ends."""
    peer = Peer(directory)
    assert peer.login(*normal(ZONED), isid=isid(1)).status == 0
    unit = directory.targets[DISK].scsi.units[0]
    assert isinstance(scsi(peer, RESERVE_6, itt=2, cmdsn=0), ScsiResponse)
    reset = TaskManagementRequest(immediate=True, function=5, itt=3, cmdsn=1)  # LUN RESET
    peer.connection.reader.receive_data(b"".join(encode_pdu(reset)))
    peer.connection.receive(NOW)
    (job,) = peer.connection.tasks_to_start()
    assert isinstance(job, UnitJob) and job.unit is unit
    assert peer.connection.data_to_send() == []  # answered once the unit is reset
    assert unit.state.reservation is not None and not unit.state.unit_attentions
    peer.connection.task_done(job, job.execute())
    event, answer = peer.answers()
    assert isinstance(event, AsyncMessage) and isinstance(answer, TaskManagementResponse)
    assert unit.state.reservation is None and unit.state.unit_attentions
    peer.connection.connection_lost()
    jobs = peer.connection.tasks_to_start()
    assert [job.unit for job in jobs] == list(directory.targets[DISK].scsi.units.values())
    assert all(isinstance(job, UnitJob) for job in jobs)
    assert unit.state.unit_attentions  # until the unit's worker forgets the nexus
    for job in jobs:
        job.execute()
    assert not unit.state.unit_attentions

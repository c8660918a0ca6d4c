"""Every TCP listener (iSNS, SLP, the iSCSI portal) caps connections per source address,
closes silent ones, and survives running out of file descriptors without flooding the
log (issue 12 item 1). The greedy client is 127.0.0.1; the bystander is 127.0.0.2."""

import os
import resource
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from discovery_agent.slp.messages import SrvRply, SrvRqst
from isns_server.isnsp.codec import StreamDecoder, encode_message
from isns_server.isnsp.constants import FunctionId, Tag
from isns_server.isnsp.messages import Attribute, Message, request
from isns_server.portal.iscsi.codec import PduReader, encode_pdu
from isns_server.portal.iscsi.constants import LoginStage
from isns_server.portal.iscsi.pdu import LoginRequest, LoginResponse
from isns_server.portal.iscsi.text import encode_text

from ..conftest import ADMIN
from ..polling import eventually_sync
from ..processes import OurServer, free_port, slp_settings
from ..slp_peer import SlpUserAgent

GREEDY, BYSTANDER, PROBE = "127.0.0.1", "127.0.0.2", "127.0.0.3"
PER_SOURCE = 4
INITIATOR = "iqn.2026-11.org.example.test:limits-host"


def connect(port: int, source: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed `sock` within its timeout, without sending anything."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def isns_query(sock: socket.socket, xid: int) -> Message:
    query = request(
        FunctionId.DEV_ATTR_QRY,
        xid,
        Attribute(Tag.ISCSI_NAME, ADMIN),
        operating=(Attribute(Tag.ISCSI_NAME),),
    )
    sock.sendall(b"".join(encode_message(query)))
    decoder = StreamDecoder()
    while (answer := decoder.next_message()) is None:
        chunk = sock.recv(65536)
        assert chunk, "the iSNS server closed the connection"
        decoder.receive_data(chunk)
    return answer


def isns_served(port: int, source: str) -> bool:
    with connect(port, source) as sock:
        return isns_query(sock, 7).xid == 7


def portal_served(port: int, source: str) -> bool:
    """A discovery-session login from `source` gets a Login Response."""
    login = LoginRequest(
        transit=True,
        csg=LoginStage.LOGIN_OPERATIONAL_NEGOTIATION,
        nsg=LoginStage.FULL_FEATURE_PHASE,
        isid=bytes.fromhex("400001380099"),
        itt=1,
        cmdsn=1,
        data=encode_text([("InitiatorName", INITIATOR), ("SessionType", "Discovery")]),
    )
    reader = PduReader(max_recv_data_segment_length=1 << 16)
    with connect(port, source) as sock:
        sock.sendall(b"".join(encode_pdu(login, False, False)))
        while (pdu := reader.next_pdu()) is None:
            chunk = sock.recv(65536)
            if not chunk:
                return False
            reader.receive_data(chunk)
    return isinstance(pdu, LoginResponse) and pdu.status == 0


def slp_served(port: int, source: str) -> bool:
    agent = SlpUserAgent(port, source=source, timeout=10)
    try:
        reply = agent.tcp(SrvRqst(service_type="service:iscsi:target", scopes=("DEFAULT",)))
    finally:
        agent.close()
    return isinstance(reply, SrvRply)


def safely(served: Callable[[int, str], bool], port: int, source: str) -> bool:
    """`served`, with a refused or dropped connection counted as not served (yet)."""
    try:
        return served(port, source)
    except (OSError, AssertionError):
        return False


@pytest.fixture
def listeners(our_server: OurServer, tmp_path: Path) -> Iterator[dict[str, int]]:
    """iSNS, the portal and SLP with a per-source cap of 4 and a 1-second idle timeout."""
    caps = {"max_connections_per_source": PER_SOURCE}
    our_server.settings["isns"] = {**our_server.settings["isns"], **caps, "idle_timeout": 1}
    portal = our_server.enable_portal(login_timeout=1, **caps)
    slp = free_port()
    our_server.configure(slp=slp_settings(slp, idle_timeout=1, **caps))
    our_server.start()
    eventually_sync(lambda: safely(slp_served, slp, PROBE), what="SLP served")
    yield {"isns": our_server.port, "portal": portal, "slp": slp}


def test_a_source_over_its_cap_is_refused_while_others_are_served(
    listeners: dict[str, int], our_server: OurServer
) -> None:
    served = {"isns": isns_served, "portal": portal_served, "slp": slp_served}
    with ExitStack() as stack:
        for name, port in listeners.items():
            held = [stack.enter_context(connect(port, GREEDY)) for _ in range(PER_SOURCE)]
            extra = stack.enter_context(connect(port, GREEDY))
            assert closed_by_server(extra), f"{name}: connection {PER_SOURCE + 1} not refused"
            assert served[name](port, BYSTANDER), f"{name}: {BYSTANDER} not served"
            if name == "isns":  # the greedy client's own connections still work
                assert isns_query(held[0], 9).xid == 9
    log = our_server.log()
    for key in ("isns", "portal", "slp"):
        assert f"({key}.max_connections_per_source)" in log
    assert "Traceback" not in log


def test_silent_connections_are_closed_after_the_idle_timeout(
    listeners: dict[str, int], our_server: OurServer
) -> None:
    with ExitStack() as stack:
        silent = {n: stack.enter_context(connect(p, GREEDY)) for n, p in listeners.items()}
        talking = stack.enter_context(connect(listeners["isns"], GREEDY))
        for xid in range(4):  # 2 s of requests every 0.5 s: twice the idle timeout
            assert isns_query(talking, xid).xid == xid
            time.sleep(0.5)  # the point: the silent ones stay idle meanwhile
        for name, sock in silent.items():
            assert closed_by_server(sock), f"{name}: a silent connection stayed open"
        assert isns_query(talking, 99).xid == 99
    # The silent connections no longer count against the cap.
    with ExitStack() as stack:
        for port in listeners.values():
            for _ in range(PER_SOURCE):
                stack.enter_context(connect(port, GREEDY))
        assert isns_served(listeners["isns"], BYSTANDER)


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_out_of_descriptors_logs_once_and_service_resumes(our_server: OurServer) -> None:
    our_server.start()
    assert our_server.process is not None
    pid = our_server.process.pid
    headroom = 8
    limit = open_descriptors(pid) + headroom
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))
    with ExitStack() as stack:
        flood = [stack.enter_context(connect(our_server.port, GREEDY)) for _ in range(64)]
        eventually_sync(
            our_server.log,
            lambda text: "cannot accept connections" in text,
            what="the accept failure logged",
        )
        time.sleep(3)  # the point: three more retries of the accept loop, which must stay quiet
        log = our_server.log()
        assert log.count("cannot accept connections") == 1, log[-2000:]
        assert "Traceback" not in log
        assert len(log.splitlines()) < 100
        assert isns_query(flood[0], 5).xid == 5  # admitted before the limit: served
    # Every descriptor back: the backlog drains and a fresh client is served.
    eventually_sync(
        lambda: safely(isns_served, our_server.port, BYSTANDER),
        what="a fresh client served",
        within=20,
    )
    assert our_server.stop() == 0
    log = our_server.log()
    assert "Traceback" not in log and "ERROR" not in log, log[-2000:]

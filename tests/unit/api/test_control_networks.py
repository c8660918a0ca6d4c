"""isns.control_networks: a Control Node has its rights only for requests from those
networks (and from in-process callers). From elsewhere its control operations are
answered Source Unauthorized, logged once per interval, and change nothing; everything
else is answered as for an ordinary node (issue 13 item 9)."""

import logging
from ipaddress import ip_address, ip_network

import pytest

from isns_server.app import control_networks
from isns_server.config.loader import parse_config
from isns_server.isnsp.constants import FunctionId, NodeType, ScnBitmap, Status, Tag
from isns_server.isnsp.messages import Attribute, Message, PortNumber, request
from isns_server.netaddr import peer_ip
from isns_server.registry import Policy, Registry
from isns_server.service.dispatcher import Dispatcher
from isns_server.store import MemoryStore

from ..registry.builders import ADMIN, NOW, eid, iqn, node, portal

LAN = ip_network("10.1.0.0/16")


def dd_reg(source: str, name: str) -> Message:
    operating = (Attribute(Tag.DD_SYMBOLIC_NAME, name),)
    return request(FunctionId.DD_REG, 1, Attribute(Tag.ISCSI_NAME, source), (), operating)


def answer(dispatcher: Dispatcher, message: Message, peer: str) -> Status:
    answers: list[Message] = []
    dispatcher.dispatch(message, answers.append, peer)
    (reply,) = answers
    return Status(reply.status or 0)


def dispatcher(
    networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128"), default_dd: bool = True
) -> Dispatcher:
    policy = Policy(
        default_dd=default_dd,
        control_nodes=frozenset((ADMIN,)),
        control_networks=tuple(ip_network(n) for n in networks),
    )
    return Dispatcher(Registry(policy), MemoryStore(), clock=lambda: NOW)


def test_control_requests_from_elsewhere_are_refused_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    d = dispatcher()
    with caplog.at_level(logging.WARNING):
        for port in (4000, 4001):
            assert answer(d, dd_reg(ADMIN, "x"), f"10.1.2.3:{port}") == Status.SOURCE_UNAUTHORIZED
    assert d.registry.db.dds == {}
    lines = [r.getMessage() for r in caplog.records if "control_networks" in r.getMessage()]
    assert len(lines) == 1 and "10.1.2.3:4000" in lines[0] and ADMIN in lines[0]
    # Loopback, IPv4-mapped loopback and in-process callers are control networks.
    assert answer(d, dd_reg(ADMIN, "a"), "127.0.0.1:4000") == Status.SUCCESSFUL
    assert answer(d, dd_reg(ADMIN, "b"), "[::ffff:127.0.0.1]:4000") == Status.SUCCESSFUL
    assert answer(d, dd_reg(ADMIN, "c"), "the management API (ops)") == Status.SUCCESSFUL
    assert sorted(dd.name for dd in d.registry.db.dds.values()) == ["a", "b", "c"]


OUTSIDE, INSIDE = "192.168.0.9:3000", "10.1.9.9:3000"


def admin_request(
    function: FunctionId, keys: tuple[Attribute, ...] = (), *operating: Attribute
) -> Message:
    return request(function, 2, Attribute(Tag.ISCSI_NAME, ADMIN), keys, operating)


def test_each_control_operation_is_refused_from_elsewhere_and_allowed_from_inside(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 13 item 9's list: registering the Control type, DDReg, DDSReg, a management
    SCN registration, DDSDereg, DDDereg. Each refusal changes nothing."""
    d = dispatcher((LAN.with_prefixlen,))
    db = d.registry.db
    scn_portal = portal("127.0.0.1", 3205, Attribute(Tag.SCN_PORT, PortNumber(40000, True)))
    control_type = node(ADMIN, NodeType.CONTROL | NodeType.INITIATOR)
    operations = (
        admin_request(FunctionId.DEV_ATTR_REG, (), eid("mgmt"), *scn_portal, *control_type),
        admin_request(FunctionId.DD_REG, (), Attribute(Tag.DD_SYMBOLIC_NAME, "dd1")),
        admin_request(
            FunctionId.DDS_REG, (), Attribute(Tag.DD_SET_SYMBOLIC_NAME, "set1"),
            Attribute(Tag.DD_ID, 1),
        ),
        admin_request(
            FunctionId.SCN_REG, (Attribute(Tag.ISCSI_NAME, ADMIN),),
            Attribute(Tag.ISCSI_SCN_BITMAP, ScnBitmap.MANAGEMENT_REGISTRATION | 0x1C),
        ),
        admin_request(FunctionId.DDS_DEREG, (Attribute(Tag.DD_SET_ID, 1),)),
        admin_request(FunctionId.DD_DEREG, (Attribute(Tag.DD_ID, 1),)),
    )  # fmt: skip
    with caplog.at_level(logging.WARNING):
        for message in operations:
            before = snapshot(d)
            assert answer(d, message, OUTSIDE) == Status.SOURCE_UNAUTHORIZED, message.function
            assert snapshot(d) == before
            assert answer(d, message, INSIDE) == Status.SUCCESSFUL, message.function
    assert db.nodes[ADMIN].node_type == NodeType.CONTROL | NodeType.INITIATOR
    assert db.dds == {} and db.ddss == {}  # made from inside, then removed from inside
    lines = [r.getMessage() for r in caplog.records if "control_networks" in r.getMessage()]
    assert len(lines) == 1, lines  # once per host and minute
    assert f"refused DEV_ATTR_REG from {OUTSIDE} naming Control Node {ADMIN}" in lines[0]


def snapshot(d: Dispatcher) -> tuple[object, ...]:
    db = d.registry.db
    admin = db.nodes.get(ADMIN)
    return (
        sorted(db.nodes), sorted(db.dds), sorted(db.ddss),
        None if admin is None else (admin.node_type, admin.scn_bitmap),
    )  # fmt: skip


def test_from_elsewhere_a_control_node_is_an_ordinary_node(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """It registers and deregisters its own entity and queries; it sees what its DDs
    show (here, with no default DD, only itself), not everything; nothing is logged."""
    d = dispatcher((LAN.with_prefixlen,), default_dd=False)
    target = iqn("t1")
    plain = (eid("stor"), *portal("10.0.0.1", 3260), *node(target))
    registration = request(FunctionId.DEV_ATTR_REG, 3, Attribute(Tag.ISCSI_NAME, target), (), plain)
    assert answer(d, registration, OUTSIDE) == Status.SUCCESSFUL
    own = admin_request(FunctionId.DEV_ATTR_REG, (), eid("mgmt"), *node(ADMIN, NodeType.INITIATOR))
    query = admin_request(
        FunctionId.DEV_ATTR_QRY, (Attribute(Tag.ISCSI_NAME, target),), Attribute(Tag.ISCSI_NAME)
    )
    with caplog.at_level(logging.WARNING):
        assert answer(d, own, OUTSIDE) == Status.SUCCESSFUL
        assert answer(d, query, OUTSIDE) == Status.NO_SUCH_ENTRY
        assert walk(d, OUTSIDE) == [ADMIN]  # itself: no other node is visible
        assert answer(d, query, INSIDE) == Status.SUCCESSFUL
        assert walk(d, INSIDE) == [ADMIN, target]
        deregister = admin_request(FunctionId.DEV_DEREG, (), eid("mgmt"))
        assert answer(d, deregister, OUTSIDE) == Status.SUCCESSFUL
        assert ADMIN not in d.registry.db.nodes
    assert not [r for r in caplog.records if "control_networks" in r.getMessage()]


def walk(d: Dispatcher, peer: str) -> list[str]:
    """The iSCSI names a DevGetNext walk from ADMIN at `peer` returns."""
    found: list[str] = []
    while True:
        key = Attribute(Tag.ISCSI_NAME, found[-1] if found else None)
        answers: list[Message] = []
        d.dispatch(admin_request(FunctionId.DEV_GET_NEXT, (key,)), answers.append, peer)
        (reply,) = answers
        if reply.status == Status.NO_SUCH_ENTRY:
            return found
        assert reply.status == Status.SUCCESSFUL and len(found) < 10
        name = reply.split()[1][0].value
        assert isinstance(name, str)
        found.append(name)


def test_peer_ip_reads_peer_text() -> None:
    assert str(peer_ip("10.0.0.1:3205")) == "10.0.0.1"
    assert str(peer_ip("[::1]:3205")) == "::1"
    assert str(peer_ip("[::ffff:10.0.0.1]:3205")) == "10.0.0.1"
    assert peer_ip("the iSCSI portal") is None
    assert peer_ip(LAN.with_prefixlen) is None


def test_the_in_process_discovery_agent_may_connect_from_isns_listen() -> None:
    """It connects to isns.listen[0], from that address: trusted when it runs."""
    listen = "isns: {listen: ['10.0.0.5:3205', '10.0.0.6:3206']}\n"
    with_agent = control_networks(parse_config(listen + "slp: {enabled: true}"))
    without = control_networks(
        parse_config(listen + "slp: {enabled: false}\nmdns: {enabled: false}")
    )
    assert any(ip_address("10.0.0.5") in n for n in with_agent)
    assert not any(ip_address("10.0.0.6") in n for n in with_agent)
    assert not any(ip_address("10.0.0.5") in n for n in without)
    assert any(ip_address("127.0.0.1") in n for n in without)

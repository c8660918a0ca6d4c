"""isns.control_networks: a request naming a Control Node as its Source is accepted only
from those networks (and from in-process callers); others get Source Unauthorized, the
attempt is logged once per interval, and nothing changes."""

import logging
from ipaddress import ip_address, ip_network

import pytest

from isns_server.app import control_networks
from isns_server.config.loader import parse_config
from isns_server.isnsp.constants import FunctionId, NodeType, Status, Tag
from isns_server.isnsp.messages import Attribute, Message, request
from isns_server.netaddr import peer_ip
from isns_server.registry import Policy, Registry
from isns_server.service.dispatcher import Dispatcher
from isns_server.store import MemoryStore

from ..registry.builders import ADMIN, NOW, iqn, node

LAN = ip_network("10.1.0.0/16")


def dd_reg(source: str, name: str) -> Message:
    operating = (Attribute(Tag.DD_SYMBOLIC_NAME, name),)
    return request(FunctionId.DD_REG, 1, Attribute(Tag.ISCSI_NAME, source), (), operating)


def answer(dispatcher: Dispatcher, message: Message, peer: str) -> Status:
    answers: list[Message] = []
    dispatcher.dispatch(message, answers.append, peer)
    (reply,) = answers
    return Status(reply.status or 0)


def dispatcher(networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")) -> Dispatcher:
    policy = Policy(
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


def test_registering_the_control_type_and_querying_need_a_control_network() -> None:
    d = dispatcher(("10.1.0.0/16",))
    attrs = (Attribute(Tag.ENTITY_IDENTIFIER, "mgmt"), *node(ADMIN, NodeType.CONTROL))
    register = request(FunctionId.DEV_ATTR_REG, 2, Attribute(Tag.ISCSI_NAME, ADMIN), (), attrs)
    assert answer(d, register, "192.168.0.9:3000") == Status.SOURCE_UNAUTHORIZED
    assert ADMIN not in d.registry.db.nodes
    query = request(
        FunctionId.DEV_ATTR_QRY,
        3,
        Attribute(Tag.ISCSI_NAME, ADMIN),
        (Attribute(Tag.ISCSI_NAME),),
        (Attribute(Tag.ISCSI_NAME),),
    )
    assert answer(d, query, "192.168.0.9:3000") == Status.SOURCE_UNAUTHORIZED
    assert answer(d, register, "10.1.9.9:3000") == Status.SUCCESSFUL
    # Ordinary nodes are not affected by where they send from.
    other = iqn("t1")
    plain = (Attribute(Tag.ENTITY_IDENTIFIER, "e"), *node(other))
    own = request(FunctionId.DEV_ATTR_REG, 4, Attribute(Tag.ISCSI_NAME, other), (), plain)
    assert answer(d, own, "192.168.0.9:3000") == Status.SUCCESSFUL


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

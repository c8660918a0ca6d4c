"""The registry as SLP sees it: RFC 4018 services fed into a directory agent, and kept
current as nodes and discovery domains change. Checked through real SLP requests."""

from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest

from discovery_agent.catalog import Domain, Node, Portal
from discovery_agent.mirror import RegistryMirror
from discovery_agent.slp.agent import AgentSettings, DirectoryAgent
from discovery_agent.slp.attributes import parse_attr_list
from discovery_agent.slp.codec import build_message, parse_message
from discovery_agent.slp.constants import ErrorCode
from discovery_agent.slp.messages import AttrRqst, DAAdvert, Message, SrvRqst
from isns_server.isnsp.constants import NodeType

TARGET, INITIATOR = NodeType.TARGET, NodeType.INITIATOR
DISK1 = "iqn.2026-11.org.example.test:disk1"
DISK2 = "iqn.2026-11.org.example.test:disk2"
HOST1 = "iqn.2026-11.org.example.test:host1"
HOST2 = "iqn.2026-11.org.example.test:host2"
URL1 = f"service:iscsi:target://192.0.2.3:3260/{DISK1}"
URL2 = f"service:iscsi:target://192.0.2.4:3260/{DISK2}"
SMS = "service:iscsi:sms://192.0.2.1:3205"
UA = ("192.0.2.50", 427)


def target(name: str, host: str, **fields: Any) -> Node:
    return Node(name, TARGET, portals=(Portal(IPv4Address(host), 3260, 1),), **fields)


@pytest.fixture
def mirror() -> RegistryMirror:
    agent = DirectoryAgent(
        AgentSettings(url="service:directory-agent://192.0.2.1"), boot_timestamp=1
    )
    mirror = RegistryMirror(agent, [("192.0.2.1", 3205)], now=0.0)
    mirror.reload(
        [target(DISK1, "192.0.2.3", alias="disk one"), target(DISK2, "192.0.2.4")], [], 0.0
    )
    agent.startup(0.0)  # as the bridge has it start after the first read
    return mirror


def ask(mirror: RegistryMirror, message: Message) -> Any:
    (reply,) = mirror.agent.handle(build_message(message), UA, "unicast-udp", 1.0)
    return parse_message(reply)


def find(mirror: RegistryMirror, predicate: str = "", scope: str = "DEFAULT") -> list[str]:
    request = SrvRqst(
        xid=1, service_type="service:iscsi:target", scopes=(scope,), predicate=predicate
    )
    reply = ask(mirror, request)
    assert reply.error_code == ErrorCode.OK
    return sorted(entry.url for entry in reply.url_entries)


def attributes(mirror: RegistryMirror, url: str) -> dict[str, tuple[object, ...]]:
    reply = ask(mirror, AttrRqst(xid=2, url=url, scopes=("DEFAULT",)))
    return {a.tag: a.values for a in parse_attr_list(reply.attr_list)}


def test_targets_appear_with_the_rfc_4018_attributes(mirror: RegistryMirror) -> None:
    assert find(mirror) == [URL1, URL2]
    assert find(mirror, f"(iscsi-name={DISK2})") == [URL2]
    assert find(mirror, "(auth-name=any)") == [URL1, URL2]  # in no DD: zoning does not bar
    assert attributes(mirror, URL1) == {
        "iscsi-name": (DISK1,),
        "portal-group": (1,),
        "transports": ("tcp",),
        "alias": ("disk one",),
        "auth-name": ("any",),
    }


def test_the_isns_server_is_a_storage_management_service(mirror: RegistryMirror) -> None:
    request = SrvRqst(
        xid=3, service_type="service:iscsi:sms", scopes=("DEFAULT",), predicate="(protocols=isns)"
    )
    reply = ask(mirror, request)
    assert [entry.url for entry in reply.url_entries] == [SMS]
    abstract = ask(mirror, SrvRqst(xid=4, service_type="service:iscsi", scopes=("DEFAULT",)))
    assert sorted(e.url for e in abstract.url_entries) == [SMS, URL1, URL2]


def test_each_enabled_dd_is_a_scope_listing_its_targets(mirror: RegistryMirror) -> None:
    mirror.update({}, {7: Domain(7, "dd-prod", frozenset({DISK1, HOST1}))}, 2.0)
    assert find(mirror, scope="dd-prod") == [URL1]
    assert find(mirror) == [URL1, URL2]  # the configured scope still lists every target
    assert find(mirror, f"(auth-name={HOST1})") == [URL1]
    assert find(mirror, "(auth-name=any)") == [URL2]
    sms = ask(mirror, SrvRqst(xid=5, service_type="service:iscsi:sms", scopes=("dd-prod",)))
    assert [e.url for e in sms.url_entries] == [SMS]
    (advert,) = [parse_message(a) for a in mirror.agent.startup(3.0).adverts]
    assert isinstance(advert, DAAdvert) and advert.scopes == ("DEFAULT", "dd-prod")


def test_auth_name_lists_initiators_of_enabled_dds_only(mirror: RegistryMirror) -> None:
    mirror.update(
        {HOST1: Node(HOST1, INITIATOR), DISK2: target(DISK2, "192.0.2.4")},
        {
            1: Domain(1, "a", frozenset({DISK1, HOST1, DISK2, HOST2})),  # HOST2: unregistered
            2: Domain(2, "b", frozenset({DISK1, "iqn.2026-11.org.example.test:x"}), enabled=False),
        },
        2.0,
    )
    assert attributes(mirror, URL1)["auth-name"] == (HOST1, HOST2)  # not DISK2: a target
    request = SrvRqst(xid=6, service_type="service:iscsi:target", scopes=("b",))
    assert ask(mirror, request).error_code == ErrorCode.SCOPE_NOT_SUPPORTED  # disabled: no scope


def test_a_dd_without_initiators_leaves_no_auth_name(mirror: RegistryMirror) -> None:
    mirror.update({}, {1: Domain(1, "lonely", frozenset({DISK1}))}, 2.0)
    assert "auth-name" not in attributes(mirror, URL1)
    assert find(mirror, "(auth-name=any)") == [URL2]


def test_changes_are_followed_and_removals_withdraw(mirror: RegistryMirror) -> None:
    mirror.update({}, {1: Domain(1, "dd-prod", frozenset({DISK1, HOST1}))}, 2.0)
    moved = Node(DISK1, TARGET, portals=(Portal(IPv6Address("2001:db8::3"), 3261, 2),))
    mirror.update({DISK1: moved}, {}, 3.0)
    ipv6 = f"service:iscsi:target://[2001:db8::3]:3261/{DISK1}"
    assert find(mirror) == [URL2, ipv6]
    assert attributes(mirror, ipv6)["portal-group"] == (2,)
    mirror.update({}, {1: None}, 4.0)  # the DD is deleted: its scope goes, zoning lifts
    assert attributes(mirror, ipv6)["auth-name"] == ("any",)
    assert ask(mirror, SrvRqst(xid=7, service_type="x", scopes=("dd-prod",))).error_code == (
        ErrorCode.SCOPE_NOT_SUPPORTED
    )
    mirror.update({DISK1: None}, {}, 5.0)
    assert find(mirror) == [URL2]
    mirror.reload([], [], 6.0)
    assert find(mirror) == []
    sms = ask(mirror, SrvRqst(xid=8, service_type="service:iscsi:sms", scopes=("DEFAULT",)))
    assert [e.url for e in sms.url_entries] == [SMS]  # the server stays


def test_nodes_that_are_not_reachable_targets_are_not_advertised(mirror: RegistryMirror) -> None:
    mirror.update(
        {
            HOST1: Node(HOST1, INITIATOR, portals=(Portal(IPv4Address("192.0.2.9"), 3260, 1),)),
            DISK1: Node(DISK1, TARGET),  # no portal with a PGT: nothing to log in to
        },
        {},
        2.0,
    )
    assert find(mirror) == [URL2]


def test_a_value_slp_cannot_carry_keeps_that_target_out_not_the_rest(
    mirror: RegistryMirror, caplog: pytest.LogCaptureFixture
) -> None:
    bad = "iqn.2026-11.org.example.test:a name"  # iSNS takes it; no URL holds a space
    mirror.update({bad: target(bad, "192.0.2.3")}, {}, 2.0)
    assert find(mirror) == [URL1, URL2]
    assert f"not advertising service:iscsi:target://192.0.2.3:3260/{bad} over SLP" in (caplog.text)

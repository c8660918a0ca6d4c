"""An IPv4 portal named as IPv4-compatible (::a.b.c.d, as open-isns sends it) or as
IPv4-mapped (::ffff:a.b.c.d, RFC 4171 6.3.1) is one portal, whichever form each message
uses; the registry answers with the form the portal was registered in."""

from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest

from isns_server.isnsp.constants import Flags, FunctionId, Status, Tag
from isns_server.isnsp.messages import Message, PortNumber, response
from isns_server.registry import Policy, Ref, Registry
from isns_server.registry.objects import address_key

from .builders import (
    ADMIN,
    NOW,
    a,
    call,
    iqn,
    new_registry,
    node,
    ok,
    operating_of,
    portal,
    query,
    register,
    status,
    values,
)

T1, T2 = iqn("t1"), iqn("t2")
COMPATIBLE, MAPPED = "::127.0.0.5", "::ffff:127.0.0.5"
FORMS = [(COMPATIBLE, MAPPED), (MAPPED, COMPATIBLE)]


def registered(first: str) -> Registry:
    registry = new_registry()
    ok(register(registry, T1, "stor1", portal(first, 3260), node(T1)))
    return registry


@pytest.mark.parametrize(("first", "other"), FORMS)
def test_registering_the_other_form_updates_the_same_portal(first: str, other: str) -> None:
    registry = registered(first)
    ok(
        register(
            registry, T1, "stor1", portal(other, 3260, a(Tag.PORTAL_SYMBOLIC_NAME, "p")), node(T2)
        )
    )
    entity = registry.db.entities["stor1"]
    (only,) = entity.portals.values()
    assert only.symbolic_name == "p"
    assert len(registry.db.portals) == 1
    assert sorted(pg.node_name for pg in entity.pgs.values()) == [T1, T2]  # one PG per node
    # Answers keep the form the portal was registered in (isnsadm looks up what it sent).
    listed = query(registry, ADMIN, [a(Tag.PORTAL_IP_ADDRESS)], Tag.PORTAL_IP_ADDRESS)
    expected = IPv4Address("127.0.0.5") if first == MAPPED else IPv6Address(first)
    assert values(operating_of(listed), Tag.PORTAL_IP_ADDRESS) == [expected]


@pytest.mark.parametrize(("first", "other"), FORMS)
def test_dev_dereg_naming_the_other_form_removes_the_portal(first: str, other: str) -> None:
    registry = registered(first)
    ok(register(registry, T1, "stor1", node(T2)))
    outcome = call(registry, FunctionId.DEV_DEREG, T1, (), portal(other, 3260))
    ok(outcome)
    entity = registry.db.entities["stor1"]
    assert not entity.portals and not registry.db.portals
    # A PG outlives its portal while its node stays (5.6.5.4): one per node, not two.
    assert sorted(pg.node_name for pg in entity.pgs.values()) == [T1, T2]
    assert outcome.dirty


@pytest.mark.parametrize(("first", "other"), FORMS)
def test_queries_find_the_portal_by_either_form(first: str, other: str) -> None:
    registry = registered(first)
    by_key = query(registry, T1, portal(other, 3260), Tag.PORTAL_INDEX)
    assert values(operating_of(by_key), Tag.PORTAL_INDEX) == [
        registry.db.portals.popitem()[1].index
    ]
    by_address = query(registry, T1, [a(Tag.PORTAL_IP_ADDRESS, IPv6Address(other))], Tag.ISCSI_NAME)
    assert values(operating_of(by_address), Tag.ISCSI_NAME) == [T1]
    pg = query(
        registry,
        T1,
        [
            a(Tag.PG_ISCSI_NAME, T1),
            a(Tag.PG_PORTAL_IP_ADDR, IPv6Address(other)),
            a(Tag.PG_PORTAL_TCP_UDP_PORT, PortNumber(3260)),
        ],
        Tag.PG_TAG,
    )
    assert values(operating_of(pg), Tag.PG_TAG) == [1]
    walk = call(registry, FunctionId.DEV_GET_NEXT, T1, portal(other, 3260))
    assert status(walk) == Status.NO_SUCH_ENTRY  # it is the only portal: nothing after it


@pytest.mark.parametrize(("first", "other"), FORMS)
def test_a_dd_portal_member_in_the_other_form_is_the_registered_portal(
    first: str, other: str
) -> None:
    registry = registered(first)
    member = (
        a(Tag.DD_MEMBER_PORTAL_IP_ADDR, IPv6Address(other)),
        a(Tag.DD_MEMBER_PORTAL_TCP_UDP_PORT, PortNumber(3260)),
    )
    ok(call(registry, FunctionId.DD_REG, ADMIN, (), (a(Tag.DD_SYMBOLIC_NAME, "dd1"), *member)))
    (dd,) = registry.db.dds.values()
    (registered_portal,) = registry.db.portals.values()
    assert list(dd.portals.values()) == [registered_portal.index]
    found = query(registry, ADMIN, [a(Tag.DD_MEMBER_PORTAL_IP_ADDR, IPv6Address(first))], Tag.DD_ID)
    assert values(operating_of(found), Tag.DD_ID) == [dd.id]


def test_records_saved_with_both_forms_load_as_one_portal() -> None:
    """Before both forms were one portal, an entity could hold it twice (with a PG per
    node for each) and another entity could hold it too; loading keeps the first."""
    compatible, mapped = IPv6Address(COMPATIBLE), IPv4Address("127.0.0.5")

    def item(ip: Any, index: int) -> dict[str, Any]:
        return {"ip": str(ip), "port": [3260, False], "index": index}

    def pg(ip: Any, index: int) -> dict[str, Any]:
        return {
            "node_name": T1,
            "portal_ip": str(ip),
            "portal_port": [3260, False],
            "tag": 1,
            "index": index,
        }

    stor1 = {
        "eid": "stor1",
        "index": 1,
        "portals": [item(compatible, 1), item(mapped, 2)],
        "nodes": [{"name": T1, "index": 1}],
        "pgs": [pg(compatible, 1), pg(mapped, 2)],
    }
    stor2 = {
        "eid": "stor2",
        "index": 2,
        "portals": [item(mapped, 3)],
        "nodes": [{"name": T2, "index": 2}],
        "pgs": [],
    }
    records: list[tuple[Ref, dict[str, Any]]] = [
        (("entity", "stor1"), stor1),
        (("entity", "stor2"), stor2),
    ]
    restored = Registry.restore(records, new_registry().policy)
    db = restored.db
    (only,) = db.portals.values()
    assert (only.ip, only.index, only.entity.eid) == (compatible, 1, "stor1")
    assert [pg.index for pg in db.pgs.values()] == [1]
    assert not db.entities["stor2"].portals
    # The registry answers consistently: the portal goes with one DevDereg.
    ok(call(restored, FunctionId.DEV_DEREG, T1, (), [a(Tag.ENTITY_IDENTIFIER, "stor1")]))
    assert not db.portals and not db.pgs


@pytest.mark.parametrize(("first", "other"), FORMS)
def test_esi_names_the_portal_as_registered_and_takes_either_form_back(
    first: str, other: str
) -> None:
    registry = Registry(Policy(esi_min_interval=10, esi_max_interval=60, esi_retries=2))
    esi = (a(Tag.ESI_INTERVAL, 10), a(Tag.ESI_PORT, PortNumber(4000, udp=True)))
    ok(register(registry, T1, "stor1", portal(first, 3260, *esi), node(T1)))
    (probe,) = registry.tick(NOW + 10).probes
    sent = {attr.tag: attr.value for attr in probe.message.attributes}
    sent_ip = sent[Tag.PORTAL_IP_ADDRESS]
    assert isinstance(sent_ip, IPv4Address | IPv6Address)
    assert address_key(sent_ip) == address_key(IPv6Address(first))
    assert sent[Tag.PORTAL_IP_ADDRESS] == registry.db.portals.popitem()[1].ip
    echoed = tuple(
        a(Tag.PORTAL_IP_ADDRESS, IPv6Address(other)) if attr.tag == Tag.PORTAL_IP_ADDRESS else attr
        for attr in probe.message.attributes
    )
    answer = response(Message(FunctionId.ESI, 5, Flags.SERVER, echoed), Status.SUCCESSFUL, echoed)
    assert registry.esi_answered(probe, answer, NOW + 11)

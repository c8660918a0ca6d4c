"""Zoning: what each source sees through queries, DevGetNext and visible_targets."""

from ipaddress import IPv4Address

from isns_server.isnsp.constants import FunctionId, Status, Tag
from isns_server.isnsp.messages import PortNumber
from isns_server.registry import Registry, TargetPortal, VisibleTarget

from .builders import (
    ADMIN,
    a,
    call,
    iqn,
    names_listed,
    new_registry,
    ok,
    operating_of,
    query,
    standard_setup,
    status,
    values,
)

T1, T2, I1, I2 = iqn("t1"), iqn("t2"), iqn("i1"), iqn("i2")
IP = IPv4Address("10.0.0.1")


def zoned(default_dd: bool = True) -> Registry:
    """dd1 = {i1, t1}, dd2 = {i2, t2}."""
    registry = new_registry(default_dd)
    standard_setup(registry)
    for dd_name, members in (("dd1", (I1, T1)), ("dd2", (I2, T2))):
        operating = [a(Tag.DD_SYMBOLIC_NAME, dd_name)]
        operating += [a(Tag.DD_MEMBER_ISCSI_NAME, m) for m in members]
        ok(call(registry, FunctionId.DD_REG, ADMIN, (), operating))
    return registry


def test_initiators_see_exactly_their_dds_targets() -> None:
    registry = zoned()
    assert names_listed(registry, I1) == [I1, T1]
    assert names_listed(registry, I2) == [I2, T2]
    assert names_listed(registry, ADMIN) == [I1, I2, T1, T2]
    assert status(query(registry, I1, [a(Tag.ISCSI_NAME, T2)])) == Status.NO_SUCH_ENTRY
    everyone = query(registry, I1, [a(Tag.ISCSI_NAME)], Tag.ISCSI_NAME)
    assert values(operating_of(everyone), Tag.ISCSI_NAME) == [I1, T1]
    # Entities and portals follow the nodes: stor1 is visible, host2 is not.
    entities = query(registry, I1, [a(Tag.ENTITY_IDENTIFIER)], Tag.ENTITY_IDENTIFIER)
    assert values(operating_of(entities), Tag.ENTITY_IDENTIFIER) == ["host1", "stor1"]


def test_a_node_sees_its_own_entity_without_any_dd() -> None:
    registry = new_registry(default_dd=False)
    standard_setup(registry)
    assert names_listed(registry, T1) == [T1, T2]  # same entity
    assert names_listed(registry, I1) == [I1]


def test_default_dd_on_and_off() -> None:
    on = new_registry(default_dd=True)
    standard_setup(on)
    assert names_listed(on, I1) == [I1, I2, T1, T2]
    off = new_registry(default_dd=False)
    standard_setup(off)
    assert names_listed(off, I1) == [I1]
    # Zoned nodes leave the default DD; unzoned ones stay in it.
    ok(
        call(
            on,
            FunctionId.DD_REG,
            ADMIN,
            (),
            [a(Tag.DD_MEMBER_ISCSI_NAME, T1), a(Tag.DD_MEMBER_ISCSI_NAME, I1)],
        )
    )
    assert names_listed(on, I2) == [I2, T2]
    assert names_listed(on, I1) == [I1, T1]


def test_disabling_the_dd_set_hides_its_dds() -> None:
    registry = zoned()
    dds = (a(Tag.DD_SET_SYMBOLIC_NAME, "set"), a(Tag.DD_SET_STATUS, 0), a(Tag.DD_ID, 1))
    ok(call(registry, FunctionId.DDS_REG, ADMIN, (), dds))
    assert names_listed(registry, I1) == [I1]  # dd1 is in a disabled set only
    key = (a(Tag.DD_SET_ID, 1),)
    outcome = call(registry, FunctionId.DDS_REG, ADMIN, key, (a(Tag.DD_SET_STATUS, 1),))
    assert {c.names for c in outcome.changes} == {frozenset({I1, T1})}  # for the SCN layer
    assert names_listed(registry, I1) == [I1, T1]
    ok(call(registry, FunctionId.DDS_REG, ADMIN, key, (a(Tag.DD_SET_STATUS, 0),)))
    assert names_listed(registry, I1) == [I1]
    assert names_listed(registry, I2) == [I2, T2]  # dd2 is in no set: enabled


def test_a_portal_placed_in_the_dd_is_the_only_one_reported() -> None:
    registry = zoned()
    member = (
        a(Tag.DD_MEMBER_PORTAL_IP_ADDR, IP),
        a(Tag.DD_MEMBER_PORTAL_TCP_UDP_PORT, PortNumber(3261)),
    )
    ok(call(registry, FunctionId.DD_REG, ADMIN, (a(Tag.DD_ID, 1),), member))
    attrs = operating_of(query(registry, I1, [a(Tag.ISCSI_NAME, T1)], Tag.PORTAL_TCP_UDP_PORT))
    assert values(attrs, Tag.PORTAL_TCP_UDP_PORT) == [PortNumber(3261)]
    control = operating_of(query(registry, ADMIN, [a(Tag.ISCSI_NAME, T1)], Tag.PORTAL_TCP_UDP_PORT))
    assert len(values(control, Tag.PORTAL_TCP_UDP_PORT)) == 2
    assert registry.visible_targets(I1) == [VisibleTarget(T1, None, (TargetPortal(IP, 3261, 1),))]


def test_visible_targets_for_the_sendtargets_portal() -> None:
    registry = zoned()
    both = (TargetPortal(IP, 3260, 1), TargetPortal(IP, 3261, 1))
    assert registry.visible_targets(I1) == [VisibleTarget(T1, None, both)]
    assert [t.name for t in registry.visible_targets(ADMIN)] == [T1, T2]
    # The initiator need not be registered: DD membership is by name.
    ok(
        call(
            registry,
            FunctionId.DD_REG,
            ADMIN,
            (a(Tag.DD_ID, 2),),
            [a(Tag.DD_MEMBER_ISCSI_NAME, iqn("new"))],
        )
    )
    assert [t.name for t in registry.visible_targets(iqn("new").upper())] == [T2]


def test_dd_queries_are_scoped_to_the_sources_dds() -> None:
    registry = zoned()
    mine = query(registry, I1, [a(Tag.DD_ID)], Tag.DD_ID, Tag.DD_SYMBOLIC_NAME)
    assert operating_of(mine) == (a(Tag.DD_ID, 1), a(Tag.DD_SYMBOLIC_NAME, "dd1"))
    members = query(registry, I1, [a(Tag.DD_ID, 1)], Tag.ISCSI_NAME)
    assert values(operating_of(members), Tag.ISCSI_NAME) == [I1, T1]
    node_dds = query(registry, ADMIN, [a(Tag.ISCSI_NAME, T2)], Tag.DD_ID)
    assert operating_of(node_dds) == (a(Tag.DD_ID, 2),)

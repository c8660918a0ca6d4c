"""DDReg, DDDereg, DDSReg, DDSDereg."""

from ipaddress import IPv4Address

import pytest

from isns_server.isnsp.constants import FunctionId, NodeType, ScnBitmap, Status, Tag
from isns_server.isnsp.messages import Attribute, PortNumber
from isns_server.registry import ObjectType, Outcome, Policy, Registry
from isns_server.registry.registry import CONFIGURATION_SOURCE

from .builders import (
    ADMIN,
    NOW,
    a,
    call,
    iqn,
    keys_of,
    names_listed,
    new_registry,
    node,
    ok,
    operating_of,
    register,
    standard_setup,
    status,
    values,
)

T1, T2, I1, I2 = iqn("t1"), iqn("t2"), iqn("i1"), iqn("i2")
GHOST = iqn("ghost")


@pytest.fixture
def registry() -> Registry:
    registry = new_registry()
    standard_setup(registry)
    return registry


def dd_reg(
    registry: Registry, *operating: Attribute, keys: tuple[Attribute, ...] = (), source: str = ADMIN
) -> Outcome:
    return call(registry, FunctionId.DD_REG, source, keys, operating)


def test_create_a_dd_with_members(registry: Registry) -> None:
    outcome = dd_reg(
        registry,
        a(Tag.DD_SYMBOLIC_NAME, "dd1"),
        a(Tag.DD_MEMBER_ISCSI_NAME, T1),
        a(Tag.DD_MEMBER_ISCSI_NAME, GHOST),
    )
    ok(outcome)
    assert keys_of(outcome) == ()  # the request had none (5.7.5.9)
    t1_index = registry.db.nodes[T1].index
    ghost_index = registry.db.reserved_nodes[GHOST]
    assert operating_of(outcome) == (
        a(Tag.DD_ID, 1),
        a(Tag.DD_SYMBOLIC_NAME, "dd1"),
        a(Tag.DD_FEATURES, 0),
        a(Tag.DD_MEMBER_ISCSI_INDEX, t1_index),
        a(Tag.DD_MEMBER_ISCSI_NAME, T1),
        a(Tag.DD_MEMBER_ISCSI_INDEX, ghost_index),
        a(Tag.DD_MEMBER_ISCSI_NAME, GHOST),
    )
    assert outcome.dirty >= {("dd", 1)}
    members = [
        (c.event, c.key, c.domain) for c in outcome.changes if c.object_type is ObjectType.NODE
    ]
    assert members == [
        (ScnBitmap.DD_MEMBER_ADDED, (T1,), 1),
        (ScnBitmap.DD_MEMBER_ADDED, (GHOST,), 1),
    ]
    # The unregistered member gets its index when it registers (5.6.5.9).
    ok(register(registry, GHOST, "ghosts", node(GHOST)))
    assert registry.db.nodes[GHOST].index == ghost_index


def test_the_server_names_and_numbers_a_dd_left_unnamed(registry: Registry) -> None:
    first = operating_of(dd_reg(registry))
    second = operating_of(dd_reg(registry, a(Tag.DD_ID), a(Tag.DD_SYMBOLIC_NAME)))
    assert first[:2] == (a(Tag.DD_ID, 1), a(Tag.DD_SYMBOLIC_NAME, "isns.dd1"))
    assert second[:2] == (a(Tag.DD_ID, 2), a(Tag.DD_SYMBOLIC_NAME, "isns.dd2"))
    chosen = operating_of(dd_reg(registry, a(Tag.DD_ID, 10)))
    assert chosen[0] == a(Tag.DD_ID, 10)


def test_update_a_dd_through_its_key(registry: Registry) -> None:
    ok(dd_reg(registry, a(Tag.DD_SYMBOLIC_NAME, "dd1")))
    key = (a(Tag.DD_ID, 1),)
    ip, port = IPv4Address("10.0.0.1"), PortNumber(3260)
    outcome = dd_reg(
        registry,
        a(Tag.DD_ID, 1),
        a(Tag.DD_SYMBOLIC_NAME, "renamed"),
        a(Tag.DD_FEATURES, 1),
        a(Tag.DD_MEMBER_ISCSI_INDEX, registry.db.nodes[I1].index),
        a(Tag.DD_MEMBER_PORTAL_IP_ADDR, ip),
        a(Tag.DD_MEMBER_PORTAL_TCP_UDP_PORT, port),
        keys=key,
    )
    assert keys_of(outcome) == key
    dd = registry.db.dds[1]
    assert (dd.name, dd.features, list(dd.nodes)) == ("renamed", 1, [I1])
    assert values(operating_of(outcome), Tag.DD_MEMBER_PORTAL_TCP_UDP_PORT) == [port]
    assert registry.db.dd_names == {"renamed": 1}
    assert ScnBitmap.OBJECT_UPDATED in [c.event for c in outcome.changes]


@pytest.mark.parametrize(
    ("keys", "operating", "expected"),
    [
        ((a(Tag.DD_ID, 99),), (), Status.INVALID_REGISTRATION),
        ((a(Tag.ISCSI_NAME, T1),), (), Status.MESSAGE_FORMAT_ERROR),
        ((a(Tag.DD_ID, 1),), (a(Tag.DD_ID, 2),), Status.INVALID_REGISTRATION),
        ((), (a(Tag.DD_ID, 1),), Status.INVALID_REGISTRATION),  # taken
        ((), (a(Tag.DD_ID, 0),), Status.INVALID_REGISTRATION),  # reserved
        ((), (a(Tag.DD_MEMBER_ISCSI_INDEX, 999),), Status.INVALID_REGISTRATION),
        ((), (a(Tag.DD_MEMBER_PORTAL_INDEX, 999),), Status.INVALID_REGISTRATION),
        ((), (a(Tag.DD_MEMBER_ISCSI_NAME),), Status.INVALID_REGISTRATION),
        ((), (a(Tag.DD_MEMBER_ISCSI_NAME, "bad name"),), Status.INVALID_REGISTRATION),
        (
            (),
            (a(Tag.DD_MEMBER_PORTAL_IP_ADDR, IPv4Address("10.0.0.1")),),
            Status.MESSAGE_FORMAT_ERROR,
        ),
        ((), (a(Tag.DD_MEMBER_PORTAL_TCP_UDP_PORT, PortNumber(1)),), Status.MESSAGE_FORMAT_ERROR),
        ((), (a(Tag.DD_MEMBER_FC_PORT_NAME, 1),), Status.ATTRIBUTE_NOT_IMPLEMENTED),
        ((), (a(Tag.DD_ID_NEXT_ID, 5),), Status.INVALID_REGISTRATION),
        ((), (a(Tag.ISCSI_NAME, T1),), Status.INVALID_REGISTRATION),
    ],
)
def test_refused_dd_registrations(
    registry: Registry,
    keys: tuple[Attribute, ...],
    operating: tuple[Attribute, ...],
    expected: Status,
) -> None:
    ok(dd_reg(registry, a(Tag.DD_SYMBOLIC_NAME, "dd1")))
    outcome = dd_reg(registry, *operating, keys=keys)
    assert status(outcome) == expected
    assert outcome.dirty == frozenset()


def test_dd_names_are_unique_and_a_clash_is_returned(registry: Registry) -> None:
    ok(dd_reg(registry, a(Tag.DD_SYMBOLIC_NAME, "dd1")))
    clash = dd_reg(registry, a(Tag.DD_SYMBOLIC_NAME, "dd1"))
    assert status(clash) == Status.INVALID_REGISTRATION
    assert operating_of(clash) == (a(Tag.DD_SYMBOLIC_NAME, "dd1"),)


def test_only_control_nodes_manage_domains(registry: Registry) -> None:
    for function in (FunctionId.DD_REG, FunctionId.DDS_REG):
        assert status(call(registry, function, I1)) == Status.SOURCE_UNAUTHORIZED
        assert status(call(registry, function, iqn("stranger"))) == Status.SOURCE_UNKNOWN
    # A registered node whose type has the Control bit is a Control Node too, even once
    # the configuration no longer names it (a restart with another policy).
    ok(register(registry, ADMIN, "mgmt", node(ADMIN, NodeType.CONTROL)))
    restarted = Registry(Policy(control_nodes=frozenset()), registry.db)
    ok(dd_reg(restarted, a(Tag.DD_SYMBOLIC_NAME, "by-type")))


def test_dd_deregistration_of_members_and_of_the_whole_dd(registry: Registry) -> None:
    ok(
        dd_reg(
            registry,
            a(Tag.DD_MEMBER_ISCSI_NAME, T1),
            a(Tag.DD_MEMBER_ISCSI_NAME, GHOST),
            a(Tag.DD_MEMBER_ISCSI_NAME, I1),
        )
    )
    key = (a(Tag.DD_ID, 1),)
    ghost_index = registry.db.dds[1].nodes[GHOST]
    outcome = call(
        registry,
        FunctionId.DD_DEREG,
        ADMIN,
        key,
        (a(Tag.DD_MEMBER_ISCSI_INDEX, ghost_index), a(Tag.DD_MEMBER_ISCSI_NAME, T1)),
    )
    ok(outcome)
    assert list(registry.db.dds[1].nodes) == [I1]
    assert GHOST not in registry.db.reserved_nodes  # its index is free for good (5.6.5.10)
    assert [c.event for c in outcome.changes] == [ScnBitmap.DD_MEMBER_REMOVED] * 2
    assert T1 in registry.db.undomained
    ok(call(registry, FunctionId.DD_DEREG, ADMIN, key))
    assert not registry.db.dds and I1 in registry.db.undomained
    assert registry.export_record(("dd", 1)) is None
    # Removing what does not exist is not an error; a missing key is.
    ok(call(registry, FunctionId.DD_DEREG, ADMIN, key))
    assert status(call(registry, FunctionId.DD_DEREG, ADMIN)) == Status.MESSAGE_FORMAT_ERROR


def test_dd_deregistration_rejects_non_member_attributes(registry: Registry) -> None:
    ok(dd_reg(registry, a(Tag.DD_MEMBER_ISCSI_NAME, T1)))
    bad = call(registry, FunctionId.DD_DEREG, ADMIN, (a(Tag.DD_ID, 1),), (a(Tag.ISCSI_NAME, T1),))
    assert status(bad) == Status.INVALID_DEREGISTRATION
    assert T1 in registry.db.dds[1].nodes


def test_dd_sets(registry: Registry) -> None:
    ok(dd_reg(registry, a(Tag.DD_SYMBOLIC_NAME, "dd1")))
    outcome = call(
        registry,
        FunctionId.DDS_REG,
        ADMIN,
        (),
        (
            a(Tag.DD_SET_SYMBOLIC_NAME, "set"),
            a(Tag.DD_SET_STATUS, 1),
            a(Tag.DD_ID, 1),
            a(Tag.DD_ID, 5),
        ),
    )
    ok(outcome)
    assert operating_of(outcome) == (
        a(Tag.DD_SET_ID, 1),
        a(Tag.DD_SET_SYMBOLIC_NAME, "set"),
        a(Tag.DD_SET_STATUS, 1),
        a(Tag.DD_ID, 1),
        a(Tag.DD_ID, 5),  # created on the way, with what the server assigned
        a(Tag.DD_SYMBOLIC_NAME, "isns.dd5"),
        a(Tag.DD_FEATURES, 0),
    )
    assert registry.db.ddss[1].dds == {1, 5}
    key = (a(Tag.DD_SET_ID, 1),)
    ok(call(registry, FunctionId.DDS_REG, ADMIN, key, (a(Tag.DD_SET_STATUS, 0),)))
    assert registry.db.ddss[1].status == 0
    ok(call(registry, FunctionId.DDS_DEREG, ADMIN, key, (a(Tag.DD_ID, 5),)))
    assert registry.db.ddss[1].dds == {1} and 5 in registry.db.dds
    ok(call(registry, FunctionId.DDS_DEREG, ADMIN, key))
    assert not registry.db.ddss and not registry.db.dd_sets and len(registry.db.dds) == 2
    assert status(call(registry, FunctionId.DDS_REG, ADMIN, key)) == Status.INVALID_REGISTRATION
    assert status(call(registry, FunctionId.DDS_DEREG, ADMIN)) == Status.MESSAGE_FORMAT_ERROR
    ok(call(registry, FunctionId.DDS_DEREG, ADMIN, key))
    taken = call(registry, FunctionId.DDS_REG, ADMIN, (), (a(Tag.DD_ID, 0),))
    assert status(taken) == Status.INVALID_REGISTRATION


def test_configured_domain_is_created_then_completed_never_trimmed() -> None:
    registry = new_registry()
    standard_setup(registry)
    outcome = registry.ensure_domain("dd-prod", [T1, I1], NOW)
    ok(outcome)
    assert outcome.dirty  # persisted like any DDReg
    assert names_listed(registry, I1) == [I1, T1]
    # An administrator adds i2 over iSNS; restarting with the same configuration keeps it.
    dd_id = registry.db.dd_names["dd-prod"]
    ok(
        call(
            registry,
            FunctionId.DD_REG,
            ADMIN,
            [a(Tag.DD_ID, dd_id)],
            [a(Tag.DD_MEMBER_ISCSI_NAME, I2)],
        )
    )
    ok(registry.ensure_domain("dd-prod", [T1, I1], NOW))
    assert registry.db.dd_names["dd-prod"] == dd_id
    assert names_listed(registry, I2) == [I1, I2, T1]


def test_the_configuration_source_has_no_rights_when_a_client_uses_it() -> None:
    registry = new_registry()
    standard_setup(registry)
    outcome = call(
        registry,
        FunctionId.DD_REG,
        CONFIGURATION_SOURCE,
        (),
        [a(Tag.DD_SYMBOLIC_NAME, "sneaky"), a(Tag.DD_MEMBER_ISCSI_NAME, iqn("i1"))],
    )
    assert status(outcome) == Status.SOURCE_UNKNOWN

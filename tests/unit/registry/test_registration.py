"""DevAttrReg: new entities, updates, Replace, portal groups, and every refusal."""

from ipaddress import IPv4Address, IPv6Address

import pytest

from isns_server.isnsp.constants import FunctionId, NodeType, ScnBitmap, Status, Tag
from isns_server.isnsp.messages import Attribute, PortNumber
from isns_server.registry import COUNTERS, ObjectType

from .builders import (
    ADMIN,
    NOW,
    a,
    call,
    eid,
    iqn,
    keys_of,
    new_registry,
    node,
    ok,
    operating_of,
    portal,
    register,
    standard_setup,
    status,
    values,
)

T1, T2, I1 = iqn("t1"), iqn("t2"), iqn("i1")


def test_new_entity_answers_keys_and_registered_attributes_like_open_isns() -> None:
    registry = new_registry()
    outcome = register(registry, T1, "stor1", portal("10.0.0.1", 3260), node(T1))
    ok(outcome)
    assert keys_of(outcome) == (eid("stor1"),)
    assert operating_of(outcome) == (
        eid("stor1"),
        a(Tag.REGISTRATION_PERIOD, 900),  # chosen by the server, so returned (6.2.6)
        *portal("10.0.0.1", 3260),
        *node(T1),
    )  # no indexes, no implicit PG (5.7.5.1)
    assert outcome.dirty == {("entity", "stor1"), COUNTERS}
    added = {(c.object_type, c.event) for c in outcome.changes}
    assert added == {
        (kind, ScnBitmap.OBJECT_ADDED)
        for kind in (ObjectType.ENTITY, ObjectType.PORTAL, ObjectType.NODE, ObjectType.PORTAL_GROUP)
    }
    entity = registry.db.entities["stor1"]
    assert entity.timestamp == int(NOW) and entity.registration_period == 900
    assert registry.db.pgs[(T1, *entity.portals.popitem()[0])].tag == 1


def test_server_assigns_an_eid_when_none_or_an_empty_one_is_given() -> None:
    registry = new_registry()
    first = register(registry, T1, None, node(T1))
    second = call(registry, FunctionId.DEV_ATTR_REG, T2, [eid(None)], node(T2))
    assert keys_of(first) == (eid("isns:00001"),)
    assert keys_of(second) == (eid("isns:00002"),)
    assert values(operating_of(second), Tag.ENTITY_IDENTIFIER) == ["isns:00002"]


def test_an_eid_less_registration_from_a_registered_source_updates_its_entity() -> None:
    registry = new_registry()
    ok(register(registry, T1, None, node(T1)))
    outcome = register(registry, T1, None, portal("10.0.0.1", 3260))
    assert keys_of(outcome) == (eid("isns:00001"),)
    assert list(registry.db.entities) == ["isns:00001"]
    assert len(registry.db.entities["isns:00001"].portals) == 1


def test_entity_in_operating_attributes_without_a_key_is_appended_to() -> None:
    registry = new_registry()
    ok(register(registry, T1, "stor1", node(T1)))
    outcome = register(registry, T1, None, (eid("stor1"), a(Tag.ENTITY_PROTOCOL, 2)), node(T2))
    ok(outcome)
    assert set(registry.db.entities["stor1"].nodes) == {T1, T2}
    assert values(operating_of(outcome), Tag.ENTITY_PROTOCOL) == [2]


def test_update_keeps_indexes_and_reports_object_updated() -> None:
    registry = new_registry()
    ok(register(registry, T1, "stor1", node(T1)))
    index = registry.db.nodes[T1].index
    outcome = register(registry, T1, "stor1", node(T1, NodeType.TARGET, a(Tag.ISCSI_ALIAS, "disk")))
    ok(outcome)
    assert registry.db.nodes[T1].index == index
    assert registry.db.nodes[T1].alias == "disk"
    assert [(c.event, c.key) for c in outcome.changes] == [(ScnBitmap.OBJECT_UPDATED, (T1,))]


def test_names_and_addresses_are_normalised() -> None:
    registry = new_registry()
    mapped = a(Tag.PORTAL_IP_ADDRESS, IPv6Address("::ffff:10.0.0.1"))
    ok(register(registry, ADMIN, "Stor1", (mapped, a(Tag.PORTAL_TCP_UDP_PORT, PortNumber(3260)))))
    ok(register(registry, T1.upper(), "STOR1", node(T1.upper())))
    entity = registry.db.entities["stor1"]
    assert list(entity.nodes) == [T1]
    assert [p.ip for p in entity.portals.values()] == [IPv4Address("10.0.0.1")]


def test_replace_deregisters_the_entity_contents_first() -> None:
    registry = new_registry()
    standard_setup(registry)
    outcome = register(registry, T1, "stor1", portal("10.0.0.1", 3260), node(T1), replace=True)
    ok(outcome)
    entity = registry.db.entities["stor1"]
    assert list(entity.nodes) == [T1] and len(entity.portals) == 1
    assert T2 not in registry.db.nodes
    events = [(c.event, c.object_type) for c in outcome.changes]
    assert (ScnBitmap.OBJECT_REMOVED, ObjectType.NODE) in events
    assert (ScnBitmap.OBJECT_ADDED, ObjectType.NODE) in events


def test_replace_of_a_node_keeps_its_portal_groups() -> None:
    registry = new_registry()
    ok(register(registry, T1, "stor1", portal("10.0.0.1", 3260), node(T1)))
    pg = next(iter(registry.db.pgs.values()))
    keys = (a(Tag.ISCSI_NAME, T1),)
    operating = (a(Tag.ISCSI_NAME, T1), a(Tag.ISCSI_ALIAS, "new"))
    from isns_server.isnsp.constants import Flags

    ok(call(registry, FunctionId.DEV_ATTR_REG, T1, keys, operating, Flags.REPLACE))
    assert registry.db.nodes[T1].alias == "new"
    assert registry.db.nodes[T1].node_type is None  # replaced, not merged
    assert next(iter(registry.db.pgs.values())) is pg  # restored relationship (5.6.5.4)


def test_replace_bit_is_ignored_without_a_message_key() -> None:
    registry = new_registry()
    standard_setup(registry)
    ok(register(registry, T1, None, (eid("stor1"),), node(T1), replace=True))
    assert set(registry.db.entities["stor1"].nodes) == {T1, T2}


def test_node_keyed_update() -> None:
    registry = new_registry()
    standard_setup(registry)
    keys = (a(Tag.ISCSI_NAME, T1),)
    outcome = call(
        registry,
        FunctionId.DEV_ATTR_REG,
        T1,
        keys,
        (a(Tag.ISCSI_NAME, T1), a(Tag.ISCSI_ALIAS, "x")),
    )
    assert keys_of(outcome) == keys
    assert operating_of(outcome) == (a(Tag.ISCSI_NAME, T1), a(Tag.ISCSI_ALIAS, "x"))
    other = call(registry, FunctionId.DEV_ATTR_REG, T1, keys, node(T2))
    assert status(other) == Status.INVALID_UPDATE


def test_pg_index_keyed_update_changes_the_pgt() -> None:
    registry = new_registry()
    standard_setup(registry)
    pg = next(iter(registry.db.pgs.values()))
    keys = (a(Tag.PG_INDEX, pg.index),)
    ok(
        call(
            registry,
            FunctionId.DEV_ATTR_REG,
            T1,
            keys,
            (a(Tag.PG_INDEX, pg.index), a(Tag.PG_TAG, 7)),
        )
    )
    assert pg.tag == 7


@pytest.mark.parametrize(
    ("keys", "operating", "expected"),
    [
        ((a(Tag.ISCSI_NAME, iqn("nobody")),), node(iqn("nobody")), Status.INVALID_REGISTRATION),
        ((a(Tag.ISCSI_ALIAS, "x"),), node(T1), Status.MESSAGE_FORMAT_ERROR),
        (
            (eid("stor1"),),
            (a(Tag.ISCSI_NODE_TYPE, 1), a(Tag.ISCSI_NAME, T1)),
            Status.MESSAGE_FORMAT_ERROR,
        ),
        (
            (eid("stor1"),),
            (a(Tag.PORTAL_IP_ADDRESS, IPv4Address("10.0.0.9")),),
            Status.MESSAGE_FORMAT_ERROR,
        ),
        ((eid("stor1"),), (*node(T1), eid("other")), Status.MESSAGE_FORMAT_ERROR),
        ((), (eid("a"), *node(T1), eid("b")), Status.INVALID_REGISTRATION),
        ((eid("stor1"),), (eid("other"), *node(T1)), Status.INVALID_REGISTRATION),
        ((eid("stor1"),), (*node(T1), *node(T1)), Status.INVALID_REGISTRATION),
        (
            (eid("stor1"),),
            (*node(T1), a(Tag.ISCSI_ALIAS, "a"), a(Tag.ISCSI_ALIAS, "b")),
            Status.INVALID_REGISTRATION,
        ),
        (
            (eid("stor1"),),
            (eid("stor1"), a(Tag.TIMESTAMP, 5), *node(T1)),
            Status.INVALID_REGISTRATION,
        ),
        (
            (eid("stor1"),),
            (*node(T1), a(Tag.ISCSI_NODE_NEXT_INDEX, 5)),
            Status.INVALID_REGISTRATION,
        ),
        ((eid("stor1"),), (a(Tag.ISCSI_NODE_INDEX, 999),), Status.INVALID_REGISTRATION),
        (
            (eid("stor1"),),
            (*node(T1), a(Tag.ISNS_SERVER_VENDOR_OUI, 1)),
            Status.INVALID_REGISTRATION,
        ),
        ((eid("stor1"),), (*node(T1), a(Tag.DD_ID, 1)), Status.INVALID_REGISTRATION),
        (
            (eid("stor1"),),
            (*node(T1), a(Tag.FC4_TYPES, bytes(32))),
            Status.ATTRIBUTE_NOT_IMPLEMENTED,
        ),
        ((eid("stor1"),), (*node(T1), a(700, b"\0\0\0\1")), Status.ATTRIBUTE_NOT_IMPLEMENTED),
        ((eid("stor1"),), (eid("stor1"), a(Tag.ENTITY_PROTOCOL, 2)), Status.INVALID_REGISTRATION),
        ((eid("stor1"),), node("not-an-iscsi-name"), Status.INVALID_REGISTRATION),
        (
            (eid("stor1"),),
            (a(Tag.ISCSI_NAME, T1), a(Tag.ISCSI_NODE_TYPE, "target")),
            Status.INVALID_REGISTRATION,
        ),
        (
            (eid("stor1"),),
            (*portal("10.0.0.1", 1), a(Tag.PG_TAG, 70000), a(Tag.PG_ISCSI_NAME, T1)),
            Status.INVALID_REGISTRATION,
        ),
    ],
)
def test_refused_registrations_change_nothing(
    keys: tuple[Attribute, ...], operating: tuple[Attribute, ...], expected: Status
) -> None:
    registry = new_registry()
    outcome = call(registry, FunctionId.DEV_ATTR_REG, ADMIN, keys, operating)
    assert status(outcome) == expected
    assert outcome.dirty == frozenset() and outcome.changes == ()
    assert not registry.db.entities and not registry.db.nodes


def test_source_must_be_registered_or_registering_itself() -> None:
    registry = new_registry()
    outcome = register(registry, iqn("stranger"), "stor1", node(T1))
    assert status(outcome) == Status.SOURCE_UNKNOWN


def test_unregistered_source_may_join_an_existing_entity_with_itself() -> None:
    registry = new_registry()
    ok(register(registry, T1, "stor1", portal("10.0.0.1", 3260), node(T1)))
    ok(register(registry, T2, "stor1", portal("10.0.0.1", 3261), node(T2)))
    assert set(registry.db.entities["stor1"].nodes) == {T1, T2}


def test_nodes_may_change_only_their_own_entity() -> None:
    registry = new_registry()
    standard_setup(registry)
    assert status(register(registry, I1, "stor1", node(iqn("t9")))) == Status.SOURCE_UNAUTHORIZED
    assert status(register(registry, I1, "host1", node(T1))) == Status.SOURCE_UNAUTHORIZED
    assert status(register(registry, I1, "fresh", node(iqn("t9")))) == Status.SOURCE_UNAUTHORIZED
    # A Control Node may change any entity, but objects never move (5.6.5.1).
    ok(register(registry, ADMIN, "stor1", node(iqn("t9"))))
    assert status(register(registry, ADMIN, "host1", node(T1))) == Status.INVALID_REGISTRATION


def test_a_newcomer_cannot_take_a_portal_of_another_entity() -> None:
    registry = new_registry()
    standard_setup(registry)
    claim = register(registry, iqn("t9"), "stor9", portal("10.0.0.1", 3260), node(iqn("t9")))
    assert status(claim) == Status.INVALID_REGISTRATION  # as isnsd answers
    assert "stor9" not in registry.db.entities


def test_only_configured_control_nodes_register_the_control_type() -> None:
    registry = new_registry()
    refused = register(registry, I1, "host1", node(I1, NodeType.CONTROL))
    assert status(refused) == Status.SOURCE_UNAUTHORIZED
    ok(register(registry, ADMIN, "mgmt", node(ADMIN, NodeType.CONTROL)))


def test_portal_registration_creates_default_portal_groups_in_open_isns_order() -> None:
    registry = new_registry()
    standard_setup(registry)
    pgs = sorted(registry.db.pgs.values(), key=lambda pg: pg.index)
    assert [(pg.node_name, pg.portal_port.port, pg.tag) for pg in pgs] == [
        (T1, 3260, 1),
        (T1, 3261, 1),
        (T2, 3261, 1),
        (T2, 3260, 1),
    ]


def test_pgt_after_a_portal_applies_to_the_named_nodes_and_is_returned() -> None:
    registry = new_registry()
    operating = (
        *node(T1),
        *node(T2),
        *portal("10.0.0.1", 3260),
        a(Tag.PG_TAG, 5),
        a(Tag.PG_ISCSI_NAME, T1),
        a(Tag.PG_TAG),  # NULL: T2 is not reachable through this portal
        a(Tag.PG_ISCSI_NAME, T2),
    )
    outcome = call(registry, FunctionId.DEV_ATTR_REG, T1, [eid("stor1")], operating)
    ok(outcome)
    tags = {pg.node_name: pg.tag for pg in registry.db.pgs.values()}
    assert tags == {T1: 5, T2: None}
    assert values(operating_of(outcome), Tag.PG_TAG) == [5, None]
    assert values(operating_of(outcome), Tag.PG_ISCSI_NAME) == [T1, T2]


def test_pgt_after_a_node_applies_to_the_named_portals() -> None:
    registry = new_registry()
    ip = IPv4Address("10.0.0.1")
    operating = (
        *portal("10.0.0.1", 3260),
        *portal("10.0.0.1", 3261),
        *node(T1),
        a(Tag.PG_TAG, 3),
        a(Tag.PG_PORTAL_IP_ADDR, ip),
        a(Tag.PG_PORTAL_TCP_UDP_PORT, PortNumber(3261)),
    )
    ok(call(registry, FunctionId.DEV_ATTR_REG, T1, [eid("stor1")], operating))
    tags = {pg.portal_port.port: pg.tag for pg in registry.db.pgs.values()}
    assert tags == {3260: 1, 3261: 3}


def test_explicit_portal_group_object() -> None:
    registry = new_registry()
    ip = IPv4Address("10.0.0.1")
    pg_object = (
        a(Tag.PG_ISCSI_NAME, T1),
        a(Tag.PG_PORTAL_IP_ADDR, ip),
        a(Tag.PG_PORTAL_TCP_UDP_PORT, PortNumber(3260)),
        a(Tag.PG_TAG, 10),
    )
    outcome = call(
        registry,
        FunctionId.DEV_ATTR_REG,
        T1,
        [eid("stor1")],
        (*portal("10.0.0.1", 3260), *node(T1), *pg_object),
    )
    ok(outcome)
    assert [pg.tag for pg in registry.db.pgs.values()] == [10]
    assert operating_of(outcome)[-4:] == pg_object


def test_portal_group_may_not_reach_into_another_entity() -> None:
    registry = new_registry()
    standard_setup(registry)
    operating = (*portal("10.0.0.2", 3260), a(Tag.PG_TAG, 1), a(Tag.PG_ISCSI_NAME, T1))
    outcome = call(registry, FunctionId.DEV_ATTR_REG, I1, [eid("host1")], operating)
    assert status(outcome) == Status.INVALID_REGISTRATION


def test_registration_period_is_kept_unless_missing_or_zero_without_esi() -> None:
    registry = new_registry()
    kept = register(registry, T1, "a", (eid("a"), a(Tag.REGISTRATION_PERIOD, 60)), node(T1))
    assert registry.db.entities["a"].registration_period == 60
    assert values(operating_of(kept), Tag.REGISTRATION_PERIOD) == [60]
    zero = register(registry, T2, "b", (eid("b"), a(Tag.REGISTRATION_PERIOD, 0)), node(T2))
    assert registry.db.entities["b"].registration_period == 900
    assert values(operating_of(zero), Tag.REGISTRATION_PERIOD) == [900]  # what it got


def test_indexes_are_assigned_monotonically_and_never_reused() -> None:
    registry = new_registry()
    ok(register(registry, T1, "stor1", node(T1)))
    first = registry.db.nodes[T1].index
    ok(call(registry, FunctionId.DEV_DEREG, T1, (), [eid("stor1")]))
    ok(register(registry, T1, "stor1", node(T1)))
    assert registry.db.nodes[T1].index > first
    assert registry.db.entities["stor1"].index == 2


def test_any_message_from_a_registered_node_refreshes_the_timestamp() -> None:
    registry = new_registry()
    ok(register(registry, T1, "stor1", node(T1)))
    call(registry, FunctionId.DEV_ATTR_QRY, T1, [a(Tag.ISCSI_NAME, T1)], now=NOW + 50)
    assert registry.db.entities["stor1"].timestamp == int(NOW) + 50


def test_entity_index_key_names_the_entity() -> None:
    registry = new_registry()
    standard_setup(registry)
    index = registry.db.entities["stor1"].index
    keys = (a(Tag.ENTITY_INDEX, index),)
    outcome = call(registry, FunctionId.DEV_ATTR_REG, T1, keys, node(iqn("t3")))
    assert keys_of(outcome) == keys
    assert iqn("t3") in registry.db.entities["stor1"].nodes

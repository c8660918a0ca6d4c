"""DevAttrQry and DevGetNext: keys, requested attributes, response layout, refusals."""

from collections.abc import Sequence
from ipaddress import IPv4Address

import pytest

from isns_server.isnsp.constants import FunctionId, NodeType, Status, Tag
from isns_server.isnsp.messages import Attribute, PortNumber
from isns_server.registry import Registry

from .builders import (
    ADMIN,
    a,
    call,
    eid,
    iqn,
    keys_of,
    names_listed,
    new_registry,
    ok,
    operating_of,
    portal,
    query,
    standard_setup,
    status,
    values,
)

T1, T2, I1, I2 = iqn("t1"), iqn("t2"), iqn("i1"), iqn("i2")
IP = IPv4Address("10.0.0.1")


@pytest.fixture
def registry() -> Registry:
    registry = new_registry()
    standard_setup(registry)
    return registry


def tags(attrs: tuple[Attribute, ...]) -> list[int]:
    return [attr.tag for attr in attrs]


def test_query_without_operating_attributes_lists_everything_as_open_isns(
    registry: Registry,
) -> None:
    outcome = query(registry, I1, [a(Tag.ISCSI_NAME, T1)])
    assert keys_of(outcome) == (a(Tag.ISCSI_NAME, T1),)  # the original key (5.7.5.2)
    entity, node_, portal_, pg = (
        [1, 2, 6, 4, 7],
        [32, 33, 36],
        [16, 17, 22],
        [48, 49, 50, 51, 52],
    )
    assert tags(operating_of(outcome)) == entity + node_ + portal_ + pg + portal_ + pg
    assert values(operating_of(outcome), Tag.PG_TAG) == [1, 1]


def test_query_entity_lists_its_nodes_then_each_portal_once_with_every_pg(
    registry: Registry,
) -> None:
    attrs = operating_of(query(registry, I1, [eid("stor1")]))
    assert values(attrs, Tag.ISCSI_NAME) == [T1, T2]
    assert values(attrs, Tag.PORTAL_TCP_UDP_PORT) == [PortNumber(3260), PortNumber(3261)]
    pgs = list(
        zip(
            values(attrs, Tag.PG_ISCSI_NAME), values(attrs, Tag.PG_PORTAL_TCP_UDP_PORT), strict=True
        )
    )
    assert pgs == [
        (T1, PortNumber(3260)),
        (T1, PortNumber(3261)),
        (T2, PortNumber(3261)),
        (T2, PortNumber(3260)),
    ]


def test_requested_attributes_come_grouped_per_object_in_request_order(registry: Registry) -> None:
    wanted = (
        Tag.ISCSI_NAME,
        Tag.ISCSI_NODE_TYPE,
        Tag.PORTAL_TCP_UDP_PORT,
        Tag.PG_TAG,
        Tag.ENTITY_IDENTIFIER,
    )
    attrs = operating_of(query(registry, I1, [a(Tag.ISCSI_NAME, T1)], *wanted))
    assert attrs == (
        a(Tag.ISCSI_NAME, T1),
        a(Tag.ISCSI_NODE_TYPE, 1),
        a(Tag.PORTAL_TCP_UDP_PORT, PortNumber(3260)),
        a(Tag.PORTAL_TCP_UDP_PORT, PortNumber(3261)),
        a(Tag.PG_TAG, 1),
        a(Tag.PG_TAG, 1),
        eid("stor1"),
    )


def test_the_isnsadm_query_eid_form(registry: Registry) -> None:
    outcome = query(registry, I1, [a(Tag.ISCSI_NAME, I1)], Tag.ENTITY_IDENTIFIER)
    assert operating_of(outcome) == (eid("host1"),)


def test_zero_length_key_means_every_object_of_its_type(registry: Registry) -> None:
    attrs = operating_of(query(registry, ADMIN, [a(Tag.ISCSI_NAME)], Tag.ISCSI_NAME))
    assert values(attrs, Tag.ISCSI_NAME) == [I1, I2, T1, T2]


def test_no_key_lists_each_requested_type_in_turn(registry: Registry) -> None:
    attrs = operating_of(
        query(registry, ADMIN, [], Tag.PORTAL_TCP_UDP_PORT, Tag.ISCSI_NAME, Tag.ENTITY_IDENTIFIER)
    )
    assert tags(attrs) == [17, 17, 32, 32, 32, 32, 1, 1, 1]


def test_non_key_attributes_filter(registry: Registry) -> None:
    targets = query(registry, ADMIN, [a(Tag.ISCSI_NODE_TYPE, int(NodeType.TARGET))], Tag.ISCSI_NAME)
    assert values(operating_of(targets), Tag.ISCSI_NAME) == [T1, T2]
    none = query(registry, ADMIN, [a(Tag.ISCSI_ALIAS, "nothing")], Tag.ISCSI_NAME)
    assert ok(none) and operating_of(none) == ()


def test_index_and_portal_keys(registry: Registry) -> None:
    index = registry.db.nodes[T2].index
    outcome = query(registry, ADMIN, [a(Tag.ISCSI_NODE_INDEX, index)], Tag.ISCSI_NAME)
    assert operating_of(outcome) == (a(Tag.ISCSI_NAME, T2),)
    by_portal = query(registry, ADMIN, portal("10.0.0.1", 3261), Tag.PORTAL_INDEX, Tag.ISCSI_NAME)
    assert values(operating_of(by_portal), Tag.ISCSI_NAME) == [T1, T2]


def test_a_key_naming_nothing_visible_is_no_such_entry(registry: Registry) -> None:
    assert status(query(registry, I1, [a(Tag.ISCSI_NAME, iqn("gone"))])) == Status.NO_SUCH_ENTRY
    assert status(query(registry, I1, [eid("nothing")])) == Status.NO_SUCH_ENTRY


def test_next_index_attributes_need_no_key(registry: Registry) -> None:
    outcome = query(registry, I1, [], Tag.ISCSI_NODE_NEXT_INDEX, Tag.DD_ID_NEXT_ID)
    assert operating_of(outcome) == (
        a(Tag.ISCSI_NODE_NEXT_INDEX, registry.db.counters["node"]),
        a(Tag.DD_ID_NEXT_ID, 1),
    )


def test_null_pgt_means_no_relationship(registry: Registry) -> None:
    operating = (
        a(Tag.ISCSI_NAME, T1),
        a(Tag.PG_TAG),
        a(Tag.PG_PORTAL_IP_ADDR, IP),
        a(Tag.PG_PORTAL_TCP_UDP_PORT, PortNumber(3261)),
    )
    ok(call(registry, FunctionId.DEV_ATTR_REG, T1, [a(Tag.ISCSI_NAME, T1)], operating))
    attrs = operating_of(query(registry, I1, [a(Tag.ISCSI_NAME, T1)], Tag.PORTAL_TCP_UDP_PORT))
    assert values(attrs, Tag.PORTAL_TCP_UDP_PORT) == [PortNumber(3260)]


@pytest.mark.parametrize(
    ("keys", "wanted", "expected"),
    [
        ([a(Tag.ISCSI_NAME, T1), eid("stor1")], (), Status.INVALID_QUERY),
        ([a(Tag.ISCSI_NODE_NEXT_INDEX)], (), Status.INVALID_QUERY),
        ([a(Tag.FC_PORT_NAME_WWPN, 1)], (), Status.ATTRIBUTE_NOT_IMPLEMENTED),
        ([a(Tag.ISCSI_NAME, T1)], (Tag.FC_NODE_NAME_WWNN,), Status.ATTRIBUTE_NOT_IMPLEMENTED),
        ([a(Tag.ISCSI_NAME, 5)], (), Status.INVALID_QUERY),
        ([a(1000, b"x")], (), Status.ATTRIBUTE_NOT_IMPLEMENTED),
    ],
)
def test_refused_queries(
    registry: Registry, keys: list[Attribute], wanted: tuple[int, ...], expected: Status
) -> None:
    assert status(query(registry, I1, keys, *wanted)) == expected


def test_attributes_without_a_value_here_are_simply_not_returned(registry: Registry) -> None:
    outcome = query(
        registry, I1, [a(Tag.ISCSI_NAME, I1)], Tag.ISNS_SERVER_VENDOR_OUI, Tag.ISCSI_ALIAS, 700
    )
    assert ok(outcome) and operating_of(outcome) == ()


def test_queries_need_a_known_source(registry: Registry) -> None:
    assert status(query(registry, iqn("stranger"), [a(Tag.ISCSI_NAME)])) == Status.SOURCE_UNKNOWN
    assert ok(query(registry, ADMIN, [a(Tag.ISCSI_NAME)]))  # a configured control node


# --- DevGetNext --------------------------------------------------------------------------


def walk(
    registry: Registry, source: str, key_tags: list[int], operating: Sequence[Attribute] = ()
) -> list[tuple[tuple[Attribute, ...], tuple[Attribute, ...]]]:
    """Every (keys, operating) a DevGetNext walk returns."""
    keys = [a(tag) for tag in key_tags]
    found: list[tuple[tuple[Attribute, ...], tuple[Attribute, ...]]] = []
    while True:
        outcome = call(registry, FunctionId.DEV_GET_NEXT, source, keys, operating)
        if status(outcome) == Status.NO_SUCH_ENTRY:
            return found
        ok(outcome)
        keys = list(keys_of(outcome))
        found.append((keys_of(outcome), operating_of(outcome)))


def test_get_next_walks_every_type_in_key_order(registry: Registry) -> None:
    assert names_listed(registry, ADMIN) == [I1, I2, T1, T2]
    entities = walk(registry, ADMIN, [Tag.ENTITY_IDENTIFIER])
    assert [k for (k,), _ in entities] == [eid("host1"), eid("host2"), eid("stor1")]
    portals = walk(registry, ADMIN, [Tag.PORTAL_IP_ADDRESS, Tag.PORTAL_TCP_UDP_PORT])
    assert [keys[1].value for keys, _ in portals] == [PortNumber(3260), PortNumber(3261)]
    pgs = walk(
        registry, ADMIN, [Tag.PG_ISCSI_NAME, Tag.PG_PORTAL_IP_ADDR, Tag.PG_PORTAL_TCP_UDP_PORT]
    )
    assert [(k[0].value, k[2].value) for k, _ in pgs] == [
        (T1, PortNumber(3260)),
        (T1, PortNumber(3261)),
        (T2, PortNumber(3260)),
        (T2, PortNumber(3261)),
    ]
    # With no attributes requested, each answer is the object's own attributes, keys first.
    assert tags(entities[0][1]) == [1, 2, 6, 4, 7]


def test_get_next_by_index_walks_in_index_order(registry: Registry) -> None:
    found = walk(registry, ADMIN, [Tag.ISCSI_NODE_INDEX], [a(Tag.ISCSI_NAME)])
    assert [ops for _, ops in found] == [(a(Tag.ISCSI_NAME, n),) for n in (T1, T2, I1, I2)]
    assert all(keys[0].tag == Tag.ISCSI_NODE_INDEX for keys, _ in found)


def test_get_next_continues_after_a_key_deregistered_meanwhile(registry: Registry) -> None:
    ok(call(registry, FunctionId.DEV_DEREG, I2, [], [a(Tag.ISCSI_NAME, I2)]))
    outcome = call(registry, FunctionId.DEV_GET_NEXT, ADMIN, [a(Tag.ISCSI_NAME, I2)])
    assert keys_of(outcome) == (a(Tag.ISCSI_NAME, T1),)


def test_get_next_scoping_and_requested_attributes(registry: Registry) -> None:
    operating = [a(Tag.ISCSI_NODE_TYPE, int(NodeType.INITIATOR)), a(Tag.ISCSI_NAME)]
    found = walk(registry, ADMIN, [Tag.ISCSI_NAME], operating)
    assert [ops for _, ops in found] == [(a(Tag.ISCSI_NAME, I1),), (a(Tag.ISCSI_NAME, I2),)]


@pytest.mark.parametrize(
    ("keys", "operating", "expected"),
    [
        ([], [], Status.MESSAGE_FORMAT_ERROR),
        ([a(Tag.PORTAL_IP_ADDRESS)], [], Status.MESSAGE_FORMAT_ERROR),
        ([a(Tag.ISCSI_ALIAS)], [], Status.MESSAGE_FORMAT_ERROR),
        ([a(Tag.ISCSI_NAME), eid(None)], [], Status.INVALID_QUERY),
        ([a(Tag.ISCSI_NAME)], [a(Tag.PORTAL_INDEX)], Status.INVALID_QUERY),
        (
            [a(Tag.ISCSI_NAME)],
            [a(Tag.ISCSI_ALIAS), a(Tag.ISCSI_NODE_TYPE, 1)],
            Status.MESSAGE_FORMAT_ERROR,
        ),
        ([a(Tag.FC_PORT_NAME_WWPN)], [], Status.ATTRIBUTE_NOT_IMPLEMENTED),
        ([a(Tag.ISCSI_NAME, T2)], [], Status.NO_SUCH_ENTRY),
    ],
)
def test_refused_get_next(
    registry: Registry, keys: list[Attribute], operating: list[Attribute], expected: Status
) -> None:
    assert status(call(registry, FunctionId.DEV_GET_NEXT, ADMIN, keys, operating)) == expected

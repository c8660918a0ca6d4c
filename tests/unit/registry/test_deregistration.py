"""DevDereg: containment, portal groups, the empty entity rule, authorisation."""

import pytest

from isns_server.isnsp.constants import FunctionId, ScnBitmap, Status, Tag
from isns_server.isnsp.messages import Attribute
from isns_server.registry import ObjectType, Outcome, Registry

from .builders import (
    ADMIN,
    a,
    call,
    eid,
    iqn,
    new_registry,
    node,
    ok,
    operating_of,
    portal,
    register,
    standard_setup,
    status,
)

T1, T2, I1 = iqn("t1"), iqn("t2"), iqn("i1")


@pytest.fixture
def registry() -> Registry:
    registry = new_registry()
    standard_setup(registry)
    return registry


def dereg(registry: Registry, source: str, *operating: Attribute) -> Outcome:
    return call(registry, FunctionId.DEV_DEREG, source, (), operating)


def test_deregistering_an_entity_removes_everything_it_contains(registry: Registry) -> None:
    outcome = dereg(registry, T1, eid("stor1"))
    ok(outcome)
    db = registry.db
    assert "stor1" not in db.entities and T1 not in db.nodes and T2 not in db.nodes
    assert not db.portals and not db.pgs
    assert outcome.dirty == {("entity", "stor1")}
    assert registry.export_record(("entity", "stor1")) is None
    removed = [c.object_type for c in outcome.changes if c.event == ScnBitmap.OBJECT_REMOVED]
    assert sorted(t.value for t in removed) == sorted(
        ["node", "node", "portal", "portal", "pg", "pg", "pg", "pg", "entity"]
    )
    entity_change = outcome.changes[-1]
    assert entity_change.object_type is ObjectType.ENTITY and entity_change.names == {T1, T2}


def test_a_node_leaves_its_portal_groups_while_their_portals_remain(registry: Registry) -> None:
    ok(dereg(registry, T2, a(Tag.ISCSI_NAME, T2)))
    assert {pg.node_name for pg in registry.db.pgs.values()} == {T1, T2}  # kept (5.6.5.4)
    assert len(registry.db.pgs) == 4
    ok(dereg(registry, T1, *portal("10.0.0.1", 3261)))
    # Portal 3261 gone: T2-3261 has no registered end left; the others still have one.
    assert sorted((pg.node_name, pg.portal_port.port) for pg in registry.db.pgs.values()) == [
        (T1, 3260),
        (T1, 3261),
        (T2, 3260),
    ]


def test_a_reregistered_node_gets_its_portal_group_back(registry: Registry) -> None:
    pg = registry.db.pgs[(T2, *registry.db.portals[next(iter(registry.db.portals))].key)]
    pg.tag = 9
    ok(dereg(registry, T2, a(Tag.ISCSI_NAME, T2)))
    ok(register(registry, T2, "stor1", node(T2)))
    assert registry.db.pgs[pg.key] is pg and pg.tag == 9  # not reset to the default 1


def test_an_entity_left_with_no_portal_and_no_node_is_removed(registry: Registry) -> None:
    ok(dereg(registry, I1, a(Tag.ISCSI_NAME, I1)))
    assert "host1" not in registry.db.entities
    ok(dereg(registry, T1, a(Tag.ISCSI_NAME, T1), a(Tag.ISCSI_NAME, T2)))
    assert "stor1" in registry.db.entities  # its portals are still registered
    ok(dereg(registry, ADMIN, *portal("10.0.0.1", 3260), *portal("10.0.0.1", 3261)))
    assert "stor1" not in registry.db.entities and not registry.db.pgs


def test_objects_may_be_named_by_index_and_carry_extra_attributes(registry: Registry) -> None:
    index = registry.db.portals[next(iter(registry.db.portals))].index
    ok(dereg(registry, T1, a(Tag.PORTAL_INDEX, index)))
    assert index not in registry.db.portal_index
    # Microsoft's initiator sends the Entity Protocol along with the EID.
    ok(dereg(registry, I1, eid("host1"), a(Tag.ENTITY_PROTOCOL, 2)))
    assert "host1" not in registry.db.entities


def test_deregistering_what_does_not_exist_is_not_an_error(registry: Registry) -> None:
    outcome = dereg(registry, I1, a(Tag.ISCSI_NAME, iqn("ghost")), eid("nowhere"))
    assert ok(outcome) and outcome.dirty == frozenset()


def test_nodes_deregister_only_their_own_entity(registry: Registry) -> None:
    outcome = dereg(registry, I1, a(Tag.ISCSI_NAME, I1), a(Tag.ISCSI_NAME, T1))
    assert status(outcome) == Status.SOURCE_UNAUTHORIZED
    assert operating_of(outcome) == (a(Tag.ISCSI_NAME, T1),)  # what was refused (5.7.5.4)
    assert I1 in registry.db.nodes and T1 in registry.db.nodes  # all or nothing
    ok(dereg(registry, ADMIN, a(Tag.ISCSI_NAME, T1)))  # a Control Node may


@pytest.mark.parametrize(
    ("operating", "expected"),
    [
        ((), Status.MESSAGE_FORMAT_ERROR),
        ((a(Tag.ISCSI_NODE_TYPE, 1),), Status.INVALID_DEREGISTRATION),
        ((a(Tag.DD_ID, 1),), Status.INVALID_DEREGISTRATION),
        ((a(Tag.PG_INDEX, 1),), Status.INVALID_DEREGISTRATION),
        ((a(Tag.ISCSI_NAME),), Status.INVALID_DEREGISTRATION),
        ((a(Tag.PORTAL_TCP_UDP_PORT, 1),), Status.INVALID_DEREGISTRATION),
        ((portal("10.0.0.1", 3260)[0],), Status.MESSAGE_FORMAT_ERROR),
        ((a(Tag.FC_NODE_NAME_WWNN, 1),), Status.ATTRIBUTE_NOT_IMPLEMENTED),
        ((a(900, b"vend"),), Status.INVALID_DEREGISTRATION),
    ],
)
def test_refused_deregistrations(
    registry: Registry, operating: tuple[Attribute, ...], expected: Status
) -> None:
    assert status(dereg(registry, ADMIN, *operating)) == expected


def test_deregistration_needs_a_known_source(registry: Registry) -> None:
    outcome = dereg(registry, iqn("stranger"), a(Tag.ISCSI_NAME, T1))
    assert status(outcome) == Status.SOURCE_UNKNOWN

"""With 20,000 nodes registered, a zoned source's queries touch its own DDs, never the
whole registry: the node table refuses to be scanned and counts every lookup."""

from typing import Any

import pytest

from isns_server.isnsp.constants import FunctionId, NodeType, Tag
from isns_server.registry import ObjectType, Registry

from .builders import (
    ADMIN,
    a,
    call,
    eid,
    iqn,
    names_listed,
    new_registry,
    ok,
    operating_of,
    portal,
    query,
    values,
)

ENTITIES, NODES_PER_ENTITY = 100, 200  # 20,000 nodes
DD_TARGETS = 50
INITIATOR = iqn("zoned-initiator")


class Guarded(dict[Any, Any]):
    """A dict that counts lookups and fails the test if anything iterates over it."""

    lookups = 0

    def _scan(self, *args: Any) -> Any:
        raise AssertionError("the registry-wide table was scanned")

    __iter__ = keys = values = items = _scan

    def __getitem__(self, key: Any) -> Any:
        self.lookups += 1
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        self.lookups += 1
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.lookups += 1
        return super().__contains__(key)


def target(e: int, n: int) -> str:
    return iqn(f"e{e}-t{n}")


@pytest.fixture(scope="module")
def big() -> Registry:
    registry = new_registry()
    for e in range(ENTITIES):
        nodes = [
            attr
            for n in range(NODES_PER_ENTITY)
            for attr in (
                a(Tag.ISCSI_NAME, target(e, n)),
                a(Tag.ISCSI_NODE_TYPE, int(NodeType.TARGET)),
            )
        ]
        operating = (*portal(f"10.0.{e // 250}.{e % 250 + 1}", 3260), *nodes)
        ok(call(registry, FunctionId.DEV_ATTR_REG, ADMIN, [eid(f"stor{e}")], operating))
    initiator = (a(Tag.ISCSI_NAME, INITIATOR), a(Tag.ISCSI_NODE_TYPE, int(NodeType.INITIATOR)))
    ok(call(registry, FunctionId.DEV_ATTR_REG, INITIATOR, [eid("host")], initiator))
    # One DD: the initiator and 50 targets spread over the entities.
    members = [a(Tag.DD_MEMBER_ISCSI_NAME, INITIATOR)]
    members += [a(Tag.DD_MEMBER_ISCSI_NAME, target(i * 2, i)) for i in range(DD_TARGETS)]
    ok(call(registry, FunctionId.DD_REG, ADMIN, (), members))
    assert len(registry.db.nodes) == ENTITIES * NODES_PER_ENTITY + 1
    return registry


@pytest.fixture
def guarded(big: Registry, monkeypatch: pytest.MonkeyPatch) -> Guarded:
    nodes = Guarded(big.db.nodes)
    monkeypatch.setattr(big.db, "nodes", nodes)
    monkeypatch.setattr(big.db, "in_order", nodes._scan)
    return nodes


def test_a_zoned_query_for_all_nodes_touches_only_the_dd(big: Registry, guarded: Guarded) -> None:
    outcome = query(big, INITIATOR, [a(Tag.ISCSI_NAME)], Tag.ISCSI_NAME)
    names = values(operating_of(outcome), Tag.ISCSI_NAME)
    assert len(names) == DD_TARGETS + 1
    assert guarded.lookups <= 2 * (DD_TARGETS + 1)


def test_a_zoned_get_next_walk_touches_only_the_dd(big: Registry, guarded: Guarded) -> None:
    assert len(names_listed(big, INITIATOR)) == DD_TARGETS + 1
    steps = DD_TARGETS + 2  # each name, then No Such Entry
    assert guarded.lookups <= 3 * steps + DD_TARGETS + 1


def test_visible_targets_touches_only_the_dd(big: Registry, guarded: Guarded) -> None:
    targets = big.visible_targets(INITIATOR)
    assert len(targets) == DD_TARGETS and all(len(t.portals) == 1 for t in targets)
    assert guarded.lookups <= 2 * (DD_TARGETS + 1)


def test_exact_lookups_stay_constant(big: Registry, guarded: Guarded) -> None:
    name = target(ENTITIES - 1, NODES_PER_ENTITY - 1)
    ok(query(big, ADMIN, [a(Tag.ISCSI_NAME, name)], Tag.ISCSI_NAME, Tag.PORTAL_IP_ADDRESS))
    assert guarded.lookups <= 3


def test_a_control_walk_is_ordered_without_sorting_the_registry(big: Registry) -> None:
    after = target(57, 10)
    outcome = call(big, FunctionId.DEV_GET_NEXT, ADMIN, [a(Tag.ISCSI_NAME, after)])
    assert outcome.response.split()[1] == (a(Tag.ISCSI_NAME, target(57, 100)),)  # "10" < "100"
    assert len(big.db.order[ObjectType.NODE]) == len(big.db.nodes)

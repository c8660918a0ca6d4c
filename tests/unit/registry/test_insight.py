"""Zoning insight: explain and preview, checked against what the registry really does."""

import copy
from itertools import product

from isns_server.isnsp.constants import DDSetStatus, FunctionId, NodeType, Tag
from isns_server.isnsp.messages import Attribute
from isns_server.registry import Registry
from isns_server.registry.insight import NEW_DD, ProposedChange, explain, preview

from .builders import ADMIN, a, call, iqn, new_registry, node, ok, portal, register, standard_setup

T1, T2, I1, I2, I3 = iqn("t1"), iqn("t2"), iqn("i1"), iqn("i2"), iqn("i3")


def dd(registry: Registry, name: str, *members: str, dd_id: int | None = None) -> int:
    keys = () if dd_id is None else (a(Tag.DD_ID, dd_id),)
    operating = [a(Tag.DD_SYMBOLIC_NAME, name), *(a(Tag.DD_MEMBER_ISCSI_NAME, m) for m in members)]
    answer = ok(call(registry, FunctionId.DD_REG, ADMIN, keys, operating))
    (found,) = [x.value for x in answer.split()[2] if x.tag == Tag.DD_ID]
    assert isinstance(found, int)
    return found


def dd_set(registry: Registry, name: str, enabled: bool, *dds: int) -> int:
    status = DDSetStatus.ENABLED if enabled else 0
    operating = [a(Tag.DD_SET_SYMBOLIC_NAME, name), a(Tag.DD_SET_STATUS, int(status))]
    operating += [a(Tag.DD_ID, d) for d in dds]
    answer = ok(call(registry, FunctionId.DDS_REG, ADMIN, (), operating))
    (found,) = [x.value for x in answer.split()[2] if x.tag == Tag.DD_SET_ID]
    assert isinstance(found, int)
    return found


def pairs(registry: Registry, initiators: list[str]) -> set[tuple[str, str]]:
    """Every (initiator, registered target) pair zoning allows, by brute force."""
    targets = [n for n, obj in registry.db.nodes.items() if (obj.node_type or 0) & NodeType.TARGET]
    return {(i, t) for i, t in product(initiators, targets) if i != t and registry.may_see(i, t)}


def test_explain_names_the_dd_and_the_set_that_enables_it() -> None:
    registry = new_registry()
    standard_setup(registry)
    dd1 = dd(registry, "prod", I1, T1)
    dd_set(registry, "on", True, dd1)
    dd2 = dd(registry, "lab", I1, T1)
    dd_set(registry, "off", False, dd2)
    why = explain(registry.db, registry.policy, I1, T1.upper())
    assert why.visible and why.target_registered
    assert [(r.kind, r.dd_name, r.dd_sets) for r in why.reasons] == [
        ("discovery_domain", "prod", ("on",))
    ]
    assert [r.dd_name for r in why.disabled_domains] == ["lab"]
    nothing = explain(registry.db, registry.policy, I2, T1)
    assert not nothing.visible and nothing.reasons == ()


def test_explain_control_node_same_entity_default_dd_and_unregistered_target() -> None:
    registry = new_registry()
    standard_setup(registry)
    assert [r.kind for r in explain(registry.db, registry.policy, ADMIN, T1).reasons] == [
        "control_node",
        "default_dd",  # an unregistered name in no DD is in the default DD too
    ]
    assert [r.kind for r in explain(registry.db, registry.policy, T2, T1).reasons] == [
        "same_entity",
        "default_dd",
    ]
    gone = explain(registry.db, registry.policy, I1, iqn("nobody"))
    assert not gone.visible and not gone.target_registered


Step = tuple[FunctionId, list[Attribute], list[Attribute]]


def check_preview(registry: Registry, change: ProposedChange, apply: list[Step]) -> None:
    """preview(change) equals the difference that applying `apply` really makes."""
    initiators = [I1, I2, I3, T1, T2, ADMIN]
    before = pairs(registry, initiators)
    sessions = sorted(before)
    seen = preview(registry.db, registry.policy, change, sessions)
    real = copy.deepcopy(registry)
    for function, keys, operating in apply:
        ok(call(real, function, ADMIN, keys, operating))
    after = pairs(real, initiators)
    assert set(seen.added) == after - before
    assert set(seen.removed) == before - after
    assert (seen.added_count, seen.removed_count) == (len(after - before), len(before - after))
    assert set(seen.sessions_losing_access) == before - after


def test_preview_matches_the_real_change() -> None:
    registry = new_registry()
    standard_setup(registry)
    ok(register(registry, I3, "host3", node(I3, NodeType.INITIATOR), portal("10.0.0.3", 1)))
    dd1 = dd(registry, "prod", I1, T1)
    dd2 = dd(registry, "lab", I2, T2)
    sets = dd_set(registry, "lab-set", True, dd2)
    name = Tag.DD_MEMBER_ISCSI_NAME
    check_preview(  # a new DD takes i3 and t2 out of the default DD
        registry,
        ProposedChange(members_added={NEW_DD: {I3, T2}}),
        [(FunctionId.DD_REG, [], [a(Tag.DD_SYMBOLIC_NAME, "new"), a(name, I3), a(name, T2)])],
    )
    check_preview(
        registry,
        ProposedChange(members_added={dd1: {I2}}),
        [(FunctionId.DD_REG, [a(Tag.DD_ID, dd1)], [a(name, I2)])],
    )
    check_preview(  # t1 leaves its only DD: back in the default DD with i3
        registry,
        ProposedChange(members_removed={dd1: {T1}}),
        [(FunctionId.DD_DEREG, [a(Tag.DD_ID, dd1)], [a(name, T1)])],
    )
    check_preview(
        registry,
        ProposedChange(dds_deleted={dd2}),
        [(FunctionId.DD_DEREG, [a(Tag.DD_ID, dd2)], [])],
    )
    check_preview(  # disabling the set disables dd2
        registry,
        ProposedChange(set_enabled={sets: False}),
        [(FunctionId.DDS_REG, [a(Tag.DD_SET_ID, sets)], [a(Tag.DD_SET_STATUS, 0)])],
    )


def test_preview_of_disabling_then_deleting_a_set() -> None:
    registry = new_registry()
    standard_setup(registry)
    dd2 = dd(registry, "lab", I2, T2)
    sets = dd_set(registry, "lab-set", False, dd2)
    # Deleting the only (disabled) set leaves dd2 in no set: enabled again.
    check_preview(
        registry,
        ProposedChange(sets_deleted={sets}),
        [(FunctionId.DDS_DEREG, [a(Tag.DD_SET_ID, sets)], [])],
    )


def test_preview_of_a_new_disabled_set_disables_its_dds() -> None:
    registry = new_registry()
    standard_setup(registry)
    dd2 = dd(registry, "lab", I2, T2)
    operating = [a(Tag.DD_SET_SYMBOLIC_NAME, "off"), a(Tag.DD_SET_STATUS, 0), a(Tag.DD_ID, dd2)]
    check_preview(
        registry,
        ProposedChange(set_enabled={NEW_DD: False}, set_members_added={NEW_DD: {dd2}}),
        [(FunctionId.DDS_REG, [], operating)],
    )


def test_preview_lists_are_capped_but_counted() -> None:
    registry = new_registry()
    standard_setup(registry)
    for n in range(30):
        ok(register(registry, iqn(f"x{n}"), f"e{n}", node(iqn(f"x{n}"))))
    seen = preview(
        registry.db, registry.policy, ProposedChange(members_added={NEW_DD: {I1}}), (), 5
    )
    assert len(seen.removed) == 5 and seen.removed_count == 32  # x0..x29, t1, t2

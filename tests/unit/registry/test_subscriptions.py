"""SCNReg, SCNDereg, SCNEvent: the SCN Bitmap as a node attribute, and every refusal."""

import pytest

from isns_server.isnsp.constants import FunctionId, NodeType, ScnBitmap, Status, Tag
from isns_server.isnsp.messages import Attribute, PortNumber
from isns_server.registry import Registry

from .builders import ADMIN, a, call, iqn, new_registry, ok, portal, register, status

I1, I2, T1 = iqn("i1"), iqn("i2"), iqn("t1")
EVENTS = ScnBitmap.OBJECT_ADDED | ScnBitmap.OBJECT_REMOVED | ScnBitmap.OBJECT_UPDATED


def scn_port(port: int = 9000) -> Attribute:
    return a(Tag.SCN_PORT, PortNumber(port, udp=True))


def setup() -> Registry:
    """i1 (host1) and i2 (host2) with SCN ports, t1 (stor1) without."""
    registry = new_registry()
    initiator = (a(Tag.ISCSI_NAME, I1), a(Tag.ISCSI_NODE_TYPE, int(NodeType.INITIATOR)))
    ok(register(registry, I1, "host1", portal("127.0.0.1", 1, scn_port()), initiator))
    i2 = (a(Tag.ISCSI_NAME, I2), a(Tag.ISCSI_NODE_TYPE, int(NodeType.INITIATOR)))
    ok(register(registry, I2, "host2", portal("127.0.0.2", 1, scn_port()), i2))
    target = (a(Tag.ISCSI_NAME, T1), a(Tag.ISCSI_NODE_TYPE, int(NodeType.TARGET)))
    ok(register(registry, T1, "stor1", portal("10.0.0.1", 3260), target))
    return registry


def scn_reg(registry: Registry, source: str, node: str, bitmap: int | None) -> Status:
    operating = () if bitmap is None else (a(Tag.ISCSI_SCN_BITMAP, bitmap),)
    return status(call(registry, FunctionId.SCN_REG, source, [a(Tag.ISCSI_NAME, node)], operating))


def test_registration_sets_the_bitmap_and_dirties_the_entity() -> None:
    registry = setup()
    outcome = call(
        registry, FunctionId.SCN_REG, I1, [a(Tag.ISCSI_NAME, I1)], [a(Tag.ISCSI_SCN_BITMAP, 0x1C)]
    )
    response = ok(outcome)
    assert response.function == FunctionId.SCN_REG_RSP and response.attributes == ()
    assert registry.db.nodes[I1].scn_bitmap == 0x1C
    assert outcome.dirty == {("entity", "host1")}
    assert I1 in registry.db.subscribers


def test_deregistration_clears_it_and_an_unknown_node_is_no_error() -> None:
    registry = setup()
    assert scn_reg(registry, I1, I1, EVENTS) == Status.SUCCESSFUL
    outcome = call(registry, FunctionId.SCN_DEREG, I1, [a(Tag.ISCSI_NAME, I1)])
    ok(outcome)
    assert registry.db.nodes[I1].scn_bitmap is None and I1 not in registry.db.subscribers
    assert outcome.dirty == {("entity", "host1")}
    ok(call(registry, FunctionId.SCN_DEREG, I1, [a(Tag.ISCSI_NAME, iqn("nobody"))]))


def test_the_bitmap_survives_a_restart() -> None:
    registry = setup()
    scn_reg(registry, I1, I1, EVENTS)
    records = [(ref, registry.export_record(ref)) for ref in [("entity", "host1")]]
    restored = Registry.restore([(r, rec) for r, rec in records if rec], registry.policy)
    assert restored.db.nodes[I1].scn_bitmap == EVENTS
    assert I1 in restored.db.subscribers


def test_the_bitmap_may_come_with_the_node_registration() -> None:
    registry = new_registry()
    node = (a(Tag.ISCSI_NAME, I1), a(Tag.ISCSI_SCN_BITMAP, int(EVENTS)))
    ok(register(registry, I1, "host1", portal("127.0.0.1", 1, scn_port()), node))
    assert I1 in registry.db.subscribers


@pytest.mark.parametrize(
    ("source", "node", "bitmap", "expected"),
    [
        (I1, I1, 0, Status.SCN_REGISTRATION_REJECTED),  # no event asked for
        (I1, I1, ScnBitmap.TARGET_AND_SELF_ONLY, Status.SCN_REGISTRATION_REJECTED),
        (I1, I1, 0x08000000, Status.SCN_REGISTRATION_REJECTED),  # bits counted from the MSb
        (I1, I1, None, Status.SCN_REGISTRATION_REJECTED),  # no bitmap
        (I1, I1, EVENTS | ScnBitmap.MANAGEMENT_REGISTRATION, Status.SOURCE_UNAUTHORIZED),
        (I1, I2, EVENTS, Status.SOURCE_UNAUTHORIZED),  # another entity's node
        (T1, T1, EVENTS, Status.SCN_REGISTRATION_REJECTED),  # no portal has an SCN Port
        (I1, iqn("nobody"), EVENTS, Status.NO_SUCH_ENTRY),
        (iqn("stranger"), I1, EVENTS, Status.SOURCE_UNKNOWN),
    ],
)
def test_refusals(source: str, node: str, bitmap: int | None, expected: Status) -> None:
    registry = setup()
    assert scn_reg(registry, source, node, bitmap) == expected
    assert registry.db.nodes[I1].scn_bitmap is None


@pytest.mark.parametrize(
    ("keys", "operating", "expected"),
    [
        ((), (a(Tag.ISCSI_SCN_BITMAP, 4),), Status.MESSAGE_FORMAT_ERROR),
        ((a(Tag.ISCSI_NAME),), (a(Tag.ISCSI_SCN_BITMAP, 4),), Status.MESSAGE_FORMAT_ERROR),
        ((a(Tag.ENTITY_IDENTIFIER, "host1"),), (), Status.MESSAGE_FORMAT_ERROR),
        ((a(Tag.FC_PORT_NAME_WWPN, 1),), (), Status.ATTRIBUTE_NOT_IMPLEMENTED),
        ((a(Tag.ISCSI_NAME, I1),), (a(Tag.ISCSI_SCN_BITMAP),), Status.SCN_REGISTRATION_REJECTED),
        ((a(Tag.ISCSI_NAME, I1),), (a(Tag.IFCP_SCN_BITMAP, 4),), Status.ATTRIBUTE_NOT_IMPLEMENTED),
        (
            (a(Tag.ISCSI_NAME, I1),),
            (a(Tag.ISCSI_SCN_BITMAP, 4), a(Tag.ISCSI_SCN_BITMAP, 8)),
            Status.SCN_REGISTRATION_REJECTED,
        ),
    ],
)
def test_malformed_registrations(
    keys: tuple[Attribute, ...], operating: tuple[Attribute, ...], expected: Status
) -> None:
    registry = setup()
    assert status(call(registry, FunctionId.SCN_REG, I1, keys, operating)) == expected


def test_control_nodes_may_register_for_management_scns() -> None:
    registry = setup()
    control = (a(Tag.ISCSI_NAME, ADMIN), a(Tag.ISCSI_NODE_TYPE, int(NodeType.CONTROL)))
    ok(register(registry, ADMIN, "admin", portal("127.0.0.9", 1, scn_port()), control))
    bitmap = EVENTS | ScnBitmap.MANAGEMENT_REGISTRATION | ScnBitmap.DD_MEMBER_ADDED
    assert scn_reg(registry, ADMIN, ADMIN, bitmap) == Status.SUCCESSFUL
    # ... and register another entity's node for regular SCNs.
    assert scn_reg(registry, ADMIN, I2, EVENTS) == Status.SUCCESSFUL


def test_scn_event_is_forwarded_not_applied() -> None:
    registry = setup()
    scn_reg(registry, I2, I2, EVENTS)
    outcome = call(
        registry,
        FunctionId.SCN_EVENT,
        I1,
        [a(Tag.ISCSI_NAME, I1)],
        [a(Tag.ISCSI_SCN_BITMAP, int(ScnBitmap.OBJECT_UPDATED))],
    )
    assert ok(outcome).function == FunctionId.SCN_EVENT_RSP
    assert not outcome.dirty and not outcome.changes
    (note,) = outcome.notifications
    assert note.recipient == I2
    attrs = note.message.attributes
    assert attrs[2:] == (
        a(Tag.ISCSI_SCN_BITMAP, int(ScnBitmap.OBJECT_UPDATED)),
        a(Tag.ISCSI_NAME, I1),
    )


@pytest.mark.parametrize(
    ("source", "keys", "bitmap", "expected"),
    [
        (I1, (a(Tag.ISCSI_NAME, I1),), 0, Status.SCN_EVENT_REJECTED),
        (I1, (a(Tag.ISCSI_NAME, I1),), ScnBitmap.DD_MEMBER_ADDED, Status.SCN_EVENT_REJECTED),
        (I1, (a(Tag.ISCSI_NAME, I1),), 0x100, Status.SCN_EVENT_REJECTED),
        (I1, (a(Tag.ISCSI_NAME, I1),), None, Status.SCN_EVENT_REJECTED),
        (I1, (a(Tag.ISCSI_NAME, I2),), ScnBitmap.OBJECT_UPDATED, Status.SOURCE_UNAUTHORIZED),
        (I1, (a(Tag.ISCSI_NAME, iqn("x")),), ScnBitmap.OBJECT_UPDATED, Status.NO_SUCH_ENTRY),
        (I1, (), ScnBitmap.OBJECT_UPDATED, Status.MESSAGE_FORMAT_ERROR),
        (iqn("stranger"), (a(Tag.ISCSI_NAME, I1),), 4, Status.SOURCE_UNKNOWN),
    ],
)
def test_scn_event_refusals(
    source: str, keys: tuple[Attribute, ...], bitmap: int | None, expected: Status
) -> None:
    registry = setup()
    operating = () if bitmap is None else (a(Tag.ISCSI_SCN_BITMAP, int(bitmap)),)
    outcome = call(registry, FunctionId.SCN_EVENT, source, keys, operating)
    assert status(outcome) == expected and not outcome.notifications


def test_a_zoned_out_node_is_no_such_entry() -> None:
    registry = setup()
    ok(
        call(
            registry,
            FunctionId.DD_REG,
            ADMIN,
            [],
            [a(Tag.DD_SYMBOLIC_NAME, "dd"), a(Tag.DD_MEMBER_ISCSI_NAME, I2)],
        )
    )
    # i1 (default DD) no longer sees i2 (in a DD): as if it did not exist.
    assert scn_reg(registry, I1, I2, EVENTS) == Status.NO_SUCH_ENTRY


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ((), Status.MESSAGE_FORMAT_ERROR),
        ((a(Tag.ISCSI_NAME, I1), a(Tag.ISCSI_NAME, I2)), Status.MESSAGE_FORMAT_ERROR),
        ((a(Tag.ISCSI_NAME, I2),), Status.SOURCE_UNAUTHORIZED),
        ((a(Tag.FC_PORT_NAME_WWPN, 1),), Status.ATTRIBUTE_NOT_IMPLEMENTED),
    ],
)
def test_malformed_deregistrations(keys: tuple[Attribute, ...], expected: Status) -> None:
    registry = setup()
    assert scn_reg(registry, I2, I2, EVENTS) == Status.SUCCESSFUL
    assert status(call(registry, FunctionId.SCN_DEREG, I1, keys)) == expected
    assert registry.db.nodes[I2].scn_bitmap == EVENTS

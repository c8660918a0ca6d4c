"""Who is notified of what: regular SCNs follow zoning, management SCNs see everything, a
zoning change reaches exactly the nodes that gain or lose sight of another."""

from ipaddress import IPv4Address

from isns_server.isnsp.constants import DDSetStatus, Flags, FunctionId, NodeType, ScnBitmap, Tag
from isns_server.isnsp.messages import Attribute, PortNumber
from isns_server.registry import Notification, Outcome, Registry

from .builders import ADMIN, NOW, a, call, eid, iqn, new_registry, ok, portal, register

I1, I2, I3, T1, T2 = iqn("i1"), iqn("i2"), iqn("i3"), iqn("t1"), iqn("t2")
ADDED, REMOVED, UPDATED = ScnBitmap.OBJECT_ADDED, ScnBitmap.OBJECT_REMOVED, ScnBitmap.OBJECT_UPDATED
MGMT = ScnBitmap.MANAGEMENT_REGISTRATION
EVENTS = ADDED | REMOVED | UPDATED


def node(name: str, kind: NodeType) -> tuple[Attribute, ...]:
    return (a(Tag.ISCSI_NAME, name), a(Tag.ISCSI_NODE_TYPE, int(kind)))


def subscriber(
    registry: Registry,
    name: str,
    host: int,
    bitmap: int = EVENTS,
    kind: NodeType = NodeType.INITIATOR,
) -> None:
    """`name` in entity host<host> with an SCN port on 127.0.0.<host>:9000/udp, subscribed."""
    scn = a(Tag.SCN_PORT, PortNumber(9000, udp=True))
    ok(
        register(
            registry, name, f"host{host}", portal(f"127.0.0.{host}", 3260, scn), node(name, kind)
        )
    )
    keys, operating = [a(Tag.ISCSI_NAME, name)], [a(Tag.ISCSI_SCN_BITMAP, int(bitmap))]
    ok(call(registry, FunctionId.SCN_REG, name, keys, operating))


def target(registry: Registry, name: str, entity: str = "stor1", ip: str = "10.0.0.1") -> Outcome:
    return register(registry, name, entity, portal(ip, 3260), node(name, NodeType.TARGET))


def dd_reg(registry: Registry, dd: str, *members: str, dd_id: int | None = None) -> Outcome:
    keys = [] if dd_id is None else [a(Tag.DD_ID, dd_id)]
    operating = [a(Tag.DD_SYMBOLIC_NAME, dd)] + [a(Tag.DD_MEMBER_ISCSI_NAME, m) for m in members]
    return call(registry, FunctionId.DD_REG, ADMIN, keys, operating)


def events(outcome: Outcome) -> dict[str, list[tuple[int, tuple[object, ...]]]]:
    """Per recipient: (SCN bitmap, source attribute values) of each notification entry."""
    found: dict[str, list[tuple[int, tuple[object, ...]]]] = {}
    for note in outcome.notifications:
        attrs = note.message.attributes[2:]
        entries = found.setdefault(note.recipient, [])
        for attr in attrs:
            if attr.tag == Tag.ISCSI_SCN_BITMAP:
                assert isinstance(attr.value, int)
                entries.append((attr.value, ()))
            else:
                bitmap, values = entries[-1]
                entries[-1] = (bitmap, (*values, attr.value))
    return found


def test_the_scn_message_as_rfc_4171_lays_it_out() -> None:
    registry = new_registry()
    subscriber(registry, I1, 1)
    outcome = target(registry, T1)
    (note,) = outcome.notifications
    assert note == Notification(
        I1,
        ((IPv4Address("127.0.0.1"), PortNumber(9000, udp=True)),),
        note.message,
    )
    message = note.message
    assert (message.function, message.xid, message.flags) == (FunctionId.SCN, 0, Flags.SERVER)
    assert message.attributes == (
        a(Tag.ISCSI_NAME, I1),  # Destination
        a(Tag.TIMESTAMP, int(NOW)),
        a(Tag.ISCSI_SCN_BITMAP, int(ADDED)),
        a(Tag.ISCSI_NAME, T1),  # Source: the node the event is about
    )


def test_added_updated_removed_as_the_net_effect_of_each_message() -> None:
    registry = new_registry()
    subscriber(registry, I1, 1)
    assert events(target(registry, T1)) == {I1: [(ADDED, (T1,))]}
    # A new portal: the node is still there, reachable another way.
    more = register(registry, T1, "stor1", portal("10.0.0.2", 3260))
    assert events(more) == {I1: [(UPDATED, (T1,))]}
    # Replace: deregistered and registered again in one message is an update.
    again = register(
        registry, T1, "stor1", portal("10.0.0.1", 3260), node(T1, NodeType.TARGET), replace=True
    )
    assert events(again) == {I1: [(UPDATED, (T1,))]}
    gone = call(registry, FunctionId.DEV_DEREG, T1, [], [eid("stor1")])
    assert events(gone) == {I1: [(REMOVED, (T1,))]}


def test_no_subscribers_no_work() -> None:
    registry = new_registry()
    assert target(registry, T1).notifications == ()


def test_regular_scns_follow_zoning() -> None:
    registry = new_registry()
    subscriber(registry, I1, 1)
    subscriber(registry, I2, 2)
    ok(dd_reg(registry, "dd-a", I1, T1))
    outcome = target(registry, T1)
    assert events(outcome) == {I1: [(ADDED, (T1,))]}  # i2 is in the default DD


def test_a_zoning_change_reaches_exactly_who_gains_or_loses_sight() -> None:
    registry = new_registry()
    subscriber(registry, I1, 1)
    subscriber(registry, I2, 2)
    subscriber(registry, I3, 3)
    ok(dd_reg(registry, "dd-a", I1))
    ok(dd_reg(registry, "dd-b", I3))
    ok(target(registry, T1))  # in the default DD with i2
    added = dd_reg(registry, "dd-a", T1, dd_id=1)
    # i1 now sees t1; i2 lost it (t1 left the default DD); i3 is untouched.
    assert events(added) == {I1: [(ADDED, (T1,))], I2: [(REMOVED, (T1,))]}
    # A second DD holding both changes nobody's view.
    assert events(dd_reg(registry, "dd-c", I1, T1)).get(I1) is None
    removed = call(registry, FunctionId.DD_DEREG, ADMIN, [a(Tag.DD_ID, 1)], [])
    assert events(removed) == {}  # dd-c still links them
    removed = call(registry, FunctionId.DD_DEREG, ADMIN, [a(Tag.DD_ID, 3)], [])
    # i1 and t1 are in no DD again: back in the default DD, with i2.
    found = {name: sorted(entries) for name, entries in events(removed).items()}
    assert found == {I1: [(ADDED, (I2,))], I2: [(ADDED, (I1,)), (ADDED, (T1,))]}


def test_the_joining_node_learns_what_it_now_sees_too() -> None:
    registry = new_registry()
    ok(target(registry, T1))
    ok(target(registry, T2, "stor2", "10.0.0.2"))
    subscriber(registry, I1, 1)
    ok(dd_reg(registry, "dd-a", T1))
    outcome = dd_reg(registry, "dd-a", I1, dd_id=1)
    # i1 left the default DD (losing t2) and joined t1's DD.
    assert sorted(events(outcome)[I1]) == sorted([(ADDED, (T1,)), (REMOVED, (T2,))])


def test_disabling_a_dd_set_hides_its_dds() -> None:
    registry = new_registry()
    subscriber(registry, I1, 1)
    ok(target(registry, T1))
    ok(dd_reg(registry, "dd-a", I1, T1))
    keys: list[Attribute] = []
    status = a(Tag.DD_SET_STATUS, int(DDSetStatus.DISABLED))
    disabled = call(registry, FunctionId.DDS_REG, ADMIN, keys, [status, a(Tag.DD_ID, 1)])
    assert events(disabled) == {I1: [(REMOVED, (T1,))]}
    enable = [a(Tag.DD_SET_STATUS, int(DDSetStatus.ENABLED))]
    enabled = call(registry, FunctionId.DDS_REG, ADMIN, [a(Tag.DD_SET_ID, 1)], enable)
    assert events(enabled) == {I1: [(ADDED, (T1,))]}


def test_management_registrations_hear_everything_with_the_dd_ids() -> None:
    registry = new_registry()
    everything = EVENTS | MGMT | ScnBitmap.DD_MEMBER_ADDED | ScnBitmap.DD_MEMBER_REMOVED
    subscriber(registry, ADMIN, 9, everything, NodeType.CONTROL)
    subscriber(registry, I1, 1)
    ok(dd_reg(registry, "dd-a", I1))
    outcome = target(registry, T1)  # i1 does not see it; the control node does
    assert events(outcome) == {ADMIN: [(ADDED | MGMT, (T1,))]}
    outcome = dd_reg(registry, "dd-a", T1, dd_id=1)
    assert events(outcome)[ADMIN] == [(ScnBitmap.DD_MEMBER_ADDED | MGMT, (T1, 1))]
    assert events(outcome)[I1] == [(ADDED, (T1,))]  # no DD bits in regular SCNs
    created = dd_reg(registry, "dd-b")
    assert events(created) == {ADMIN: [(ADDED | MGMT, (2,))]}
    in_set = call(registry, FunctionId.DDS_REG, ADMIN, [], [a(Tag.DD_ID, 2)])
    assert events(in_set) == {
        ADMIN: [(ADDED | MGMT, (1,)), (ScnBitmap.DD_MEMBER_ADDED | MGMT, (2, 1))]
    }


def test_control_nodes_without_management_bit_see_all_nodes_but_no_dds() -> None:
    registry = new_registry()
    subscriber(registry, ADMIN, 9, EVENTS, NodeType.CONTROL)
    subscriber(registry, I1, 1)
    ok(dd_reg(registry, "dd-a", I1))
    assert events(target(registry, T1)) == {ADMIN: [(ADDED, (T1,))]}
    assert events(dd_reg(registry, "dd-b")) == {}


def test_target_and_self_only() -> None:
    registry = new_registry()
    subscriber(registry, I1, 1, EVENTS | ScnBitmap.TARGET_AND_SELF_ONLY)
    subscriber(registry, I2, 2)
    assert events(target(registry, T1)) == {I1: [(ADDED, (T1,))], I2: [(ADDED, (T1,))]}
    initiator = register(registry, I3, "host3", node(I3, NodeType.INITIATOR))
    assert events(initiator) == {I2: [(ADDED, (I3,))]}
    # Its own entity changed: "self" passes the filter.
    own = register(registry, I1, "host1", portal("127.0.0.1", 3261))
    assert events(own)[I1] == [(UPDATED, (I1,))]


def test_initiator_and_self_only_and_event_bits() -> None:
    registry = new_registry()
    subscriber(registry, I1, 1, ADDED | ScnBitmap.INITIATOR_AND_SELF_ONLY)
    assert events(target(registry, T1)) == {}
    assert events(register(registry, I2, "host2", node(I2, NodeType.INITIATOR))) == {
        I1: [(ADDED, (I2,))]
    }
    assert events(call(registry, FunctionId.DEV_DEREG, I2, [], [eid("host2")])) == {}


def test_no_scn_port_no_notification() -> None:
    registry = new_registry()
    subscriber(registry, I1, 1)
    # i1's only portal (the one with the SCN port) goes; i1 stays registered.
    ok(register(registry, I1, "host1", node(I1, NodeType.INITIATOR), replace=True))
    assert registry.db.nodes[I1].scn_bitmap is None  # a new node: a new registration
    assert target(registry, T1).notifications == ()


def test_a_big_change_is_split_into_several_scns() -> None:
    registry = new_registry()
    subscriber(registry, I1, 1)
    names = [iqn(f"t{n:03}") for n in range(120)]
    objects = [node(name, NodeType.TARGET) for name in names]
    outcome = register(registry, names[0], "big", portal("10.0.0.1", 3260), *objects)
    assert [len(n.message.attributes) for n in outcome.notifications] == [102, 102, 42]
    assert sum(len(entries) for entries in events(outcome).values()) == 120


def test_a_refresh_that_changes_nothing_is_no_news() -> None:
    registry = new_registry()
    subscriber(registry, I1, 1)
    ok(target(registry, T1))
    assert target(registry, T1).notifications == ()
    alias = register(registry, T1, "stor1", (a(Tag.ISCSI_NAME, T1), a(Tag.ISCSI_ALIAS, "disk")))
    assert events(alias) == {I1: [(UPDATED, (T1,))]}


def test_a_portal_joining_a_dd_updates_what_members_see() -> None:
    registry = new_registry()
    subscriber(registry, I1, 1)
    ok(target(registry, T1))
    ok(dd_reg(registry, "dd-a", I1, T1))
    member = [
        a(Tag.DD_MEMBER_PORTAL_IP_ADDR, IPv4Address("10.0.0.1")),
        a(Tag.DD_MEMBER_PORTAL_TCP_UDP_PORT, PortNumber(3260)),
    ]
    outcome = call(registry, FunctionId.DD_REG, ADMIN, [a(Tag.DD_ID, 1)], member)
    assert events(outcome) == {I1: [(UPDATED, (T1,))]}

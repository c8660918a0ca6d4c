"""Registry.apply: a replica takes another replica's committed records one change at a
time and ends up holding exactly what that replica holds (no etcd, no sockets)."""

from isns_server.isnsp.constants import FunctionId, NodeType, Tag
from isns_server.isnsp.messages import IPAddress, Message
from isns_server.registry import COUNTERS, Outcome, Ref, Registry

from ..registry.builders import (
    ADMIN,
    NOW,
    a,
    call,
    iqn,
    names_listed,
    new_registry,
    node,
    portal,
    register,
    standard_setup,
)


def snapshot(registry: Registry) -> dict[Ref, object]:
    db = registry.db
    refs: list[Ref] = [COUNTERS]
    refs += [("entity", eid) for eid in db.entities]
    refs += [("dd", dd_id) for dd_id in db.dds]
    refs += [("dds", dds_id) for dds_id in db.ddss]
    return {ref: registry.export_record(ref) for ref in refs}


class Pair:
    """Replica `one` takes requests; `two` applies what each one commits."""

    def __init__(self) -> None:
        self.one = new_registry()
        self.two = new_registry()

    def replicate(self, outcome: Outcome) -> Outcome:
        records = [(ref, self.one.export_record(ref)) for ref in outcome.dirty]
        self.two.apply(records, NOW)
        return outcome

    def check(self) -> None:
        assert snapshot(self.two) == snapshot(self.one)
        assert names_listed(self.two, ADMIN) == names_listed(self.one, ADMIN)


def test_registrations_and_deregistrations_arrive_as_they_were_made() -> None:
    pair = Pair()
    original = pair.one.handle

    def handle(message: Message, now: float, address: IPAddress | None = None) -> Outcome:
        return pair.replicate(original(message, now, address))

    pair.one.handle = handle  # type: ignore[method-assign]
    standard_setup(pair.one)
    pair.check()
    register(pair.one, iqn("t3"), "stor1", node(iqn("t3")))
    call(pair.one, FunctionId.DEV_DEREG, ADMIN, (), [a(Tag.ISCSI_NAME, iqn("t1"))])
    pair.check()
    call(pair.one, FunctionId.DEV_DEREG, ADMIN, (), [a(Tag.ENTITY_IDENTIFIER, "host2")])
    pair.check()
    assert iqn("i2") not in pair.two.db.nodes


def test_domains_and_sets_keep_their_members_when_replaced() -> None:
    pair = Pair()
    for outcome in (  # every one Successful: `check` compares with what `one` holds
        register(pair.one, iqn("t1"), "stor1", portal("10.0.0.1", 3260), node(iqn("t1"))),
        register(pair.one, iqn("i1"), "host1", node(iqn("i1"), NodeType.INITIATOR)),
        call(
            pair.one,
            FunctionId.DD_REG,
            ADMIN,
            (),
            [a(Tag.DD_SYMBOLIC_NAME, "lab"), a(Tag.DD_MEMBER_ISCSI_NAME, iqn("t1"))],
        ),
    ):
        pair.replicate(outcome)
    dd_id = pair.one.db.dd_names["lab"]
    pair.replicate(
        call(
            pair.one,
            FunctionId.DDS_REG,
            ADMIN,
            (),
            [a(Tag.DD_SET_SYMBOLIC_NAME, "set"), a(Tag.DD_ID, dd_id)],
        )
    )
    pair.check()
    # The DD alone changes (a new member): it stays in its DD set on the other side.
    pair.replicate(
        call(
            pair.one,
            FunctionId.DD_REG,
            ADMIN,
            [a(Tag.DD_ID, dd_id)],
            [a(Tag.DD_MEMBER_ISCSI_NAME, iqn("i1"))],
        )
    )
    pair.check()
    assert pair.two.db.dd_sets[dd_id]
    pair.replicate(call(pair.one, FunctionId.DD_DEREG, ADMIN, [a(Tag.DD_ID, dd_id)]))
    pair.check()


def test_an_unknown_kind_and_a_gone_object_change_nothing() -> None:
    pair = Pair()
    pair.replicate(register(pair.one, iqn("t1"), "stor1", node(iqn("t1"))))
    before = snapshot(pair.two)
    pair.two.apply([(("audit", 7), {"x": 1}), (("entity", "never-there"), None)], NOW)
    assert snapshot(pair.two) == before

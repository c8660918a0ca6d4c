"""Request builders and checks shared by the registry tests."""

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv6Address, ip_address
from itertools import count

from isns_server.isnsp.constants import Flags, FunctionId, NodeType, Status, Tag
from isns_server.isnsp.messages import Attribute, AttrValue, Message, PortNumber, request
from isns_server.registry import Outcome, Policy, Registry

NOW = 1_700_000_000.0
ADMIN = "iqn.2026-11.org.example.test:admin"
_xids = count(1)


def iqn(name: str) -> str:
    return f"iqn.2026-11.org.example.test:{name}"


def new_registry(default_dd: bool = True, control: Iterable[str] = (ADMIN,)) -> Registry:
    return Registry(Policy(default_dd=default_dd, control_nodes=frozenset(control)))


def call(
    registry: Registry,
    function: FunctionId,
    source: str | None,
    keys: Iterable[Attribute] = (),
    operating: Iterable[Attribute] = (),
    flags: Flags = Flags.NONE,
    now: float = NOW,
) -> Outcome:
    source_attr = None if source is None else Attribute(Tag.ISCSI_NAME, source)
    message = request(function, next(_xids), source_attr, tuple(keys), tuple(operating), flags)
    return registry.handle(message, now)


def status(outcome: Outcome) -> Status:
    assert outcome.response.status is not None
    return Status(outcome.response.status)


def ok(outcome: Outcome) -> Message:
    assert status(outcome) == Status.SUCCESSFUL, status(outcome)
    return outcome.response


def keys_of(outcome: Outcome) -> tuple[Attribute, ...]:
    return outcome.response.split()[1]


def operating_of(outcome: Outcome) -> tuple[Attribute, ...]:
    return outcome.response.split()[2]


def values(attrs: Iterable[Attribute], tag: int) -> list[AttrValue]:
    return [a.value for a in attrs if a.tag == tag]


def a(tag: int, value: AttrValue = None) -> Attribute:
    return Attribute(tag, value)


def eid(value: str | None) -> Attribute:
    return Attribute(Tag.ENTITY_IDENTIFIER, value)


def portal(address: str, port: int, *extra: Attribute) -> tuple[Attribute, ...]:
    ip: IPv4Address | IPv6Address = ip_address(address)
    return (
        Attribute(Tag.PORTAL_IP_ADDRESS, ip),
        Attribute(Tag.PORTAL_TCP_UDP_PORT, PortNumber(port)),
        *extra,
    )


def node(name: str, node_type: int = NodeType.TARGET, *extra: Attribute) -> tuple[Attribute, ...]:
    return (Attribute(Tag.ISCSI_NAME, name), Attribute(Tag.ISCSI_NODE_TYPE, int(node_type)), *extra)


def register(
    registry: Registry,
    source: str,
    entity: str | None,
    *objects: tuple[Attribute, ...],
    replace: bool = False,
    now: float = NOW,
) -> Outcome:
    """DevAttrReg keyed by EID `entity` (no key when None), objects as operating attrs."""
    keys = () if entity is None else (eid(entity),)
    operating = tuple(attr for obj in objects for attr in obj)
    flags = Flags.REPLACE if replace else Flags.NONE
    return call(registry, FunctionId.DEV_ATTR_REG, source, keys, operating, flags, now)


def query(registry: Registry, source: str, keys: Iterable[Attribute], *wanted: int) -> Outcome:
    return call(registry, FunctionId.DEV_ATTR_QRY, source, keys, [Attribute(t) for t in wanted])


def names_listed(registry: Registry, source: str) -> list[str]:
    """Every iSCSI name a DevGetNext walk over nodes returns to `source`."""
    found: list[str] = []
    key: AttrValue = None
    while True:
        outcome = call(registry, FunctionId.DEV_GET_NEXT, source, [a(Tag.ISCSI_NAME, key)])
        if status(outcome) == Status.NO_SUCH_ENTRY:
            return found
        ok(outcome)
        (key_attr,) = keys_of(outcome)
        key = key_attr.value
        assert isinstance(key, str)
        found.append(key)


def standard_setup(registry: Registry) -> None:
    """Entity stor1: targets t1, t2 on portals 10.0.0.1:3260 and :3261; entity host1:
    initiator i1; entity host2: initiator i2."""
    ok(register(registry, iqn("t1"), "stor1", portal("10.0.0.1", 3260), node(iqn("t1"))))
    ok(register(registry, iqn("t2"), "stor1", portal("10.0.0.1", 3261), node(iqn("t2"))))
    ok(register(registry, iqn("i1"), "host1", node(iqn("i1"), NodeType.INITIATOR)))
    ok(register(registry, iqn("i2"), "host2", node(iqn("i2"), NodeType.INITIATOR)))

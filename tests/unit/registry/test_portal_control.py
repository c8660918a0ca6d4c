"""The portal's zoning checks follow isns.control_networks: a Control Node's name sees the
whole fabric only from those networks, elsewhere only what its DDs show (issue 13)."""

from ipaddress import IPv4Address, IPv6Address

from isns_server.isnsp.constants import FunctionId, Tag

from .builders import ADMIN, a, call, ok
from .test_zoning import T1, T2, zoned

OUTSIDE = IPv4Address("192.0.2.7")  # default control_networks: loopback only


def test_a_control_node_name_from_outside_sees_only_its_dds() -> None:
    registry = zoned(default_dd=False)
    ok(
        call(
            registry,
            FunctionId.DD_REG,
            ADMIN,
            (a(Tag.DD_ID, 1),),
            [a(Tag.DD_MEMBER_ISCSI_NAME, ADMIN)],
        )
    )
    assert [t.name for t in registry.visible_targets(ADMIN, OUTSIDE)] == [T1]
    assert registry.may_see(ADMIN, T1, OUTSIDE)
    assert not registry.may_see(ADMIN, T2, OUTSIDE)


def test_a_control_node_name_from_inside_sees_everything() -> None:
    registry = zoned(default_dd=False)
    for inside in (IPv4Address("127.0.0.1"), IPv6Address("::1"), None):  # None: in-process
        assert [t.name for t in registry.visible_targets(ADMIN, inside)] == [T1, T2]
        assert registry.may_see(ADMIN, T2, inside)


def test_an_outside_control_node_name_in_no_dd_sees_nothing() -> None:
    registry = zoned(default_dd=False)
    assert registry.visible_targets(ADMIN.upper(), OUTSIDE) == []
    assert not registry.may_see(ADMIN, T1, OUTSIDE)

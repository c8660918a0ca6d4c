"""The bridge's iSNS requests, and its reading of answers built as RFC 4171 lays them out."""

from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address

import pytest

from discovery_agent import registry_queries as queries
from discovery_agent.catalog import Domain, Node, Portal
from discovery_agent.registry_queries import MANAGEMENT_SCNS, RegistryRefusal
from discovery_agent.slp.agent import TargetDeregistration, TargetRegistration
from discovery_agent.slp.attributes import Attribute as SlpAttribute
from isns_server.client import IsnsClientError
from isns_server.isnsp.codec import StreamDecoder, encode_message
from isns_server.isnsp.constants import FunctionId, NodeType, ScnBitmap, Status, Tag
from isns_server.isnsp.messages import (
    Attribute,
    IPAddress,
    Message,
    PortNumber,
    request,
    response,
)

AGENT = "iqn.2026-11.org.example.test:agent"
DISK = "iqn.2026-11.org.example.test:disk1"
V4 = IPv4Address("192.0.2.3")


def answer(to: queries.Request, status: Status, *operating: Attribute) -> Message:
    """The server's answer to `to`, through the wire codec and back."""
    asked = request(to.function, 1, to.source, to.keys, to.operating)
    decoder = StreamDecoder()
    for pdu in encode_message(response(asked, status, to.keys, operating)):
        decoder.receive_data(pdu)
    decoded = decoder.next_message()
    assert decoded is not None
    return decoded


def test_control_node_registration_and_management_scns() -> None:
    registration = queries.control_node_registration(AGENT, IPv4Address("127.0.0.1"), 4567)
    assert registration.replace and registration.keys == (Attribute(Tag.ENTITY_IDENTIFIER, AGENT),)
    operating = dict((a.tag, a.value) for a in registration.operating)
    assert operating[Tag.SCN_PORT] == operating[Tag.PORTAL_TCP_UDP_PORT] == PortNumber(4567)
    assert operating[Tag.ISCSI_NODE_TYPE] == NodeType.CONTROL
    subscription = queries.scn_registration(AGENT)
    assert subscription.function == FunctionId.SCN_REG
    (bitmap,) = subscription.operating
    assert bitmap == Attribute(Tag.ISCSI_SCN_BITMAP, int(MANAGEMENT_SCNS))
    assert MANAGEMENT_SCNS & ScnBitmap.MANAGEMENT_REGISTRATION
    assert not MANAGEMENT_SCNS & (
        ScnBitmap.TARGET_AND_SELF_ONLY | ScnBitmap.INITIATOR_AND_SELF_ONLY
    )


def test_keepalive_reads_the_registration_period_and_notices_being_forgotten() -> None:
    keepalive = queries.keepalive(AGENT)
    ok = answer(keepalive, Status.SUCCESSFUL, Attribute(Tag.REGISTRATION_PERIOD, 600))
    assert queries.registration_period(ok) == 600
    assert queries.registration_period(answer(keepalive, Status.SUCCESSFUL)) == 0
    for gone in (Status.NO_SUCH_ENTRY, Status.SOURCE_UNKNOWN):
        assert queries.registration_period(answer(keepalive, gone)) is None
    with pytest.raises(RegistryRefusal, match="INTERNAL_ERROR"):
        queries.registration_period(answer(keepalive, Status.INTERNAL_ERROR))


def test_walks_step_by_key_and_end_at_no_such_entry() -> None:
    first = queries.node_walk(AGENT, None)
    assert first.keys == (Attribute(Tag.ISCSI_NAME),) and first.function == FunctionId.DEV_GET_NEXT
    step = Message(
        FunctionId.DEV_GET_NEXT_RSP,
        1,
        attributes=(
            Attribute(Tag.ISCSI_NAME, DISK),
            Attribute(Tag.DELIMITER),
            Attribute(Tag.ISCSI_NODE_TYPE, int(NodeType.TARGET)),
        ),
        status=Status.SUCCESSFUL,
    )
    assert queries.walked_node(step) == (DISK, NodeType.TARGET)
    assert queries.node_walk(AGENT, DISK).keys == (Attribute(Tag.ISCSI_NAME, DISK),)
    assert queries.walked_node(answer(first, Status.NO_SUCH_ENTRY)) is None
    domain_step = Message(
        FunctionId.DEV_GET_NEXT_RSP, 1, attributes=(Attribute(Tag.DD_ID, 4),), status=0
    )
    assert queries.walked_domain(domain_step) == Domain(4, "", frozenset())
    with pytest.raises(RegistryRefusal, match="SOURCE_UNAUTHORIZED"):
        queries.walked_domain(answer(queries.domain_walk(AGENT, 4), Status.SOURCE_UNAUTHORIZED))


def portal_group(address: IPAddress, port: PortNumber, tag: int | None) -> list[Attribute]:
    return [
        Attribute(Tag.PG_PORTAL_IP_ADDR, address),
        Attribute(Tag.PG_PORTAL_TCP_UDP_PORT, port),
        Attribute(Tag.PG_TAG, tag),
    ]


def test_a_node_answer_with_its_entity_and_portal_groups() -> None:
    query = queries.node_query(AGENT, DISK)
    tcp, udp = PortNumber(3260), PortNumber(3260, udp=True)
    reply = answer(
        query,
        Status.SUCCESSFUL,
        Attribute(Tag.ISCSI_NAME, DISK),
        Attribute(Tag.ISCSI_NODE_TYPE, int(NodeType.TARGET)),
        Attribute(Tag.ISCSI_ALIAS, "disk one"),
        Attribute(Tag.ENTITY_IDENTIFIER, "stor1"),
        Attribute(Tag.MGMT_IP_ADDRESS, IPv4Address("192.0.2.1")),
        *portal_group(V4, tcp, 1),
        *portal_group(V4, tcp, 1),
        *portal_group(V4, udp, 2),
        *portal_group(V4, PortNumber(3261), None),
        *portal_group(IPv6Address("::c000:204"), tcp, 3),  # open-isns' form of 192.0.2.4
        *portal_group(IPv6Address("::1"), tcp, 4),
    )
    assert queries.queried_node(DISK, reply) == Node(
        DISK,
        NodeType.TARGET,
        entity="stor1",
        alias="disk one",
        management_address=IPv4Address("192.0.2.1"),
        portals=(
            Portal(V4, 3260, 1),  # once; not the UDP one, not the NULL PGT
            Portal(IPv4Address("192.0.2.4"), 3260, 3),
            Portal(IPv6Address("::1"), 3260, 4),
        ),
    )
    assert queries.queried_node(DISK, answer(query, Status.NO_SUCH_ENTRY)) is None


def test_a_dd_is_read_whole_by_devgetnext_then_its_dd_sets() -> None:
    read = queries.domain_read(AGENT, 5)
    assert read.function == FunctionId.DEV_GET_NEXT and read.keys == (Attribute(Tag.DD_ID, 4),)
    members = [Attribute(Tag.DD_MEMBER_ISCSI_NAME, n) for n in (DISK, AGENT)]
    step = Message(
        FunctionId.DEV_GET_NEXT_RSP,
        1,
        attributes=(
            Attribute(Tag.DD_ID, 5),
            Attribute(Tag.DELIMITER),
            Attribute(Tag.DD_ID, 5),
            Attribute(Tag.DD_SYMBOLIC_NAME, "dd-prod"),
            Attribute(Tag.DD_MEMBER_ISCSI_INDEX, 3),
            *members,
        ),
        status=Status.SUCCESSFUL,
    )
    domain = Domain(5, "dd-prod", frozenset({DISK, AGENT}))
    assert queries.read_domain(5, step) == queries.walked_domain(step) == domain
    assert queries.read_domain(4, step) is None  # DD 4 is gone: the walk found DD 5
    assert queries.read_domain(5, answer(read, Status.NO_SUCH_ENTRY)) is None

    sets_query = queries.domain_sets_query(AGENT, 5)

    def in_sets(*statuses: int) -> Domain:
        sets = [
            attribute
            for n, status in enumerate(statuses)
            for attribute in (Attribute(Tag.DD_SET_ID, n + 1), Attribute(Tag.DD_SET_STATUS, status))
        ]
        return queries.with_domain_sets(domain, answer(sets_query, Status.SUCCESSFUL, *sets))

    assert in_sets() == domain  # in no DD set: it zones
    assert in_sets(0, 1) == Domain(5, "dd-prod", domain.members, frozenset({1, 2}), True)
    assert not in_sets(0, 0).enabled  # RFC 4171 6.11.1.3
    assert queries.with_domain_sets(domain, answer(sets_query, Status.NO_SUCH_ENTRY)) == domain


def test_an_answer_without_its_key_is_unusable() -> None:
    keyless = Message(FunctionId.DEV_GET_NEXT_RSP, 1, status=Status.SUCCESSFUL)
    with pytest.raises(IsnsClientError):
        queries.walked_node(keyless)
    with pytest.raises(IsnsClientError):
        queries.walked_domain(keyless)


def test_entity_answer_lists_its_nodes() -> None:
    query = queries.entity_query(AGENT, "stor1")
    names = [Attribute(Tag.ISCSI_NAME, n) for n in (DISK, AGENT)]
    assert queries.entity_nodes("stor1", answer(query, Status.SUCCESSFUL, *names)) == [DISK, AGENT]
    assert queries.entity_nodes("stor1", answer(query, Status.NO_SUCH_ENTRY)) == []


def slp_registration(host: str, portal_group: int | None) -> TargetRegistration:
    return TargetRegistration(
        url=f"service:iscsi:target://{host}:3261/{DISK}",
        iscsi_name=DISK,
        host=host,
        port=3261,
        portal_group=portal_group,
        scopes=("DEFAULT",),
        attributes=(SlpAttribute("alias", ("disk one",)), SlpAttribute("portal-group", (2,))),
        lifetime=300,
        source="10.0.0.5",
    )


def test_an_slp_registration_becomes_the_targets_own_dev_attr_reg() -> None:
    bridged = queries.target_registration(slp_registration("192.0.2.3", 2), V4, None)
    assert bridged is not None
    assert bridged.function == FunctionId.DEV_ATTR_REG and not bridged.replace
    assert bridged.source == Attribute(Tag.ISCSI_NAME, DISK) and bridged.keys == ()
    assert [a.tag for a in bridged.operating] == [
        Tag.ENTITY_IDENTIFIER,
        Tag.ENTITY_PROTOCOL,
        Tag.REGISTRATION_PERIOD,
        Tag.PORTAL_IP_ADDRESS,
        Tag.PORTAL_TCP_UDP_PORT,
        Tag.ISCSI_NAME,
        Tag.ISCSI_NODE_TYPE,
        Tag.ISCSI_ALIAS,
        Tag.PG_TAG,
        Tag.PG_PORTAL_IP_ADDR,
        Tag.PG_PORTAL_TCP_UDP_PORT,
    ]
    values = {a.tag: a.value for a in bridged.operating}
    assert values[Tag.ENTITY_IDENTIFIER] == queries.slp_entity("10.0.0.5") == "slp-sa:10.0.0.5"
    assert values[Tag.REGISTRATION_PERIOD] == 300 and values[Tag.PG_TAG] == 2
    assert values[Tag.PORTAL_TCP_UDP_PORT] == PortNumber(3261)
    v6 = IPv6Address("2001:db8::3")
    no_group = queries.target_registration(slp_registration("2001:db8::3", None), v6, None)
    assert no_group is not None and Tag.PG_TAG not in {a.tag for a in no_group.operating}
    # A refresh of what SLP registered, from any SA: in its entity, the lifetime renewed.
    ours = Node(DISK, NodeType.TARGET, entity=queries.slp_entity("10.0.0.9"))
    refresh = queries.target_registration(slp_registration("192.0.2.3", 2), V4, ours)
    assert refresh is not None and refresh.operating[1:] == bridged.operating[1:]
    assert refresh.operating[0] == Attribute(Tag.ENTITY_IDENTIFIER, "slp-sa:10.0.0.9")


def test_portal_addresses_from_target_urls() -> None:
    assert queries.portal_address("192.0.2.3") == V4
    assert queries.portal_address("::ffff:192.0.2.3") == V4
    assert queries.portal_address("2001:db8::3") == IPv6Address("2001:db8::3")
    assert queries.portal_address("storage.example") is None


def test_an_slp_registration_leaves_another_clients_entity_period_alone() -> None:
    # Issue 11 item 4: 900 s became the SLP lifetime, and stayed after the SrvDeReg.
    theirs = Node(DISK, NodeType.TARGET, entity="tgt-host", portals=(Portal(V4, 3261, 1),))
    assert queries.target_registration(slp_registration("192.0.2.3", 2), V4, theirs) is None
    elsewhere = IPv4Address("192.0.2.4")
    added = queries.target_registration(slp_registration("192.0.2.4", 2), elsewhere, theirs)
    assert added is not None
    assert added.operating[0] == Attribute(Tag.ENTITY_IDENTIFIER, "tgt-host")
    tags = [a.tag for a in added.operating]
    assert Tag.REGISTRATION_PERIOD not in tags and Tag.ISCSI_NODE_TYPE not in tags
    assert tags[:3] == [Tag.ENTITY_IDENTIFIER, Tag.PORTAL_IP_ADDRESS, Tag.PORTAL_TCP_UDP_PORT]


def test_an_slp_deregistration_withdraws_what_slp_registered() -> None:
    v6 = IPv6Address("2001:db8::3")
    event = TargetDeregistration(f"service:iscsi:target://[2001:db8::3]:3261/{DISK}", DISK,
                                 "2001:db8::3", 3261, "10.0.0.5")  # fmt: skip
    portal = (
        Attribute(Tag.PORTAL_IP_ADDRESS, v6),
        Attribute(Tag.PORTAL_TCP_UDP_PORT, PortNumber(3261)),
    )
    name = Attribute(Tag.ISCSI_NAME, DISK)
    ours = Node(DISK, NodeType.TARGET, entity=queries.slp_entity("10.0.0.5"),
                portals=(Portal(v6, 3261, 1), Portal(V4, 3260, 1)))  # fmt: skip

    def dereg(held: Node | None, added: bool = False, shared: bool = False) -> object:
        request = queries.target_deregistration(
            event, v6, held, added_by_slp=added, portal_shared=shared
        )
        if request is None:
            return None
        assert request.function == FunctionId.DEV_DEREG
        assert request.source == Attribute(Tag.ISCSI_NAME, DISK)
        return request.operating

    assert dereg(ours) == portal  # the target stays at its other portal
    # Its only portal: the node goes too, and with it its portal groups and the entity.
    last = replace(ours, portals=ours.portals[:1])
    assert dereg(last) == (*portal, name)
    assert dereg(last, shared=True) == (name,)  # another target of the SA's stays there
    assert dereg(ours, shared=True) is None
    # Another client's target: only a portal SLP added to it is withdrawn.
    theirs = replace(ours, entity="tgt-host")
    assert dereg(theirs) is None
    assert dereg(theirs, added=True) == portal
    assert dereg(None, added=True) is None


def test_an_slp_target_joining_its_sas_entity_is_paired_only_with_its_own_portal() -> None:
    # The server pairs new nodes and portals of an entity with PGT 1 unless a PG says
    # otherwise (RFC 4171 5.6.5.1): NULL PGs keep SLP's URLs exactly the registered ones.
    other, v4b = "iqn.2026-11.org.example.test:disk2", IPv4Address("192.0.2.4")
    query = queries.entity_layout_query(AGENT, "slp-sa:10.0.0.5")
    pg = (
        Attribute(Tag.PG_ISCSI_NAME, other),
        Attribute(Tag.PG_PORTAL_IP_ADDR, v4b),
        Attribute(Tag.PG_PORTAL_TCP_UDP_PORT, PortNumber(3260)),
        Attribute(Tag.PG_TAG, 1),
    )
    layout = queries.entity_layout("slp-sa:10.0.0.5", answer(query, Status.SUCCESSFUL,
        Attribute(Tag.PORTAL_IP_ADDRESS, v4b), Attribute(Tag.PORTAL_TCP_UDP_PORT, PortNumber(3260)),
        Attribute(Tag.ISCSI_NAME, other), *pg))  # fmt: skip
    assert layout == queries.EntityLayout(
        frozenset({other}), frozenset({(v4b, 3260)}), frozenset({(other, v4b, 3260)})
    )
    assert queries.entity_layout("x", answer(query, Status.NO_SUCH_ENTRY)) == queries.EntityLayout()
    request = queries.target_registration(slp_registration("192.0.2.3", 2), V4, None, layout)
    assert request is not None
    tags = [(a.tag, a.value) for a in request.operating]
    portal_at = tags.index((Tag.PORTAL_TCP_UDP_PORT, PortNumber(3261)))
    assert tags[portal_at + 1 : portal_at + 3] == [
        (Tag.PG_TAG, None),  # the other node, not at this portal
        (Tag.PG_ISCSI_NAME, other),
    ]
    assert tags[-3:] == [  # this node, not at the other portal
        (Tag.PG_TAG, None),
        (Tag.PG_PORTAL_IP_ADDR, v4b),
        (Tag.PG_PORTAL_TCP_UDP_PORT, PortNumber(3260)),
    ]
    covered = replace(
        layout, covered=layout.covered | {(DISK, v4b, 3260), (other, V4, 3261)}
    )  # PGs there already: left as they are
    request = queries.target_registration(slp_registration("192.0.2.3", 2), V4, None, covered)
    assert request is not None and Tag.PG_ISCSI_NAME not in {a.tag for a in request.operating}
    assert [a.tag for a in request.operating].count(Tag.PG_TAG) == 1

"""The SLP agent as an attacker meets it (CVE-2023-29552, CVE-2019-5544): isns-server with
SLP on loopback, registrations allowed from 127.0.0.1 only, the attacker on 127.0.0.2."""

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from ipaddress import IPv4Address
from typing import Any

import pytest

from discovery_agent.slp.codec import build_message, parse_message
from discovery_agent.slp.constants import CONFIG_MTU, ErrorCode, Flags
from discovery_agent.slp.messages import SrvAck, SrvDeReg, SrvReg, SrvRply, SrvRqst, UrlEntry
from isns_server.client import IsnsClient
from isns_server.isnsp.constants import FunctionId, Status, Tag
from isns_server.isnsp.messages import Attribute

from ..conftest import ADMIN
from ..processes import OurServer, free_port, slp_settings
from ..slp_peer import SlpUserAgent, eventually

REGISTRATIONS = 200
RATE, BURST = 20, 50  # slp.rate_limit and slp.rate_burst's defaults
ATTACKER = "127.0.0.2"


def target(n: int) -> str:
    return f"iqn.2026-11.org.example.test:amp-{n:03}"


def registration(n: int, **fields: Any) -> SrvReg:
    # Documentation addresses: plain data in a URL, nothing connects to them.
    url = f"service:iscsi:target://{IPv4Address('192.0.2.0') + n}:3260/{target(n)}"
    message = SrvReg(
        url_entry=UrlEntry(url, 600),
        service_type="service:iscsi:target",
        scopes=("DEFAULT",),
        attr_list=f"(iscsi-name={target(n)}),(portal-group=1),(alias=amp {n})",
        flags=Flags.FRESH,
    )
    return replace(message, **fields)


# The 60-byte question: the abstract type, every iSCSI name (RFC 2608 4.1, 8.1).
QUESTION = SrvRqst(service_type="service:iscsi", scopes=("DEFAULT",), predicate="(iscsi-name=*)")


@pytest.fixture
def slp_port(our_server: OurServer) -> Iterator[int]:
    port = free_port()
    our_server.configure(slp=slp_settings(port, trusted_networks=["127.0.0.1/32"]))
    our_server.start()
    yield port


def test_a_60_byte_question_gets_at_most_the_mtu_after_200_registrations(
    our_server: OurServer, slp_port: int, record_property: Callable[[str, object], None]
) -> None:
    sa, attacker = SlpUserAgent(slp_port), SlpUserAgent(slp_port, source=ATTACKER)
    try:
        for n in range(REGISTRATIONS):  # over TCP: registrations are not rate-limited there
            ack = sa.tcp(registration(n))
            assert isinstance(ack, SrvAck) and ack.error_code == ErrorCode.OK, n
        question = build_message(attacker.stamp(QUESTION))
        assert len(question) == 60
        (reply,) = attacker.exchange_udp(question)
        answer = parse_message(reply)
        assert isinstance(answer, SrvRply) and answer.flags & Flags.OVERFLOW
        assert 0 < len(answer.url_entries) < REGISTRATIONS and len(reply) <= CONFIG_MTU
        ratio = len(reply) / len(question)
        record_property("unicast_amplification", f"{len(reply)}/{len(question)}={ratio:.1f}")

        multicast = attacker.multicast(QUESTION, wait=0.5)
        assert len(multicast) == 1 and len(build_message(multicast[0])) <= CONFIG_MTU

        # A flood from one address: the token bucket answers a burst, then 20 a second.
        started = time.monotonic()
        flood = [attacker.exchange_udp(question, wait=0.0) for _ in range(2 * BURST)]
        replies = attacker.exchange_udp(b"", wait=0.5) + [r for rs in flood for r in rs]
        # Tokens refill until the agent reads the last question, at the latest now.
        allowed = BURST + RATE * (time.monotonic() - started) + 1
        sent_back = sum(len(r) for r in replies)
        assert len(replies) <= allowed and sent_back <= allowed * CONFIG_MTU
        record_property("flood_bytes", f"{sent_back} out for {2 * BURST * len(question)} in")

        full = attacker.tcp(QUESTION)  # RFC 2608 6.1: the whole answer is for TCP
        assert isinstance(full, SrvRply) and not full.flags & Flags.OVERFLOW
        assert len(full.url_entries) == REGISTRATIONS
        print(f"SLP amplification after {REGISTRATIONS} registrations: {len(reply)} bytes for a "
              f"{len(question)}-byte question ({ratio:.1f}x); flood of {2 * BURST}: {sent_back} "
              f"bytes back")  # fmt: skip
    finally:
        sa.close()
        attacker.close()


async def test_registrations_and_deregistrations_are_bridged_into_isns(
    our_server: OurServer, slp_port: int
) -> None:
    sa = SlpUserAgent(slp_port)
    isns = await IsnsClient.connect("127.0.0.1", our_server.port)

    async def portals() -> dict[str, object]:
        """Each target's alias, for the targets iSNS holds with a portal."""
        found: dict[str, object] = {}
        for n in range(3):
            answer = await isns.call(
                FunctionId.DEV_ATTR_QRY,
                Attribute(Tag.ISCSI_NAME, ADMIN),
                keys=(Attribute(Tag.ISCSI_NAME, target(n)),),
                operating=(Attribute(Tag.ISCSI_ALIAS), Attribute(Tag.PORTAL_IP_ADDRESS)),
            )
            values = {a.tag: a.value for a in answer.split()[2]}
            if answer.status == Status.SUCCESSFUL and Tag.PORTAL_IP_ADDRESS in values:
                found[target(n)] = values.get(Tag.ISCSI_ALIAS)
        return found

    async def eventually_in_isns(expected: dict[str, object]) -> dict[str, object]:
        for _ in range(50):  # the bridge works in the background: give it a moment
            if (found := await portals()) == expected:
                break
            await asyncio.sleep(0.1)
        return found

    try:
        for n in range(3):
            ack = sa.tcp(registration(n))
            assert isinstance(ack, SrvAck) and ack.error_code == ErrorCode.OK
        expected = {target(n): f"amp {n}" for n in range(3)}
        assert await eventually_in_isns(expected) == expected
        withdrawn = registration(0).url_entry
        dereg = SrvDeReg(scopes=("DEFAULT",), url_entry=UrlEntry(withdrawn.url, 0))
        ack = sa.tcp(dereg)
        assert isinstance(ack, SrvAck) and ack.error_code == ErrorCode.OK
        del expected[target(0)]
        assert await eventually_in_isns(expected) == expected
        for _ in range(50):  # then the agent hears of it by SCN from iSNS
            listing = sa.tcp(SrvRqst(service_type="service:iscsi:target", scopes=("DEFAULT",)))
            assert isinstance(listing, SrvRply)
            urls = {entry.url for entry in listing.url_entries}
            if withdrawn.url not in urls:
                break
            await asyncio.sleep(0.1)
        assert withdrawn.url not in urls
        assert len(urls) == 2
    finally:
        sa.close()
        await isns.close()


def test_registrations_refused_from_outside_over_multicast_and_when_malformed(
    slp_port: int,
) -> None:
    sa, attacker = SlpUserAgent(slp_port), SlpUserAgent(slp_port, source=ATTACKER)
    listing = SrvRqst(service_type="service:iscsi:target", scopes=("DEFAULT",))
    try:
        refused = attacker.tcp(registration(1))
        assert isinstance(refused, SrvAck)
        assert refused.error_code == ErrorCode.AUTHENTICATION_ABSENT  # not a trusted network
        assert sa.multicast(registration(2), wait=0.3) == []  # never over multicast
        # The escape cut off at the end of a value that OpenSLP's unescape read past.
        malformed = sa.tcp(registration(3, attr_list=f"(iscsi-name={target(3)}),(alias=x\\5)"))
        assert isinstance(malformed, SrvAck) and malformed.error_code == ErrorCode.PARSE_ERROR
        reply = eventually(lambda: sa.unicast(listing), lambda r: r is not None, timeout=2.0)
        assert isinstance(reply, SrvRply) and reply.url_entries == ()
    finally:
        sa.close()
        attacker.close()

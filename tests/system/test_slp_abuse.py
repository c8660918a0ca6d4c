"""The SLP agent as an attacker meets it (CVE-2023-29552, CVE-2019-5544): isns-server with
SLP on loopback, registrations allowed from 127.0.0.1 only, the attacker on 127.0.0.2."""

import contextlib
import random
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from ipaddress import IPv4Address
from typing import Any

import pytest

from discovery_agent.slp.codec import build_message, message_length, parse_message
from discovery_agent.slp.constants import CONFIG_MTU, ErrorCode, Flags
from discovery_agent.slp.messages import (
    AttrRqst,
    DAAdvert,
    SrvAck,
    SrvDeReg,
    SrvReg,
    SrvRply,
    SrvRqst,
    SrvTypeRqst,
    UrlEntry,
)
from isns_server.client import IsnsClient
from isns_server.isnsp.constants import FunctionId, Status, Tag
from isns_server.isnsp.messages import Attribute

from ..conftest import ADMIN
from ..polling import eventually, eventually_sync
from ..processes import OurServer, free_port, slp_settings
from ..slp_peer import SlpUserAgent

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
    probe = SlpUserAgent(port)
    probe.wait_for_agent()
    probe.close()
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

    async def in_isns(expected: dict[str, object]) -> None:
        await eventually(  # the bridge works in the background
            portals, lambda found: found == expected, what=f"iSNS to hold {expected}", within=5
        )

    try:
        for n in range(3):
            ack = sa.tcp(registration(n))
            assert isinstance(ack, SrvAck) and ack.error_code == ErrorCode.OK
        expected: dict[str, object] = {target(n): f"amp {n}" for n in range(3)}
        await in_isns(expected)
        withdrawn = registration(0).url_entry
        dereg = SrvDeReg(scopes=("DEFAULT",), url_entry=UrlEntry(withdrawn.url, 0))
        ack = sa.tcp(dereg)
        assert isinstance(ack, SrvAck) and ack.error_code == ErrorCode.OK
        del expected[target(0)]
        await in_isns(expected)

        def urls() -> set[str]:
            listing = sa.tcp(SrvRqst(service_type="service:iscsi:target", scopes=("DEFAULT",)))
            assert isinstance(listing, SrvRply)
            return {entry.url for entry in listing.url_entries}

        left = await eventually(  # then the agent hears of it by SCN from iSNS
            urls, lambda found: withdrawn.url not in found, what="the withdrawn URL gone", within=5
        )
        assert len(left) == 2
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
        reply = eventually_sync(
            lambda: sa.unicast(listing), lambda r: r is not None, what="a reply", within=2.0
        )
        assert isinstance(reply, SrvRply) and reply.url_entries == ()
    finally:
        sa.close()
        attacker.close()


def test_an_error_reply_to_a_malformed_language_tag_says_en_and_parses(slp_port: int) -> None:
    # Issue 12 item 8: the tag came back as sent, up to the MTU, and our parser refused it.
    ua = SlpUserAgent(slp_port)
    try:
        for tag in ("x" * 1300, "en_GB", "en-" * 300):
            request = ua.stamp(replace(QUESTION, language=tag))
            (reply,) = ua.exchange_udp(build_message(request))
            answer = parse_message(reply)
            assert isinstance(answer, SrvRply) and answer.xid == request.xid
            assert (answer.error_code, answer.language) == (ErrorCode.LANGUAGE_NOT_SUPPORTED, "en")
            assert len(reply) == 16 + 2 + 2  # header with "en", code, URL entry count 0
        assert isinstance(ua.unicast(QUESTION), SrvRply)  # and others are served as before
    finally:
        ua.close()


# A bounded mutation fuzzer (issue 12 item 10): valid messages of every kind, mutated with
# a fixed seed, against the running agent over UDP and TCP.

FUZZ_CASES, FUZZ_SEED = 2000, 20261202


def fuzz_seeds() -> list[bytes]:
    target_url = registration(7).url_entry.url
    return [
        build_message(message)
        for message in (
            QUESTION,
            replace(QUESTION, pr_list=("127.0.0.9", "192.0.2.1"), flags=Flags.REQUEST_MCAST),
            SrvRqst(service_type="service:directory-agent", scopes=("DEFAULT",)),
            SrvRqst(service_type="service:iscsi:target", predicate="(&(a=1)(!(b=*x*)))"),
            registration(7),
            SrvDeReg(scopes=("DEFAULT",), url_entry=UrlEntry(target_url, 0), tag_list=("alias",)),
            AttrRqst(url=target_url, scopes=("DEFAULT",), tag_list=("iscsi-*",)),
            SrvTypeRqst(naming_authority=None, scopes=("DEFAULT",)),
            SrvTypeRqst(naming_authority="x-corp", scopes=("DEFAULT",)),
            SrvAck(error_code=ErrorCode.OK),
            DAAdvert(boot_timestamp=1, url="service:directory-agent://127.0.0.9", scopes=("x",)),
        )
    ]


def mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.randint(1, 3)):
        where = rng.randrange(len(data)) if data else 0
        match rng.randrange(7):
            case 0:  # flip a bit
                if data:
                    data[where] ^= 1 << rng.randrange(8)
            case 1:  # an interesting byte
                if data:
                    data[where] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, ord(","), ord("\\")))
            case 2:  # cut short
                del data[where:]
            case 3:  # bytes added
                data[where:where] = rng.randbytes(rng.randint(1, 40))
            case 4:  # a length field (header, language tag or a string) made up
                at = rng.choice((2, 12, where))
                data[at : at + 2] = rng.randbytes(2)
            case 5:  # a slice repeated
                data[where:where] = data[where : where + rng.randint(1, 64)] * rng.randint(1, 8)
            case _:  # the header's length field told the truth again
                if len(data) >= 5:
                    data[2:5] = len(data).to_bytes(3, "big")
    return bytes(data)


def test_mutated_messages_over_udp_and_tcp_leave_the_agent_serving(our_server: OurServer) -> None:
    port = free_port()
    our_server.configure(
        slp=slp_settings(
            port, trusted_networks=["127.0.0.1/32"], rate_limit=100_000, rate_burst=100_000
        )
    )
    our_server.start()
    rng = random.Random(FUZZ_SEED)
    seeds = fuzz_seeds()
    ua, fresh = SlpUserAgent(port, timeout=0.0), SlpUserAgent(port)
    replies: list[bytes] = []
    try:
        fresh.wait_for_agent()
        for n in range(FUZZ_CASES):
            ua.udp.sendto(mutate(rng, seeds), ("127.0.0.1", port))
            if n % 50 == 49:
                replies += ua.exchange_udp(b"", wait=0.05)  # drain, a little at a time
        for _ in range(FUZZ_CASES):
            replies += tcp_exchange(port, mutate(rng, seeds))
        replies += ua.exchange_udp(b"", wait=0.2)
        # Every reply the agent sent parses (an error reply for a message it could read).
        for reply in replies:
            parse_message(reply)
        log = our_server.log()
        assert "Traceback" not in log and our_server.process is not None
        assert our_server.process.poll() is None
        assert isinstance(fresh.unicast(QUESTION), SrvRply)  # a client is served after it all
        assert isinstance(fresh.tcp(QUESTION), SrvRply)
        print(f"SLP fuzz: {2 * FUZZ_CASES} mutated messages, {len(replies)} replies, all parsed")
    except AssertionError:
        print(our_server.log()[-20000:])
        raise
    finally:
        ua.close()
        fresh.close()


def tcp_exchange(port: int, data: bytes) -> list[bytes]:
    """`data` on a fresh connection, then our side closed; the replies, split by length."""
    with socket.create_connection(("127.0.0.1", port), timeout=2.0) as stream:
        stream.sendall(data)
        stream.shutdown(socket.SHUT_WR)
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := stream.recv(65536):
                received += chunk
    replies = []
    while (length := message_length(received[:5])) is not None and len(received) >= length:
        replies.append(received[:length])
        received = received[length:]
    assert received == b""  # whole replies only
    return replies

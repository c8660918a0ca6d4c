"""The SLP directory agent, driven with wire bytes as its adapter would drive it."""

import itertools
from dataclasses import replace
from ipaddress import ip_network
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from discovery_agent.slp.agent import (
    CONFIG_DA_BEAT,
    AgentSettings,
    DirectoryAgent,
    TargetDeregistration,
    TargetRegistration,
    Via,
)
from discovery_agent.slp.attributes import Attribute, parse_attr_list
from discovery_agent.slp.codec import build_message, parse_message
from discovery_agent.slp.constants import ErrorCode, Flags
from discovery_agent.slp.messages import (
    AttrRply,
    AttrRqst,
    AuthBlock,
    DAAdvert,
    Message,
    SrvAck,
    SrvDeReg,
    SrvReg,
    SrvRply,
    SrvRqst,
    SrvTypeRply,
    SrvTypeRqst,
    UrlEntry,
)

from .strategies import FILTER, MESSAGES, PR_LIST, TAG_FILTERS

DA_URL = "service:directory-agent://192.0.2.10"
BOOT = 1_700_000_000
UA = ("192.0.2.50", 40000)
SA = ("10.0.0.5", 40001)  # inside TRUSTED
OUTSIDER = ("192.0.2.66", 40002)
TRUSTED = (ip_network("10.0.0.0/24"), ip_network("fd00::/64"))
TARGET = "service:iscsi:target"
NAME = "iqn.2001-04.com.example:sn.{}"


def agent(**overrides: Any) -> DirectoryAgent:
    fields: dict[str, Any] = {
        "url": DA_URL,
        "scopes": ("DEFAULT", "Development"),
        "trusted_networks": TRUSTED,
    }
    da = DirectoryAgent(AgentSettings(**(fields | overrides)), boot_timestamp=BOOT)
    da.startup(0.0)  # the registry has been read: the DA answers
    return da


def exchange(
    da: DirectoryAgent,
    message: Message,
    *,
    source: tuple[str, int] = UA,
    via: Via = "unicast-udp",
    now: float = 0.0,
) -> list[Message]:
    return [parse_message(reply) for reply in da.handle(build_message(message), source, via, now)]


def one(da: DirectoryAgent, message: Message, **kwargs: Any) -> Any:
    (reply,) = exchange(da, message, **kwargs)
    assert reply.xid == message.xid and reply.language == message.language
    return reply


def target_url(n: int, host: str = "192.0.2.3:3260") -> str:
    return f"service:iscsi:target://{host}/{NAME.format(n)}"


def target_attrs(n: int) -> str:
    return f"(iscsi-name={NAME.format(n)}),(portal-group=1),(transports=tcp),(auth-name=any)"


def srvreg(
    url: str,
    attrs: str = "",
    *,
    service_type: str = TARGET,
    scopes: tuple[str, ...] = ("DEFAULT",),
    lifetime: int = 300,
    fresh: bool = True,
    language: str = "en",
    **fields: Any,
) -> SrvReg:
    return SrvReg(
        xid=7,
        language=language,
        flags=Flags.FRESH if fresh else Flags.NONE,
        url_entry=UrlEntry(url, lifetime),
        service_type=service_type,
        scopes=scopes,
        attr_list=attrs,
        **fields,
    )


def register(da: DirectoryAgent, message: SrvReg, **kwargs: Any) -> ErrorCode:
    kwargs.setdefault("source", SA)
    ack = one(da, message, **kwargs)
    assert isinstance(ack, SrvAck)
    return ErrorCode(ack.error_code)


def find(da: DirectoryAgent, service_type: str = TARGET, **fields: Any) -> list[str]:
    kwargs = {key: fields.pop(key) for key in ("via", "now", "source") if key in fields}
    request = SrvRqst(xid=11, service_type=service_type, scopes=("DEFAULT",))
    reply = one(da, replace(request, **fields), **kwargs)
    assert isinstance(reply, SrvRply) and reply.error_code == ErrorCode.OK
    return [entry.url for entry in reply.url_entries]


def attributes(reply: AttrRply) -> dict[str, set[object]]:
    return {a.tag.lower(): set(a.values) for a in parse_attr_list(reply.attr_list)}


@pytest.fixture
def da() -> DirectoryAgent:
    da = agent()
    for n in range(3):
        assert register(da, srvreg(target_url(n), target_attrs(n))) == ErrorCode.OK
    return da


# Service requests


def test_srvrqst_by_predicate_and_scope(da: DirectoryAgent) -> None:
    assert register(da, srvreg(target_url(9), target_attrs(9), scopes=("development",))) == 0
    assert find(da, predicate=f"(iscsi-name={NAME.format(1)})") == [target_url(1)]
    assert find(da, predicate="(ISCSI-NAME=IQN.2001-04.COM.EXAMPLE:SN.*)") == [
        target_url(n) for n in range(3)
    ]
    assert find(da, predicate="&(auth-name=any)(!(portal-group=1))") == []  # RFC 4018 form
    assert find(da, "service:iscsi", scopes=("Development",)) == [target_url(9)]
    assert find(da, scopes=("nowhere", "DEVELOPMENT")) == [target_url(9)]
    reply = one(da, SrvRqst(xid=1, service_type=TARGET, scopes=("DEFAULT",)), now=100)
    assert {entry.lifetime for entry in reply.url_entries} == {200}


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"scopes": ("elsewhere",)}, ErrorCode.SCOPE_NOT_SUPPORTED),
        ({"scopes": ()}, ErrorCode.SCOPE_NOT_SUPPORTED),  # RFC 2608 8.1
        ({"spi": "corp-key"}, ErrorCode.AUTHENTICATION_UNKNOWN),  # no SPIs here
        ({"language": "de", "predicate": "(auth-name=any)"}, ErrorCode.LANGUAGE_NOT_SUPPORTED),
    ],
)
def test_srvrqst_errors_answer_unicast_and_stay_silent_to_multicast(
    da: DirectoryAgent, fields: dict[str, Any], code: ErrorCode
) -> None:
    request = replace(SrvRqst(xid=5, service_type=TARGET, scopes=("DEFAULT",)), **fields)
    assert one(da, request).error_code == code
    assert exchange(da, request, via="multicast") == []
    assert exchange(da, replace(request, flags=Flags.REQUEST_MCAST)) == []  # a broadcast


def test_language_only_counts_with_a_predicate(da: DirectoryAgent) -> None:
    assert find(da, language="de") == [target_url(n) for n in range(3)]  # RFC 2608 8.1
    assert find(da, language="en-GB", predicate="(auth-name=any)") != []  # dialect aside


def test_previous_responder_list_suppresses_the_reply() -> None:
    da = agent(addresses=("198.51.100.7",))
    request = SrvRqst(xid=2, service_type=TARGET, scopes=("DEFAULT",))
    assert register(da, srvreg(target_url(1))) == ErrorCode.OK
    for responders in [("192.0.2.99", "192.0.2.10"), ("198.51.100.7",), ("::ffff:192.0.2.10",)]:
        assert exchange(da, replace(request, pr_list=responders), via="multicast") == []
        assert exchange(da, replace(request, pr_list=responders)) == []
    # RFC 2608 8.1: entries that are not addresses are ignored.
    others = replace(request, pr_list=("da.example", "192.0.2.99"))
    assert len(one(da, others, via="multicast").url_entries) == 1


def test_multicast_with_no_result_gets_no_reply(da: DirectoryAgent) -> None:
    request = SrvRqst(xid=3, service_type="service:printer", scopes=("DEFAULT",))
    assert exchange(da, request, via="multicast") == []
    assert one(da, request).url_entries == ()  # RFC 2608 8.2: unicast gets the empty reply
    found = one(da, replace(request, service_type=TARGET), via="multicast")
    assert len(found.url_entries) == 3


def test_parse_errors_answered_only_over_unicast(da: DirectoryAgent) -> None:
    bad = build_message(SrvRqst(xid=77, service_type=TARGET, scopes=("DEFAULT",), predicate="(a"))
    assert da.handle(bad, UA, "multicast", 0) == []
    (reply,) = [parse_message(r) for r in da.handle(bad, UA, "unicast-udp", 0)]
    assert isinstance(reply, SrvRply)
    assert (reply.xid, reply.error_code) == (77, ErrorCode.PARSE_ERROR)
    assert da.handle(b"\x02\x01\x00", UA, "unicast-udp", 0) == []  # no header, no XID


# Registration


def test_srvreg_refused_from_untrusted_source_and_never_taken_by_multicast() -> None:
    da = agent()
    message = srvreg(target_url(1), target_attrs(1))
    assert register(da, message, source=OUTSIDER) == ErrorCode.AUTHENTICATION_ABSENT
    assert exchange(da, message, source=SA, via="multicast") == []
    assert exchange(da, replace(message, flags=Flags.FRESH | Flags.REQUEST_MCAST), source=SA) == []
    assert len(da.directory) == 0 and da.target_changes() == []
    assert register(da, message, source=("fd00::5", 427)) == ErrorCode.OK
    assert register(da, message, source=("::ffff:10.0.0.9", 427)) == ErrorCode.OK


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (srvreg(target_url(1), "(alias=bad\\zzescape)"), ErrorCode.PARSE_ERROR),
        (srvreg(target_url(1), "(x=1,true)"), ErrorCode.INVALID_REGISTRATION),  # RFC 2608 5
        (srvreg(target_url(1), lifetime=0), ErrorCode.INVALID_REGISTRATION),
        (srvreg(target_url(1), scopes=("DEFAULT", "other")), ErrorCode.SCOPE_NOT_SUPPORTED),
        (srvreg(target_url(1), scopes=()), ErrorCode.SCOPE_NOT_SUPPORTED),
        (
            srvreg(target_url(1), auth_blocks=(AuthBlock(2, 0, "corp-key", b"sig"),)),
            ErrorCode.AUTHENTICATION_UNKNOWN,  # RFC 2608 12.5: an SPI we are not configured with
        ),
    ],
)
def test_bad_srvreg_stores_nothing(message: SrvReg, code: ErrorCode) -> None:
    da = agent()
    assert register(da, message) == code
    assert len(da.directory) == 0 and da.target_changes() == []


def test_lifetime_expiry_follows_now() -> None:
    da = agent()
    assert register(da, srvreg(target_url(1), lifetime=60), now=1000) == ErrorCode.OK
    request = SrvRqst(xid=4, service_type=TARGET, scopes=("DEFAULT",))
    assert [e.lifetime for e in one(da, request, now=1059.5).url_entries] == [1]
    assert one(da, request, now=1060).url_entries == ()
    assert register(da, srvreg(target_url(1), lifetime=60), now=2000) == ErrorCode.OK
    da.tick(2060)  # the timer flushes too, with no request arriving
    assert len(da.directory) == 0


def test_fresh_replaces_and_incremental_update_merges(da: DirectoryAgent) -> None:
    by_url = AttrRqst(xid=6, url=target_url(1), scopes=("DEFAULT",))
    update = srvreg(target_url(1), "(alias=disk one),(portal-group=2)", fresh=False)
    assert register(da, update) == ErrorCode.OK
    assert attributes(one(da, by_url)) == {
        "iscsi-name": {NAME.format(1)},
        "portal-group": {2},
        "transports": {"tcp"},
        "auth-name": {"any"},
        "alias": {"disk one"},
    }
    assert register(da, srvreg(target_url(1), "(alias=fresh)")) == ErrorCode.OK
    assert attributes(one(da, by_url)) == {"alias": {"fresh"}}
    assert register(da, replace(update, scopes=("Development",))) == (
        ErrorCode.SCOPE_NOT_SUPPORTED  # RFC 2608 9.3: an update keeps its scopes
    )


def test_an_update_of_a_url_never_registered_is_taken_as_fresh(
    da: DirectoryAgent, caplog: pytest.LogCaptureFixture
) -> None:
    # OpenSLP's slpd sends its static registrations with FRESH clear (issue 11 item 7);
    # RFC 2608 9.3 would have INVALID_UPDATE, and those services would never show.
    caplog.set_level("INFO", logger="discovery_agent.slp.agent")
    for n in (8, 9):
        update = srvreg(target_url(n), f"(alias=static {n})", fresh=False)
        assert register(da, update) == ErrorCode.OK
    assert register(da, srvreg(target_url(7), fresh=False), source=("10.0.0.6", 427)) == 0
    assert set(find(da)) >= {target_url(8), target_url(9), target_url(7)}
    by_url = AttrRqst(xid=6, url=target_url(8), scopes=("DEFAULT",))
    assert attributes(one(da, by_url)) == {"alias": {"static 8"}}
    said = [r.getMessage() for r in caplog.records if "FRESH clear" in r.getMessage()]
    assert len(said) == 2 and SA[0] in said[0] and "10.0.0.6" in said[1]  # once per agent
    assert all(r.levelname == "INFO" for r in caplog.records)


def test_srvdereg(da: DirectoryAgent) -> None:
    dereg = SrvDeReg(xid=8, scopes=("DEFAULT",), url_entry=UrlEntry(target_url(1), 0))
    by_url = AttrRqst(xid=6, url=target_url(1), scopes=("DEFAULT",))
    assert one(da, dereg, source=OUTSIDER).error_code == ErrorCode.AUTHENTICATION_ABSENT
    assert exchange(da, dereg, source=SA, via="multicast") == []
    tags = replace(dereg, tag_list=("auth-*", "transports"))
    assert one(da, tags, source=SA).error_code == ErrorCode.OK
    assert set(attributes(one(da, by_url))) == {"iscsi-name", "portal-group"}
    wrong_scopes = replace(dereg, scopes=("DEFAULT", "Development"))
    assert one(da, wrong_scopes, source=SA).error_code == ErrorCode.SCOPE_NOT_SUPPORTED
    assert one(da, dereg, source=SA).error_code == ErrorCode.OK
    assert find(da) == [target_url(0), target_url(2)]
    assert one(da, dereg, source=SA).error_code == ErrorCode.OK  # a retransmission


# Attribute and service type requests

PRINTERS = [  # RFC 2608 10.5
    (
        "service:printer:lpr://igore.wco.ftp.com/draft",
        "en",
        "(Name=Igore),(Description=For developers only),(Protocol=LPR),"
        "(location-description=12th floor),(Operator=James Dornan \\3cdornan@monster\\3e),"
        "(media-size=na-letter),(resolution=res-600),x-OK",
    ),
    (
        "service:printer:lpr://igore.wco.ftp.com/draft",
        "de",
        "(Name=Igore),(Description=Nur fuer Entwickler),(Protocol=LPR),"
        "(location-description=13te Etage),(Operator=James Dornan \\3cdornan@monster\\3e),"
        "(media-size=na-letter),(resolution=res-600),x-OK",
    ),
    (
        "service:printer:http://not.wco.ftp.com/cgi-bin/pub-prn",
        "en",
        "(Name=Not),(Description=Experimental IPP printer),(Protocol=http),"
        "(location-description=QA bench),(media-size=na-letter),(resolution=other),x-BUSY",
    ),
]


def test_attrrqst_by_url_and_by_type_with_tag_lists() -> None:
    da = agent()
    for url, language, attrs in PRINTERS:
        message = srvreg(
            url, attrs, service_type=url.split("://")[0], scopes=("Development",), language=language
        )
        assert register(da, message) == ErrorCode.OK
    by_url = AttrRqst(
        xid=9,
        language="de",
        url=PRINTERS[0][0],
        scopes=("Development",),
        tag_list=("resolution", "loc*"),
    )
    assert one(da, by_url).attr_list == "(location-description=13te Etage),(resolution=res-600)"
    by_type = AttrRqst(
        xid=10,
        url="service:printer",
        scopes=("Development",),
        tag_list=("x-*", "resolution", "protocol"),
    )
    assert attributes(one(da, by_type)) == {
        "protocol": {"http", "LPR"},
        "resolution": {"res-600", "other"},
        "x-ok": set(),
        "x-busy": set(),
    }
    everything = one(da, replace(by_type, tag_list=()))
    assert attributes(everything)["name"] == {"Igore", "Not"}
    assert one(da, replace(by_url, language="fr")).error_code == (ErrorCode.LANGUAGE_NOT_SUPPORTED)
    assert one(da, replace(by_url, scopes=("DEFAULT",))).attr_list == ""
    assert exchange(da, replace(by_url, scopes=("DEFAULT",)), via="multicast") == []


def test_srvtyperqst_by_naming_authority(da: DirectoryAgent) -> None:
    other = srvreg("service:x.acme:y://192.0.2.4", service_type="service:x.acme:y")
    assert register(da, other) == ErrorCode.OK
    request = SrvTypeRqst(xid=12, scopes=("DEFAULT",))
    assert one(da, request).service_types == (TARGET, "service:x.acme:y")
    assert one(da, replace(request, naming_authority="")).service_types == (TARGET,)
    assert one(da, replace(request, naming_authority="acme")).service_types == ("service:x.acme:y",)
    nothing = replace(request, naming_authority="other")
    assert one(da, nothing).service_types == ()
    assert exchange(da, nothing, via="multicast") == []
    assert one(da, replace(request, scopes=("x",))).error_code == ErrorCode.SCOPE_NOT_SUPPORTED


# DA advertisements


def test_daadvert_on_request_for_service_directory_agent(da: DirectoryAgent) -> None:
    discovery = SrvRqst(xid=13, language="fr", service_type="service:directory-agent")
    for via in ("multicast", "unicast-udp", "tcp"):
        advert = one(da, discovery, via=via)
        assert isinstance(advert, DAAdvert) and advert.error_code == ErrorCode.OK
        assert (advert.url, advert.scopes) == (DA_URL, ("DEFAULT", "Development"))
        assert advert.boot_timestamp == BOOT
    assert one(da, replace(discovery, scopes=("development",))).error_code == ErrorCode.OK
    other_scope = replace(discovery, scopes=("elsewhere",))
    assert exchange(da, other_scope, via="multicast") == []  # RFC 2608 12.1
    assert one(da, other_scope).error_code == ErrorCode.SCOPE_NOT_SUPPORTED  # as a SrvRply would
    assert one(da, replace(discovery, spi="key")).error_code == ErrorCode.AUTHENTICATION_UNKNOWN
    assert exchange(da, replace(discovery, predicate="(x=1)")) == []  # our attributes: none
    assert exchange(da, replace(discovery, pr_list=("192.0.2.10",)), via="multicast") == []


def test_daadverts_at_startup_every_beat_and_at_shutdown() -> None:
    da = DirectoryAgent(AgentSettings(url=DA_URL, advert_period=60.0), boot_timestamp=BOOT)
    assert da.tick(5.0) == ([], float("inf"))  # not started
    adverts, deadline = da.startup(100.0)
    assert deadline == 160.0
    (advert,) = [parse_message(a) for a in adverts]
    assert isinstance(advert, DAAdvert)
    assert (advert.xid, advert.boot_timestamp, advert.url) == (0, BOOT, DA_URL)  # RFC 2608 12.2
    assert da.tick(159.9) == ([], 160.0)
    adverts, deadline = da.tick(161.0)
    assert len(adverts) == 1 and deadline == 221.0
    (going_down,) = [parse_message(a) for a in da.shutdown()]
    assert isinstance(going_down, DAAdvert) and going_down.boot_timestamp == 0  # RFC 2608 12.1
    assert da.tick(1000.0) == ([], float("inf"))
    assert agent().settings.advert_period == CONFIG_DA_BEAT == 10800


# Abuse resistance


def test_rate_limit_cuts_a_burst_from_one_source_only() -> None:
    da = agent(rate=2.0, burst=5)
    request = build_message(SrvRqst(xid=14, service_type="service:directory-agent"))
    answered = [bool(da.handle(request, UA, "unicast-udp", 10.0)) for _ in range(8)]
    assert answered == [True] * 5 + [False] * 3
    assert da.handle(request, ("192.0.2.51", 40000), "unicast-udp", 10.0) != []
    assert da.handle(request, (UA[0], 9999), "multicast", 10.0) == []  # per address, not port
    assert da.handle(request, UA, "tcp", 10.0) != []  # TCP sources cannot be spoofed
    assert da.handle(request, UA, "unicast-udp", 10.5) != []  # refilled at `rate`
    assert da.handle(request, UA, "unicast-udp", 10.5) == []


def test_rate_limit_remembers_a_bounded_number_of_sources() -> None:
    da = agent(rate=1.0, burst=1, max_tracked_sources=2)
    request = build_message(SrvRqst(xid=15, service_type="service:directory-agent"))
    for host in ("192.0.2.1", "192.0.2.2", "192.0.2.1"):
        da.handle(request, (host, 1), "unicast-udp", 0.0)
    assert da.handle(request, ("192.0.2.1", 1), "unicast-udp", 0.0) == []
    da.handle(request, ("192.0.2.3", 1), "unicast-udp", 0.0)  # evicts 192.0.2.2
    assert da.handle(request, ("192.0.2.2", 1), "unicast-udp", 0.0) != []


@pytest.fixture
def crowded() -> DirectoryAgent:
    """200 iSCSI targets registered over SLP by one trusted storage host."""
    da = agent()
    for n in range(200):
        message = srvreg(target_url(n), target_attrs(n), lifetime=3600)
        assert register(da, message, now=n * 0.1) == ErrorCode.OK  # within the rate limit
    return da


def test_udp_reply_is_bounded_by_the_mtu(crowded: DirectoryAgent) -> None:
    request = build_message(
        SrvRqst(xid=16, service_type=TARGET, scopes=("DEFAULT",), predicate="(portal-group=1)")
    )
    assert 60 <= len(request) <= 70
    (reply,) = crowded.handle(request, UA, "unicast-udp", 100.0)
    mtu = crowded.settings.mtu
    ratio = len(reply) / len(request)
    assert len(reply) <= mtu
    assert ratio < mtu / 60, f"amplification {ratio:.1f}x"  # about 19x here, never over 23.3x
    message = parse_message(reply)
    assert isinstance(message, SrvRply) and message.flags & Flags.OVERFLOW
    assert 0 < len(message.url_entries) < 200  # whole URL entries only
    (full,) = crowded.handle(request, UA, "tcp", 100.0)  # RFC 2608 6.2: TCP gets everything
    everything = parse_message(full)
    assert isinstance(everything, SrvRply) and not everything.flags & Flags.OVERFLOW
    assert len(everything.url_entries) == 200


def test_attribute_and_type_replies_are_bounded_too(crowded: DirectoryAgent) -> None:
    by_type = AttrRqst(xid=17, url="service:iscsi", scopes=("DEFAULT",))
    reply = one(crowded, by_type, now=100.0)
    assert len(build_message(reply)) <= crowded.settings.mtu and reply.flags & Flags.OVERFLOW
    assert "iscsi-name" not in reply.attr_list  # 200 names do not fit; the short ones do
    assert attributes(reply)["portal-group"] == {1}
    assert exchange(crowded, by_type, now=100.0, via="multicast") != []
    assert len(attributes(one(crowded, by_type, via="tcp"))["iscsi-name"]) == 200
    tiny = agent(mtu=120)
    for n in range(20):
        name = f"service:t{n:02}-with-a-long-name"
        assert register(tiny, srvreg(f"{name}://192.0.2.{n}", service_type=name)) == 0
    types = one(tiny, SrvTypeRqst(xid=18, scopes=("DEFAULT",)))
    assert isinstance(types, SrvTypeRply) and types.flags & Flags.OVERFLOW
    assert 0 < len(types.service_types) < 20 and len(build_message(types)) <= 120


def test_registration_caps_per_source_and_total() -> None:
    da = agent(max_registrations=4, max_registrations_per_source=2)
    assert [register(da, srvreg(target_url(n))) for n in range(3)] == [0, 0, ErrorCode.DA_BUSY_NOW]
    second = ("10.0.0.6", 427)
    assert [register(da, srvreg(target_url(n)), source=second) for n in (3, 4)] == [0, 0]
    assert register(da, srvreg(target_url(5)), source=("10.0.0.7", 427)) == ErrorCode.DA_BUSY_NOW
    assert len(da.directory) == 4


# Requests aimed at the crowded table, so that some of them find a great deal.
AIMED = st.one_of(
    st.builds(
        SrvRqst,
        xid=st.integers(0, 0xFFFF),
        flags=st.sampled_from([Flags.NONE, Flags.REQUEST_MCAST]),
        pr_list=PR_LIST,
        service_type=st.sampled_from([TARGET, "service:iscsi", "service:directory-agent"]),
        scopes=st.sampled_from([(), ("DEFAULT",), ("x", "default")]),
        predicate=st.sampled_from(["", "(portal-group=1)", "(iscsi-name=*:sn.1*)"]) | FILTER,
    ),
    st.builds(
        AttrRqst,
        xid=st.integers(0, 0xFFFF),
        url=st.sampled_from([TARGET, "service:iscsi", target_url(7)]),
        scopes=st.just(("DEFAULT",)),
        tag_list=TAG_FILTERS,
    ),
    st.builds(SrvTypeRqst, xid=st.integers(0, 0xFFFF), scopes=st.just(("DEFAULT",))),
)
_CLOCK = itertools.count(1000.0)  # one second per example keeps the rate limit out of the way


@given(
    st.one_of(
        st.binary(max_size=300),
        st.one_of(*MESSAGES.values()).map(build_message),
        AIMED.map(build_message),
    ),
    st.sampled_from(["multicast", "unicast-udp", "tcp"]),
)
@hypothesis_settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_input_gets_at_most_one_bounded_reply(
    crowded: DirectoryAgent, data: bytes, via: Via
) -> None:
    replies = crowded.handle(data, SA, via, next(_CLOCK))
    assert len(replies) <= 1
    for reply in replies:
        message = parse_message(reply)
        if via != "tcp":
            assert len(reply) <= crowded.settings.mtu
        if via == "multicast":
            assert not getattr(message, "error_code", 0)


# The iSNS bridge


def test_accepted_iscsi_target_srvregs_are_reported() -> None:
    da = agent()
    url = f"service:iscsi:target://[2001:db8::3]/{NAME.format(4)}"
    assert register(da, srvreg(url, "(portal-group=7)")) == ErrorCode.OK
    assert register(da, srvreg(target_url(5), "(alias=x)", lifetime=90)) == ErrorCode.OK
    assert register(da, srvreg(target_url(5), "(portal-group=2)", fresh=False)) == 0
    sms = srvreg("service:iscsi:sms://192.0.2.9", service_type="service:iscsi:sms")
    assert register(da, sms) == ErrorCode.OK
    assert register(da, srvreg("service:iscsi:target://192.0.2.8")) == ErrorCode.OK  # no name
    first, second, third = da.target_changes()
    assert first == TargetRegistration(
        url=url,
        iscsi_name=NAME.format(4),
        host="2001:db8::3",
        port=3260,
        portal_group=7,
        scopes=("DEFAULT",),
        attributes=parse_attr_list("(portal-group=7)"),
        lifetime=300,
        source=SA[0],
    )
    assert isinstance(second, TargetRegistration)
    assert isinstance(third, TargetRegistration)
    assert (second.host, second.port, second.portal_group, second.lifetime) == (
        "192.0.2.3",
        3260,
        None,
        90,
    )
    assert third.attributes == parse_attr_list("(alias=x),(portal-group=2)")  # merged
    assert da.target_changes() == []


def test_accepted_iscsi_target_srvderegs_are_reported() -> None:
    da = agent()
    for n in (1, 2):
        assert register(da, srvreg(target_url(n), "(alias=x)")) == ErrorCode.OK
    da.target_changes()
    dereg = SrvDeReg(xid=30, scopes=("DEFAULT",), url_entry=UrlEntry(target_url(1), 0))
    assert one(da, dereg, source=SA).error_code == ErrorCode.OK
    partial = replace(dereg, url_entry=UrlEntry(target_url(2), 0), tag_list=("alias",))
    assert one(da, partial, source=SA).error_code == ErrorCode.OK  # attributes only
    assert one(da, dereg, source=OUTSIDER).error_code == ErrorCode.AUTHENTICATION_ABSENT
    assert da.target_changes() == [
        TargetDeregistration(target_url(1), NAME.format(1), "192.0.2.3", 3260, SA[0])
    ]


def test_registry_fed_services() -> None:
    da = agent(registry_lifetime=600)
    name = Attribute("iscsi-name", (NAME.format(1),))
    da.put_service(target_url(1), TARGET, ["DEFAULT"], [name], now=0)
    request = SrvRqst(xid=19, service_type=TARGET, scopes=("DEFAULT",))
    assert [(e.url, e.lifetime) for e in one(da, request, now=10**7).url_entries] == [
        (target_url(1), 600)  # never expires; UAs may cache it for registry_lifetime
    ]
    # An SA registering the same URL is acknowledged; the registry's entry stays.
    assert register(da, srvreg(target_url(1), "(alias=slp)"), now=10**7) == ErrorCode.OK
    assert one(da, AttrRqst(xid=20, url=target_url(1), scopes=("DEFAULT",))).attr_list == (
        f"(iscsi-name={NAME.format(1)})"
    )
    assert da.remove_service(target_url(1))
    assert find(da, now=10**7) == [target_url(1)]  # the SA's registration shows again
    assert find(da, now=10**7 + 300) == []
    with pytest.raises(ValueError):
        da.put_service(target_url(1), TARGET, ["elsewhere"], [], now=0)


def test_registry_scopes_are_served_and_advertised_as_far_as_the_mtu_allows() -> None:
    da = agent(mtu=200)
    name = Attribute("iscsi-name", (NAME.format(1),))
    domains = ["dd-prod", "DD-PROD", "development", *(f"dd-{n:03}" for n in range(40))]
    da.serve_scopes(domains)
    da.put_service(target_url(1), TARGET, ["dd-prod"], [name], now=0)
    assert find(da, scopes=("Dd-Prod",)) == [target_url(1)]  # compared folded (RFC 2608 6.4)
    assert find(da, scopes=("dd-039",)) == []  # served, if not in the DAAdvert
    (advert,) = [parse_message(a) for a in da.startup(0.0).adverts]
    assert isinstance(advert, DAAdvert)
    assert advert.scopes[:3] == ("DEFAULT", "Development", "dd-prod")  # configured first
    assert "DD-PROD" not in advert.scopes and "development" not in advert.scopes
    assert "dd-039" not in advert.scopes and da.scopes == advert.scopes
    assert len(build_message(advert)) <= 200
    da.serve_scopes([])
    assert one(da, SrvRqst(xid=21, service_type=TARGET, scopes=("dd-prod",))).error_code == (
        ErrorCode.SCOPE_NOT_SUPPORTED
    )
    assert da.scopes == ("DEFAULT", "Development")


def test_settings_are_checked() -> None:
    for bad in (
        {"url": "service:printer://192.0.2.10"},
        {"scopes": ()},
        {"scopes": ("",)},
        {"addresses": ("da.example",)},
        {"rate": 0.0},
        {"registry_lifetime": 70000},
    ):
        with pytest.raises(ValueError):
            AgentSettings(**({"url": DA_URL} | bad))
    with pytest.raises(ValueError):
        DirectoryAgent(AgentSettings(url=DA_URL), boot_timestamp=0)
    with pytest.raises(ValueError):
        DirectoryAgent(AgentSettings(url=DA_URL, mtu=40), boot_timestamp=BOOT)


# Interop (issue 11)


def test_silent_until_started_then_the_first_advert_carries_the_dd_scopes() -> None:
    da = DirectoryAgent(AgentSettings(url=DA_URL, trusted_networks=TRUSTED), boot_timestamp=BOOT)
    discovery = build_message(SrvRqst(xid=1, service_type="service:directory-agent"))
    in_dd = build_message(srvreg(target_url(1), scopes=("dd-prod",)))
    for via in ("multicast", "unicast-udp", "tcp"):
        assert da.handle(discovery, UA, via, 0.0) == []  # the registry is not read yet
    assert da.handle(in_dd, SA, "tcp", 0.0) == []  # not SCOPE_NOT_SUPPORTED
    da.serve_scopes(["dd-prod"])  # the registry's first read
    (advert,) = [parse_message(a) for a in da.startup(1.0).adverts]
    assert isinstance(advert, DAAdvert) and advert.scopes == ("DEFAULT", "dd-prod")
    assert register(da, srvreg(target_url(1), scopes=("dd-prod",))) == ErrorCode.OK


def test_any_local_address_in_the_previous_responder_list_is_us() -> None:
    local = {"127.0.0.1", "192.0.2.77"}
    asked: list[str] = []

    def is_local(address: object) -> bool:
        asked.append(str(address))
        return str(address) in local

    da = DirectoryAgent(
        AgentSettings(url="service:directory-agent://127.0.0.2", addresses=("127.0.0.2",)),
        boot_timestamp=BOOT,
        is_local=is_local,
    )
    da.startup(0.0)
    da.put_service(target_url(1), TARGET, ["DEFAULT"], [], now=0)
    request = SrvRqst(xid=2, service_type=TARGET, scopes=("DEFAULT",))
    for responders in [("127.0.0.1",), ("127.0.0.2",), ("192.0.2.5", "::ffff:192.0.2.77")]:
        assert exchange(da, replace(request, pr_list=responders), via="multicast") == []
    assert len(one(da, replace(request, pr_list=("192.0.2.5",)), via="multicast").url_entries)
    asked.clear()
    crowded = tuple(f"198.51.100.{n}" for n in range(100))
    assert exchange(da, replace(request, pr_list=crowded), via="multicast") != []
    assert len(asked) == 32  # a long list costs a bounded number of look-ups


def test_an_slp_target_is_listed_in_a_dd_scope_only_as_the_registry_says() -> None:
    da = agent()
    da.serve_scopes(["dd-prod"])
    scopes = ("DEFAULT", "dd-prod")
    assert register(da, srvreg(target_url(1), scopes=scopes)) == ErrorCode.OK
    assert find(da, scopes=("dd-prod",)) == []  # in no DD: not a dd-prod member
    assert find(da) == [target_url(1)]
    # The registry then holds the target, in dd-prod: one entry, the registry's.
    name = Attribute("iscsi-name", (NAME.format(1),))
    da.put_service(target_url(1), TARGET, scopes, [name], now=0)
    assert register(da, srvreg(target_url(1), "(alias=again)", scopes=scopes)) == 0
    request = SrvRqst(xid=3, service_type=TARGET, scopes=scopes)
    assert [(e.url, e.lifetime) for e in one(da, request, via="tcp").url_entries] == [
        (target_url(1), 900)
    ]
    assert find(da, scopes=("dd-prod",)) == [target_url(1)]
    by_url = AttrRqst(xid=4, url=target_url(1), scopes=scopes)
    assert attributes(one(da, by_url)) == {"iscsi-name": {NAME.format(1)}}


def test_a_srvdereg_of_a_url_never_held_is_acknowledged_and_not_bridged() -> None:
    da = agent()
    da.put_service(target_url(1), TARGET, ["DEFAULT"], [], now=0)  # the registry's, not SLP's
    for url in (target_url(1), target_url(2)):
        dereg = SrvDeReg(xid=31, scopes=("DEFAULT",), url_entry=UrlEntry(url, 0))
        assert one(da, dereg, source=SA).error_code == ErrorCode.OK
    assert da.target_changes() == [] and find(da) == [target_url(1)]


@pytest.mark.parametrize(
    ("request_", "tail"),
    [
        (SrvRqst(xid=5, service_type=TARGET, scopes=("x",)), b"\x00\x00"),
        (AttrRqst(xid=5, url=TARGET, scopes=("x",)), b"\x00\x00\x00"),
        (SrvTypeRqst(xid=5, scopes=("x",)), b"\x00\x00"),
        # Boot timestamp, then empty URL, scope list, attr list, SPI list; no auth blocks.
        (
            SrvRqst(xid=5, service_type="service:directory-agent", scopes=("x",)),
            BOOT.to_bytes(4, "big") + bytes(9),
        ),
    ],
    ids=["SrvRply", "AttrRply", "SrvTypeRply", "DAAdvert"],
)
def test_error_replies_carry_their_counts(request_: Message, tail: bytes) -> None:
    # The most deployed SLP library and Wireshark read them (issue 11 item 6).
    (reply,) = agent().handle(build_message(request_), UA, "unicast-udp", 0.0)
    code = int(ErrorCode.SCOPE_NOT_SUPPORTED).to_bytes(2, "big")
    assert reply.endswith(code + tail) and len(reply) == 16 + 2 + len(tail)

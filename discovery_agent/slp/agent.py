"""The SLPv2 directory agent (RFC 2608 6-12, RFC 4018), sans-IO.

`handle(data, source, via, now)` returns the datagrams (or TCP messages) to send back to
`source`; `startup(now)` and `tick(now)` return the DAAdverts to multicast and when to
call `tick` again. Nothing here owns a socket or reads a clock, so the asyncio adapter
only moves bytes and keeps one timer.

The DA is silent until `startup`, which its owner calls once the registry has been read:
SAs register against the scopes of the first DAAdvert they see (RFC 2608 12.2.2), so
that advert, and every answer, must already carry the discovery domains' scopes.

CVE-2023-29552 made SLP a UDP amplifier through unauthenticated SrvRegs and large
replies. Here:
- SrvReg and SrvDeReg are taken only over unicast from `trusted_networks` (none by
  default), never over multicast.
- No UDP reply exceeds `mtu`: whole URL entries, attributes or types, OVERFLOW set.
- Nothing is sent for multicast requests that fail or find nothing (RFC 2608 7, 8.2).
- A token bucket per source address caps the UDP datagrams answered, so whatever address
  a spoofer puts on requests receives at most `rate` replies of `mtu` bytes a second.
- Registrations are capped in total and per source address.
"""

import ipaddress
import logging
import math
import re
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Literal, NamedTuple, TypeVar

from isns_server.netaddr import parse_ip
from isns_server.ratelimit import TokenBuckets

from .attributes import Attribute, format_attr_list, parse_attr_list
from .codec import build_error_reply, build_message, error_reply, fit_to_budget, parse_message
from .constants import CONFIG_MTU, MAX_MESSAGE_LENGTH, ErrorCode, Flags
from .directory import (
    Directory,
    Registration,
    RegistrationError,
    ServiceEntry,
    merge_attributes,
    scope_keys,
)
from .errors import SlpParseError
from .messages import (
    AttrRply,
    AttrRqst,
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
from .predicate import parse_predicate, tag_matches
from .strings import SCOPE, comparison_key, service_type_of

CONFIG_DA_BEAT = 3 * 60 * 60  # RFC 2608 13: seconds between unsolicited DAAdverts
DIRECTORY_AGENT = "service:directory-agent"
ISCSI_TARGET = "service:iscsi:target"  # RFC 4018 5.2
ISCSI_PORT = 3260  # RFC 3720 13.2: the port when a target URL names none
UNSOLICITED_LANGUAGE = "en"
_MAX_COUNT = 0xFFFF  # 16-bit item counts and string lengths
_LANGUAGE_ROOM = 32  # a solicited DAAdvert echoes the request's language tag, maybe not "en"
_MAX_PROBED_RESPONDERS = 32  # PRList addresses asked of `is_local` per request
# "...://host[:port][/path]", host possibly a bracketed IPv6 literal (RFC 4018 5.2).
_URL_ADDRESS = re.compile(
    r"://(?:\[(?P<ipv6>[^\]]+)\]|(?P<host>[^/:\[\]]+))(?::(?P<port>[0-9]{1,5}))?(?P<path>/.*)?$"
)

log = logging.getLogger(__name__)

Via = Literal["multicast", "unicast-udp", "tcp"]
Network = IPv4Network | IPv6Network
IPAddress = IPv4Address | IPv6Address
_Item = TypeVar("_Item")


@dataclass(frozen=True, slots=True)
class AgentSettings:
    url: str  # service:directory-agent://<addr> (RFC 2608 8.5)
    scopes: tuple[str, ...] = ("DEFAULT",)  # RFC 2608 12.4
    addresses: tuple[str, ...] = ()  # this DA's other interface addresses, for <PRList>s
    mtu: int = CONFIG_MTU
    trusted_networks: tuple[Network, ...] = ()  # who may SrvReg/SrvDeReg; none by default
    rate: float = 20.0  # UDP datagrams answered per second and source address...
    burst: int = 50  # ...after a burst of this many (an SA registering its targets)
    max_tracked_sources: int = 4096  # token buckets kept; the least recently seen go first
    max_registrations: int = 4096  # SLP registrations in total (registry-fed ones aside)
    max_registrations_per_source: int = 256
    advert_period: float = CONFIG_DA_BEAT
    registry_lifetime: int = 900  # the lifetime announced for registry-fed URLs

    def __post_init__(self) -> None:
        if comparison_key(service_type_of(self.url) or "") != DIRECTORY_AGENT:
            raise ValueError(f"url {self.url!r} is not service:directory-agent://<addr>")
        if not self.scopes:
            raise ValueError("a DA needs at least one scope (RFC 2608 8.5)")
        SCOPE.format_list(self.scopes)  # ValueError for a scope SLP cannot carry
        for address in self.addresses:
            ipaddress.ip_address(address)
        if self.rate <= 0 or self.burst < 1 or self.max_tracked_sources < 1:
            raise ValueError("rate, burst and max_tracked_sources must be positive")
        if self.max_registrations < 0 or self.max_registrations_per_source < 0:
            raise ValueError("registration caps cannot be negative")
        if self.advert_period <= 0:
            raise ValueError("advert_period must be positive")
        if not 0 < self.registry_lifetime <= _MAX_COUNT:
            raise ValueError("registry_lifetime must be 1..65535 seconds")


@dataclass(slots=True)
class AgentCounters:
    """Plain counts for monitoring (read by the server's metrics at scrape time)."""

    requests: Counter[str] = field(default_factory=Counter)  # by message type; "invalid"
    truncated_replies: int = 0  # OVERFLOW set, or not sent for the MTU
    rate_limited: int = 0  # UDP datagrams dropped by the per-source token bucket


class Heartbeat(NamedTuple):
    """DAAdverts to multicast now, and when `tick` wants to be called next."""

    adverts: list[bytes]
    deadline: float


@dataclass(frozen=True, slots=True)
class TargetRegistration:
    """An accepted SLP SrvReg for service:iscsi:target (RFC 4018 5.2), for the iSNS bridge.
    Each refresh is reported again, so the bridge can keep the iSNS registration alive."""

    url: str
    iscsi_name: str  # from the URL path, which the template requires
    host: str  # portal address (an IPv6 literal without brackets) or host name
    port: int
    portal_group: int | None  # the "portal-group" attribute, when registered
    scopes: tuple[str, ...]
    attributes: tuple[Attribute, ...]  # everything stored for the URL after this SrvReg
    lifetime: int
    source: str  # the registering SA's address


@dataclass(frozen=True, slots=True)
class TargetDeregistration:
    """An accepted SLP SrvDeReg of a whole service:iscsi:target URL (RFC 2608 10.6): the
    target is no longer reached at that address, for the iSNS bridge."""

    url: str
    iscsi_name: str
    host: str
    port: int
    source: str  # the deregistering SA's address


TargetChange = TargetRegistration | TargetDeregistration


class _TargetAddress(NamedTuple):
    iscsi_name: str
    host: str  # an IPv6 literal without brackets, an IPv4 address or a host name
    port: int


@dataclass(frozen=True, slots=True)
class _Request:
    address: str
    multicast: bool
    budget: int  # largest reply in bytes
    now: float


def _is(service_type: str, wanted: str) -> bool:
    return comparison_key(service_type) == wanted


def _primary_language(tag: str) -> str:
    return comparison_key(tag).split("-")[0]


def _says_nothing(reply: Message) -> bool:
    """What a multicast request must not be answered with: an error or an empty result
    (RFC 2608 7, 8.2). SrvAcks too: registrations are never taken over multicast."""
    if isinstance(reply, SrvRply):
        return bool(reply.error_code) or not reply.url_entries
    if isinstance(reply, AttrRply):
        return bool(reply.error_code) or not reply.attr_list
    if isinstance(reply, SrvTypeRply):
        return bool(reply.error_code) or not reply.service_types
    if isinstance(reply, DAAdvert):
        return bool(reply.error_code)
    return True


def _fit_list(
    items: Sequence[_Item], reply: Callable[[Sequence[_Item], Flags], Message], budget: int
) -> Message:
    """`reply` with the items that fit whole in `budget` bytes, OVERFLOW set when some were
    left out (RFC 2608 6.1). The items share one comma-joined string field, so each costs
    its own bytes plus a comma; one that does not fit is skipped rather than ending the
    list, so a long attribute does not hide the short ones after it."""
    empty = len(build_message(reply((), Flags.NONE)))
    kept: list[_Item] = []
    length = -1  # of the joined string, before the first item's comma is dropped
    for item in items:
        try:
            cost = len(build_message(reply((item,), Flags.NONE))) - empty + 1
        except ValueError:  # longer than a 16-bit string length on its own
            continue
        if empty + length + cost <= budget and length + cost <= _MAX_COUNT:
            kept.append(item)
            length += cost
    return reply(kept, Flags.NONE if len(kept) == len(items) else Flags.OVERFLOW)


def _target_address(url: str) -> _TargetAddress | None:
    """host, port and iSCSI name of a service:iscsi:target URL (RFC 4018 5.2)."""
    address = _URL_ADDRESS.search(url)
    iscsi_name = address["path"][1:].split("/")[0] if address and address["path"] else ""
    if address is None or not iscsi_name:
        return None
    port = int(address["port"]) if address["port"] else ISCSI_PORT
    return _TargetAddress(iscsi_name, address["ipv6"] or address["host"], port)


def _target_registration(entry: ServiceEntry, lifetime: int) -> TargetRegistration | None:
    target = _target_address(entry.url)
    if target is None:
        return None  # stored all the same: the DA does not enforce templates
    portal_group = None
    for attribute in entry.attributes:
        value = attribute.values[0] if len(attribute.values) == 1 else None
        if comparison_key(attribute.tag) == "portal-group" and type(value) is int:
            portal_group = value
    return TargetRegistration(
        url=entry.url,
        iscsi_name=target.iscsi_name,
        host=target.host,
        port=target.port,
        portal_group=portal_group,
        scopes=entry.scopes,
        attributes=entry.attributes,
        lifetime=lifetime,
        source=entry.source,
    )


def _no_address_is_local(address: IPAddress) -> bool:
    return False


class DirectoryAgent:
    """One SLP DA. `boot_timestamp` is the DA Stateless Boot Timestamp (RFC 2608 12.1):
    seconds since 1970 at startup, which must grow from one start to the next.
    `is_local` says whether an address is this host's, configured or not: a previous
    responder list naming any of them names us (RFC 2608 8.1)."""

    def __init__(
        self,
        settings: AgentSettings,
        *,
        boot_timestamp: int,
        is_local: Callable[[IPAddress], bool] = _no_address_is_local,
    ) -> None:
        if not 0 < boot_timestamp < 2**32:
            raise ValueError("boot_timestamp must be 1..2**32-1 (0 announces a shutdown)")
        self.settings = settings
        self._boot_timestamp = boot_timestamp
        self._scopes = scope_keys(settings.scopes)
        self._advertised_scopes = settings.scopes
        location = _URL_ADDRESS.search(settings.url)
        own = [location["ipv6"] or location["host"]] if location else []
        self._own_addresses = {
            ip for ip in map(parse_ip, [*own, *settings.addresses]) if ip is not None
        }
        self._is_local = is_local
        self._started = False
        self._configured_scopes = scope_keys(settings.scopes)
        self._updates_taken_as_fresh: set[str] = set()  # SAs already logged for it
        self._directory = Directory(
            max_entries=settings.max_registrations,
            max_entries_per_source=settings.max_registrations_per_source,
        )
        self._buckets = TokenBuckets(settings.rate, settings.burst, settings.max_tracked_sources)
        self.counters = AgentCounters()
        self._next_advert = math.inf
        # Bounded so a caller that never drains cannot make it grow without end.
        self._target_changes: deque[TargetChange] = deque(maxlen=max(1, settings.max_registrations))
        if len(self._unsolicited_advert(boot_timestamp)) > settings.mtu:
            raise ValueError("the DAAdvert does not fit in the MTU (RFC 2608 8.5)")

    @property
    def directory(self) -> Directory:
        return self._directory

    @property
    def scopes(self) -> tuple[str, ...]:
        """The scopes a DAAdvert lists: the configured ones, then as many others as fit."""
        return self._advertised_scopes

    def serve_scopes(self, extra: Iterable[str]) -> None:
        """Serve the configured scopes plus `extra` (the registry's discovery domains).
        A DAAdvert must fit the MTU, so it lists the extra scopes that fit; the rest are
        served all the same, to UAs that name them or fall back to multicast."""
        configured = scope_keys(self.settings.scopes)
        others: dict[str, str] = {}  # comparison key -> the first spelling
        for scope in extra:
            if comparison_key(scope) not in configured:
                others.setdefault(comparison_key(scope), scope)
        self._scopes = configured | frozenset(others)
        listing = _fit_list(
            list(others.values()),
            lambda part, flags: DAAdvert(
                boot_timestamp=self._boot_timestamp,
                url=self.settings.url,
                scopes=self.settings.scopes + tuple(part),
            ),
            self.settings.mtu - _LANGUAGE_ROOM,
        )
        assert isinstance(listing, DAAdvert)
        self._advertised_scopes = listing.scopes

    # Timers

    @property
    def started(self) -> bool:
        return self._started

    def startup(self, now: float) -> Heartbeat:
        """Start answering, with the first unsolicited DAAdvert (RFC 2608 12.2.2)."""
        self._started = True
        self._next_advert = now + self.settings.advert_period
        return Heartbeat([self._unsolicited_advert(self._boot_timestamp)], self._next_advert)

    def tick(self, now: float) -> Heartbeat:
        """Flush expired registrations; multicast a DAAdvert every CONFIG_DA_BEAT."""
        self._directory.expire(now)
        if now < self._next_advert:
            return Heartbeat([], self._next_advert)
        return self.startup(now)

    def shutdown(self) -> list[bytes]:
        """The DAAdvert with a zero timestamp that tells UAs and SAs the DA is going down
        (RFC 2608 12.1)."""
        self._next_advert = math.inf
        return [self._unsolicited_advert(0)]

    # Requests

    def handle(self, data: bytes, source: tuple[str, int], via: Via, now: float) -> list[bytes]:
        if not self._started:
            return []  # the scopes are not known yet; UAs and SAs retransmit
        address = source[0]
        # TCP needs a handshake, so its source cannot be spoofed into a reflection target.
        if via != "tcp" and not self._buckets.allow(address, now):
            self.counters.rate_limited += 1
            return []
        try:
            message = parse_message(data)
        except SlpParseError as error:
            self.counters.requests["invalid"] += 1
            reply = None if via == "multicast" else build_error_reply(error)
            return self._transmit(reply, via)
        self.counters.requests[type(message).__name__] += 1
        request = _Request(
            address=address,
            multicast=via == "multicast" or bool(message.flags & Flags.REQUEST_MCAST),
            budget=MAX_MESSAGE_LENGTH if via == "tcp" else self.settings.mtu,
            now=now,
        )
        answer = self._answer(message, request)
        if answer is None or (request.multicast and _says_nothing(answer)):
            return []
        if answer.flags & Flags.OVERFLOW:
            self.counters.truncated_replies += 1
        return self._transmit(build_message(answer), via)

    @property
    def has_target_changes(self) -> bool:
        """Whether `target_changes` has something to give."""
        return bool(self._target_changes)

    def target_changes(self) -> list[TargetChange]:
        """What SAs did to iSCSI targets since the last call, oldest first: a
        TargetRegistration per accepted SrvReg (refreshes too), a TargetDeregistration
        per accepted SrvDeReg of a whole URL."""
        drained = list(self._target_changes)
        self._target_changes.clear()
        return drained

    # The iSNS bridge's feed

    def put_service(
        self,
        url: str,
        service_type: str,
        scopes: Iterable[str],
        attrs: Iterable[Attribute],
        now: float,
    ) -> None:
        """Advertise a registry object until `remove_service`; no lifetime runs out."""
        wanted = tuple(scopes)
        if not scope_keys(wanted) <= self._scopes:
            raise ValueError(f"scopes {wanted} are not all served by this DA")
        self._directory.put(url, service_type, wanted, tuple(attrs), now)

    def remove_service(self, url: str) -> bool:
        return self._directory.remove(url)

    # Internals

    def _transmit(self, datagram: bytes | None, via: Via) -> list[bytes]:
        # The last word on RFC 2608 6.1 and on amplification: no UDP reply beyond the MTU.
        if datagram is None:
            return []
        if via != "tcp" and len(datagram) > self.settings.mtu:
            self.counters.truncated_replies += 1
            return []
        return [datagram]

    def _answer(self, message: Message, request: _Request) -> Message | None:
        if isinstance(message, SrvRqst | AttrRqst | SrvTypeRqst) and self._responded(
            message.pr_list
        ):
            return None  # RFC 2608 6.3: we are a previous responder
        match message:
            case SrvRqst() if _is(message.service_type, DIRECTORY_AGENT):
                return self._da_discovery(message)
            case SrvRqst():
                return self._service_reply(message, request)
            case SrvReg():
                return self._register(message, request)
            case SrvDeReg():
                return self._deregister(message, request)
            case AttrRqst():
                return self._attribute_reply(message, request)
            case SrvTypeRqst():
                return self._service_type_reply(message, request)
        return None  # replies and other agents' adverts ask for nothing

    def _responded(self, pr_list: tuple[str, ...]) -> bool:
        # RFC 2608 8.1: entries that are not addresses are ignored.
        addresses = [ip for ip in map(parse_ip, pr_list) if ip is not None]
        if any(ip in self._own_addresses for ip in addresses):
            return True
        return any(map(self._is_local, addresses[:_MAX_PROBED_RESPONDERS]))

    def _serves(self, scopes: tuple[str, ...]) -> bool:
        """RFC 2608 11.1: a request must name at least one of our scopes."""
        return not self._scopes.isdisjoint(scope_keys(scopes))

    def _query_refusal(self, scopes: tuple[str, ...], spi: str) -> ErrorCode | None:
        if not self._serves(scopes):
            return ErrorCode.SCOPE_NOT_SUPPORTED
        if spi:  # RFC 2608 8.1, 10.3: this DA holds no SLP SPIs
            return ErrorCode.AUTHENTICATION_UNKNOWN
        return None

    def _advert(self, xid: int, language: str, code: ErrorCode, timestamp: int) -> DAAdvert:
        if code:  # an error reply's URL and lists go out empty
            return DAAdvert(xid=xid, language=language, error_code=code, boot_timestamp=timestamp)
        return DAAdvert(
            xid=xid,
            language=language,
            boot_timestamp=timestamp,
            url=self.settings.url,
            scopes=self._advertised_scopes,
        )

    def _unsolicited_advert(self, timestamp: int) -> bytes:
        # RFC 2608 12.2: unsolicited DAAdverts carry XID 0.
        return build_message(self._advert(0, UNSOLICITED_LANGUAGE, ErrorCode.OK, timestamp))

    def _da_discovery(self, message: SrvRqst) -> DAAdvert | None:
        """RFC 2608 8.5, 12.1: a DAAdvert if the scope list is omitted or names one of ours,
        and only if our (empty) attribute list satisfies the predicate."""
        if message.scopes and not self._serves(message.scopes):
            code = ErrorCode.SCOPE_NOT_SUPPORTED
        elif message.spi:  # RFC 2608 8.5: this DA holds no SLP SPIs
            code = ErrorCode.AUTHENTICATION_UNKNOWN
        elif parse_predicate(message.predicate).matches(()):
            code = ErrorCode.OK
        else:
            return None
        return self._advert(message.xid, message.language, code, self._boot_timestamp)

    def _localized(self, entries: list[ServiceEntry], language: str) -> list[ServiceEntry] | None:
        """The entries in the request's language, dialect aside (RFC 2608 8.1); None when
        there are entries, just none in that language (RFC 2608 7 LANGUAGE_NOT_SUPPORTED)."""
        wanted = _primary_language(language)
        # Stored language tags are comparison keys already.
        found = [entry for entry in entries if entry.key.language.split("-")[0] == wanted]
        return None if entries and not found else found

    def _lifetime(self, entry: ServiceEntry, now: float) -> int:
        if entry.expires is None:
            return self.settings.registry_lifetime
        return math.ceil(entry.expires - now)

    def _service_reply(self, message: SrvRqst, request: _Request) -> Message:
        refusal = self._query_refusal(message.scopes, message.spi)
        if refusal:
            return error_reply(message, refusal)
        predicate = parse_predicate(message.predicate)
        entries = self._directory.by_type(
            message.service_type, scope_keys(message.scopes), request.now, predicate.equalities()
        )
        if predicate.root is not None:  # RFC 2608 8.1: language counts only with a predicate
            localized = self._localized(entries, message.language)
            if localized is None:
                return error_reply(message, ErrorCode.LANGUAGE_NOT_SUPPORTED)
            entries = localized
        lifetimes: dict[str, int] = {}  # one URL entry per URL, the longest lifetime
        for entry in entries:
            if predicate.matches_index(entry.match_index):
                lifetime = self._lifetime(entry, request.now)
                lifetimes[entry.url] = max(lifetime, lifetimes.get(entry.url, 0))
        url_entries = tuple(UrlEntry(url, lifetime) for url, lifetime in lifetimes.items())
        reply = SrvRply(
            xid=message.xid,
            language=message.language,
            flags=Flags.OVERFLOW if len(url_entries) > _MAX_COUNT else Flags.NONE,
            url_entries=url_entries[:_MAX_COUNT],
        )
        return fit_to_budget(reply, request.budget)

    def _attribute_reply(self, message: AttrRqst, request: _Request) -> Message:
        refusal = self._query_refusal(message.scopes, message.spi)
        if refusal:
            return error_reply(message, refusal)
        scopes = scope_keys(message.scopes)
        # RFC 2608 10.3: a full URL, or a service type, which has no address part.
        if service_type_of(message.url) is None:
            entries = self._directory.by_type(message.url, scopes, request.now)
        else:
            entries = self._directory.by_url(message.url, scopes, request.now)
        localized = self._localized(entries, message.language)
        if localized is None:
            return error_reply(message, ErrorCode.LANGUAGE_NOT_SUPPORTED)
        attributes = [
            attribute
            for attribute in merge_attributes(entry.attributes for entry in localized)
            if not message.tag_list
            or any(tag_matches(pattern, attribute.tag) for pattern in message.tag_list)
        ]
        return _fit_list(
            attributes,
            lambda part, flags: AttrRply(
                xid=message.xid,
                language=message.language,
                flags=flags,
                attr_list=format_attr_list(part),
            ),
            request.budget,
        )

    def _service_type_reply(self, message: SrvTypeRqst, request: _Request) -> Message:
        if not self._serves(message.scopes):
            return error_reply(message, ErrorCode.SCOPE_NOT_SUPPORTED)
        service_types = self._directory.service_types(
            scope_keys(message.scopes), message.naming_authority, request.now
        )
        return _fit_list(
            service_types,
            lambda part, flags: SrvTypeRply(
                xid=message.xid, language=message.language, flags=flags, service_types=tuple(part)
            ),
            request.budget,
        )

    def _change_refusal(
        self, scopes: tuple[str, ...], signed: bool, request: _Request
    ) -> ErrorCode | None:
        """Who may change the table. Being on a trusted network stands in for the
        authentication blocks SLP would otherwise need, so anyone else gets
        AUTHENTICATION_ABSENT (RFC 2608 7: authentication expected, none received).
        Multicast is refused too, and `_says_nothing` keeps that refusal unsent."""
        if request.multicast or not self._trusted(request.address):
            return ErrorCode.AUTHENTICATION_ABSENT
        if signed:  # RFC 2608 12.5: blocks for SPIs the DA is not configured with
            return ErrorCode.AUTHENTICATION_UNKNOWN
        # RFC 2608 8.3, 11.1: a registration names scopes, all of them ours.
        if not scopes or not scope_keys(scopes) <= self._scopes:
            return ErrorCode.SCOPE_NOT_SUPPORTED
        return None

    def _trusted(self, address: str) -> bool:
        ip = parse_ip(address)
        return ip is not None and any(ip in network for network in self.settings.trusted_networks)

    def _ack(self, message: SrvReg | SrvDeReg, code: ErrorCode | None = None) -> Message:
        if code:
            return error_reply(message, code)
        return SrvAck(xid=message.xid, language=message.language)

    def _register(self, message: SrvReg, request: _Request) -> Message:
        signed = bool(message.auth_blocks or message.url_entry.auth_blocks)
        refusal = self._change_refusal(message.scopes, signed, request)
        if refusal:
            return self._ack(message, refusal)
        url, is_target = message.url_entry.url, _is(message.service_type, ISCSI_TARGET)
        registration = Registration(
            url=url,
            service_type=message.service_type,
            scopes=message.scopes,
            language=message.language,
            attributes=parse_attr_list(message.attr_list),
            lifetime=message.url_entry.lifetime,
            fresh=self._fresh(message, request),
            source=request.address,
            # A DD's scope lists the DD's members, as the registry says (docs/slp.md).
            listed_scopes=tuple(s for s in message.scopes if self._configured(s))
            if is_target
            else None,
        )
        try:
            entry = self._directory.register(registration, request.now)
        except RegistrationError as error:
            return self._ack(message, error.code)
        if is_target:
            event = _target_registration(entry, registration.lifetime)
            if event is not None:
                self._target_changes.append(event)
        return self._ack(message)

    def _configured(self, scope: str) -> bool:
        return comparison_key(scope) in self._configured_scopes

    def _fresh(self, message: SrvReg, request: _Request) -> bool:
        """FRESH, or an update of a URL never registered here, which OpenSLP's slpd sends
        for its static registrations: taken as a fresh registration where RFC 2608 9.3
        says INVALID_UPDATE, or those services would never reach this DA."""
        if message.flags & Flags.FRESH:
            return True
        url = message.url_entry.url
        if self._directory.holds_registration(url, message.language, request.now):
            return False
        if request.address not in self._updates_taken_as_fresh:
            if len(self._updates_taken_as_fresh) >= self.settings.max_tracked_sources:
                self._updates_taken_as_fresh.clear()
            self._updates_taken_as_fresh.add(request.address)
            log.info(
                "SLP agent %s registers %s with FRESH clear though this DA does not hold it "
                "(OpenSLP does so for static registrations): taken as a fresh registration; "
                "said once per agent",
                request.address,
                url,
            )
        return True

    def _deregister(self, message: SrvDeReg, request: _Request) -> Message:
        signed = bool(message.url_entry.auth_blocks)
        refusal = self._change_refusal(message.scopes, signed, request)
        if refusal:
            return self._ack(message, refusal)
        url = message.url_entry.url
        try:
            held = self._directory.deregister(url, message.scopes, message.tag_list, request.now)
        except RegistrationError as error:
            return self._ack(message, error.code)
        target = _target_address(url) if _is(service_type_of(url) or "", ISCSI_TARGET) else None
        # A URL never registered here is not the SA's to withdraw from iSNS.
        if held and target is not None and not message.tag_list:
            self._target_changes.append(TargetDeregistration(url, *target, request.address))
        return self._ack(message)

"""The directory agent's service table (RFC 2608 8.3, 9.3, 10.6, 12.1), pure and clock-free.

Entries are keyed by (URL, scope set, language). They come either from SLP SrvRegs, which
expire after their lifetime, or from the iSNS registry (source `ISNS_SOURCE`), which last
until the registry removes them and which SLP messages never change: the registry is the
authority for what it feeds. While the registry feeds a URL, SLP registrations of that
URL are held (they still expire, count against the caps and can be deregistered) but
not listed, so a URL shows once, as the registry has it. An SLP registration may also
be listed in fewer scopes than it names (`Registration.listed_scopes`). Indexes by
service type (concrete and abstract, RFC 2608 4.1), scope, URL and string attribute
value keep lookups proportional to what they find, and expiry is a lazy heap, so
nothing is ever a scan of the whole table. Caps bound how many SLP registrations the
network can make us hold, in total and per source address.
"""

import heapq
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from .attributes import Attribute, AttrValue, format_attr_list
from .constants import ErrorCode
from .predicate import AttributeIndex, attribute_index, tag_matches
from .strings import comparison_key, service_type_of

ISNS_SOURCE = "isns"  # the source of entries fed from the iSNS registry
REGISTRY_LANGUAGE = "en"  # iSNS has no language; RFC 4018's templates are in English
_SERVICE_SCHEME = "service:"


class RegistrationError(Exception):
    """A SrvReg or SrvDeReg the table refuses; `code` goes back in the SrvAck."""

    def __init__(self, code: ErrorCode, detail: str) -> None:
        super().__init__(f"{code.name}: {detail}")
        self.code = code


@dataclass(frozen=True, slots=True)
class ServiceKey:
    url: str  # compared case-sensitively (RFC 2608 6.4)
    scopes: frozenset[str]  # comparison keys
    language: str  # comparison key
    registry: bool = False  # fed from the registry: never the key of an SLP registration


@dataclass(frozen=True, slots=True)
class ServiceEntry:
    key: ServiceKey
    service_type: str  # as registered
    scopes: tuple[str, ...]  # as registered
    attributes: tuple[Attribute, ...]
    source: str  # the registering host's address, or ISNS_SOURCE
    expires: float | None  # None: fed from the registry, kept until removed
    listed_in: frozenset[str] | None = None  # scope keys lookups find it in; None: all
    # The attributes folded once for predicate matching (predicate.attribute_index).
    match_index: AttributeIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "match_index", attribute_index(self.attributes))

    @property
    def url(self) -> str:
        return self.key.url

    @property
    def listed_scopes(self) -> frozenset[str]:
        return self.key.scopes if self.listed_in is None else self.listed_in


@dataclass(frozen=True, slots=True)
class Registration:
    """What one SrvReg asks the table to store (RFC 2608 8.3)."""

    url: str
    service_type: str
    scopes: tuple[str, ...]
    language: str
    attributes: tuple[Attribute, ...]
    lifetime: int
    fresh: bool  # FRESH replaces; otherwise an incremental update (RFC 2608 9.3)
    source: str
    listed_scopes: tuple[str, ...] | None = None  # where lookups find it; None: `scopes`


def scope_keys(scopes: Iterable[str]) -> frozenset[str]:
    return frozenset(comparison_key(scope) for scope in scopes)


def type_keys(service_type: str) -> tuple[str, ...]:
    """The request types that select `service_type`: itself and, for a concrete
    "service:abstract:concrete" type, "service:abstract" (RFC 2608 4.1)."""
    key = comparison_key(service_type)
    parts = key.split(":")
    if parts[0] == "service" and len(parts) == 3:
        return key, f"service:{parts[1]}"
    return (key,)


def naming_authority(service_type: str) -> str:
    """RFC 2608 4.1, 4.2: what follows the last `.` of the (abstract) type name; "" is IANA.
    Only service: types carry one; other URL schemes are IANA's."""
    if not service_type.lower().startswith(_SERVICE_SCHEME):
        return ""
    name = service_type[len(_SERVICE_SCHEME) :].split(":")[0]
    return name.rpartition(".")[2] if "." in name else ""


def updated_attributes(
    old: tuple[Attribute, ...], update: tuple[Attribute, ...]
) -> tuple[Attribute, ...]:
    """RFC 2608 9.3: the update's attributes replace those with the same tag, in place;
    the rest of the old ones stay and new tags follow."""
    replacements = {comparison_key(attribute.tag): attribute for attribute in update}
    kept = [replacements.pop(comparison_key(attribute.tag), attribute) for attribute in old]
    return (*kept, *replacements.values())


def _value_key(value: AttrValue) -> AttrValue:
    return comparison_key(value) if isinstance(value, str) else value


def merge_attributes(lists: Iterable[tuple[Attribute, ...]]) -> tuple[Attribute, ...]:
    """RFC 2608 10.4: one copy of each tag and value across registrations, the first
    spelling winning. Values whose type disagrees with the tag's first value, and second
    booleans, are left out so the result stays a consistent <attr-list> (RFC 2608 5)."""
    tags: dict[str, str] = {}
    values: dict[str, dict[AttrValue, AttrValue]] = {}  # tag key -> value key -> value
    for attribute in itertools.chain.from_iterable(lists):
        key = comparison_key(attribute.tag)
        tags.setdefault(key, attribute.tag)
        merged = values.setdefault(key, {})
        for value in attribute.values:
            first = next(iter(merged.values()), None)
            if first is not None and (type(value) is not type(first) or isinstance(value, bool)):
                continue
            merged.setdefault(_value_key(value), value)
    return tuple(Attribute(tags[key], tuple(merged.values())) for key, merged in values.items())


class Directory:
    """The service table. Every method that reads or changes it first flushes the
    registrations whose lifetime has run out by `now` (RFC 2608 12.1)."""

    def __init__(self, *, max_entries: int, max_entries_per_source: int) -> None:
        self._max_entries = max_entries  # SLP registrations; registry-fed ones are not capped
        self._max_entries_per_source = max_entries_per_source
        self._entries: dict[ServiceKey, ServiceEntry] = {}
        self._by_type: dict[str, set[ServiceKey]] = {}
        self._by_scope: dict[str, set[ServiceKey]] = {}
        self._by_url: dict[str, set[ServiceKey]] = {}  # listed entries
        self._held_by_url: dict[str, set[ServiceKey]] = {}  # every entry, listed or not
        self._by_value: dict[str, set[ServiceKey]] = {}  # "tag=value", comparison keys
        self._per_source: Counter[str] = Counter()
        # (expiry, tie-breaker, key); stale items are skipped when they reach the top.
        self._expiries: list[tuple[float, int, ServiceKey]] = []
        self._sequence = itertools.count()

    def __len__(self) -> int:
        return len(self._entries)

    def registered_from(self, source: str) -> int:
        return self._per_source[source]

    def holds_registration(self, url: str, language: str, now: float) -> bool:
        """Whether an SLP registration of `url` in `language` is held, listed or not."""
        self.expire(now)
        wanted = comparison_key(language)
        return any(entry.key.language == wanted for entry in self._slp_entries(url))

    # Changes from SLP

    def register(self, registration: Registration, now: float) -> ServiceEntry:
        """Store a SrvReg; returns the entry now in the table. Raises RegistrationError."""
        self.expire(now)
        key = ServiceKey(
            registration.url,
            scope_keys(registration.scopes),
            comparison_key(registration.language),
        )
        # Our SLP entries for this URL and language: at most one, as FRESH replaces every
        # scope set and an update keeps its own.
        previous = [
            entry
            for entry in self._slp_entries(registration.url)
            if entry.key.language == key.language
        ]
        attributes = registration.attributes
        if not registration.fresh:
            if not previous:
                raise RegistrationError(ErrorCode.INVALID_UPDATE, "update of an unregistered URL")
            prior = previous[0]
            if prior.key.scopes != key.scopes:
                raise RegistrationError(ErrorCode.SCOPE_NOT_SUPPORTED, "update changes scopes")
            if comparison_key(prior.service_type) != comparison_key(registration.service_type):
                raise RegistrationError(ErrorCode.INVALID_UPDATE, "update changes service type")
            attributes = updated_attributes(prior.attributes, attributes)
        self._check_room(registration.source, previous)
        for entry in previous:
            self._delete(entry.key)
        entry = ServiceEntry(
            key,
            registration.service_type,
            registration.scopes,
            attributes,
            registration.source,
            now + registration.lifetime,
            None if registration.listed_scopes is None else scope_keys(registration.listed_scopes),
        )
        self._insert(entry)
        return entry

    def deregister(
        self, url: str, scopes: Iterable[str], tags: tuple[str, ...], now: float
    ) -> bool:
        """RFC 2608 10.6: drop the URL in every language, or only the attributes whose
        tags match `tags`; False when no SLP registration of the URL was held. An unknown
        URL is not an error: the SA may be retrying a SrvDeReg whose SrvAck was lost
        (RFC 2608 6.3)."""
        self.expire(now)
        entries = list(self._slp_entries(url))
        wanted = scope_keys(scopes)
        if any(entry.key.scopes != wanted for entry in entries):
            raise RegistrationError(ErrorCode.SCOPE_NOT_SUPPORTED, "scopes differ from the SrvReg")
        for entry in entries:
            self._delete(entry.key)
            if tags:
                kept = tuple(
                    attribute
                    for attribute in entry.attributes
                    if not any(tag_matches(pattern, attribute.tag) for pattern in tags)
                )
                self._insert(replace(entry, attributes=kept))
        return bool(entries)

    # Changes from the iSNS registry

    def put(
        self,
        url: str,
        service_type: str,
        scopes: tuple[str, ...],
        attributes: tuple[Attribute, ...],
        now: float,
    ) -> ServiceEntry:
        """Set the registry's entry for `url`, replacing what the registry fed before;
        SLP registrations of the URL stay held but are no longer listed. ValueError for
        what SLP cannot carry, so a bad feed fails here rather than in a reply."""
        if service_type_of(url) is None:
            raise ValueError(f"{url!r} is not a service URL with an address")
        if not scopes:
            raise ValueError("a service needs at least one scope")
        format_attr_list(attributes)
        self.expire(now)
        self.remove(url)
        key = ServiceKey(url, scope_keys(scopes), REGISTRY_LANGUAGE, registry=True)
        for held in self._slp_entries(url):
            self._unindex(held)
        entry = ServiceEntry(key, service_type, scopes, attributes, ISNS_SOURCE, None)
        self._insert(entry)
        return entry

    def remove(self, url: str) -> bool:
        """Drop the registry's entries for `url`, listing the SLP registrations of it
        again; False if there were none."""
        keys = [key for key in self._held_by_url.get(url, ()) if self._is_registry(key)]
        for key in keys:
            self._delete(key)
        if keys:
            for held in self._slp_entries(url):
                self._index(held)
        return bool(keys)

    # Lookups

    def by_type(
        self,
        service_type: str,
        scopes: frozenset[str],
        now: float,
        equalities: Iterable[tuple[str, str]] = (),
    ) -> list[ServiceEntry]:
        """Entries of `service_type` (or of its concrete types) in any of `scopes`; with
        `equalities` (Predicate.equalities), only those holding each (tag, value)."""
        self.expire(now)
        keys = self._by_type.get(comparison_key(service_type), set())
        for tag, value in equalities:
            keys = keys & self._by_value.get(f"{tag}={value}", set())
        return self._in_scopes(keys, scopes)

    def by_url(self, url: str, scopes: frozenset[str], now: float) -> list[ServiceEntry]:
        self.expire(now)
        return self._in_scopes(self._by_url.get(url, set()), scopes)

    def service_types(self, scopes: frozenset[str], authority: str | None, now: float) -> list[str]:
        """RFC 2608 10.1: the registered types in `scopes`; `authority` None means every
        naming authority, "" only IANA's."""
        self.expire(now)
        keys: set[ServiceKey] = set().union(*(self._by_scope.get(scope, ()) for scope in scopes))
        wanted = None if authority is None else comparison_key(authority)
        found: dict[str, str] = {}
        for service_type in sorted(self._entries[key].service_type for key in keys):
            if wanted is None or comparison_key(naming_authority(service_type)) == wanted:
                found.setdefault(comparison_key(service_type), service_type)
        return list(found.values())

    def expire(self, now: float) -> None:
        while self._expiries and self._expiries[0][0] <= now:
            expires, _, key = heapq.heappop(self._expiries)
            entry = self._entries.get(key)
            if entry is not None and entry.expires == expires:
                self._delete(key)

    # Internals

    def _is_registry(self, key: ServiceKey) -> bool:
        return key.registry

    def _slp_entries(self, url: str) -> Iterator[ServiceEntry]:
        for key in list(self._held_by_url.get(url, ())):
            if not self._is_registry(key):
                yield self._entries[key]

    def _in_scopes(self, keys: set[ServiceKey], scopes: frozenset[str]) -> list[ServiceEntry]:
        # Set intersection walks the smaller side: cost follows the matches, not the table.
        found: set[ServiceKey] = set().union(
            *(keys & self._by_scope.get(scope, set()) for scope in scopes)
        )
        return sorted(
            (self._entries[key] for key in found),
            key=lambda entry: (entry.key.url, entry.key.language, sorted(entry.key.scopes)),
        )

    def _check_room(self, source: str, replaced: list[ServiceEntry]) -> None:
        """DA_BUSY_NOW when full: the SA backs off and retries (RFC 2608 7) while lifetimes
        run out and make room."""
        registered = len(self._entries) - self._per_source[ISNS_SOURCE] - len(replaced)
        own = self._per_source[source] - sum(entry.source == source for entry in replaced)
        if registered >= self._max_entries:
            raise RegistrationError(ErrorCode.DA_BUSY_NOW, "registration table is full")
        if own >= self._max_entries_per_source:
            raise RegistrationError(ErrorCode.DA_BUSY_NOW, f"{source} holds too many")

    def _listed(self, entry: ServiceEntry) -> bool:
        """Registry entries always are; SLP ones unless the registry feeds their URL."""
        if entry.key.registry:
            return True
        return not any(self._is_registry(key) for key in self._held_by_url.get(entry.url, ()))

    def _indexes(self, entry: ServiceEntry) -> Iterator[tuple[dict[str, set[ServiceKey]], str]]:
        for service_type in type_keys(entry.service_type):
            yield self._by_type, service_type
        for scope in entry.listed_scopes:
            yield self._by_scope, scope
        yield self._by_url, entry.key.url
        for tag, values in entry.match_index.items():
            # `=` is reserved in tags (RFC 2608 5), so "tag=value" is unambiguous.
            for value in {v for v in values if isinstance(v, str)}:
                yield self._by_value, f"{tag}={value}"

    def _index(self, entry: ServiceEntry) -> None:
        for index, value in self._indexes(entry):
            index.setdefault(value, set()).add(entry.key)

    def _unindex(self, entry: ServiceEntry) -> None:
        for index, value in self._indexes(entry):
            keys = index.get(value)
            if keys is not None:
                keys.discard(entry.key)
                if not keys:
                    del index[value]

    def _insert(self, entry: ServiceEntry) -> None:
        self._entries[entry.key] = entry
        self._held_by_url.setdefault(entry.url, set()).add(entry.key)
        if self._listed(entry):
            self._index(entry)
        self._per_source[entry.source] += 1
        if entry.expires is not None:
            heapq.heappush(self._expiries, (entry.expires, next(self._sequence), entry.key))
            # Refreshes leave stale items behind; rebuild before they outnumber the live.
            if len(self._expiries) > 2 * len(self._entries) + 64:
                self._expiries = [
                    (live.expires, next(self._sequence), live.key)
                    for live in self._entries.values()
                    if live.expires is not None
                ]
                heapq.heapify(self._expiries)

    def _delete(self, key: ServiceKey) -> None:
        entry = self._entries.pop(key)
        self._unindex(entry)
        held = self._held_by_url[entry.url]
        held.discard(key)
        if not held:
            del self._held_by_url[entry.url]
        self._per_source[entry.source] -= 1
        if not self._per_source[entry.source]:
            del self._per_source[entry.source]

"""The DA's service table: keys, indexes, RFC 2608 9.3 updates, expiry, caps, registry feed."""

import dataclasses

import pytest

from discovery_agent.slp.attributes import Attribute, parse_attr_list
from discovery_agent.slp.constants import ErrorCode
from discovery_agent.slp.directory import (
    ISNS_SOURCE,
    Directory,
    Registration,
    RegistrationError,
    merge_attributes,
    naming_authority,
    scope_keys,
    type_keys,
    updated_attributes,
)

SA = "10.0.0.5"
DEFAULT = scope_keys(["DEFAULT"])
TARGET = "service:iscsi:target"


def url(n: int) -> str:
    return f"service:iscsi:target://192.0.2.3:3260/iqn.2001-04.com.example:sn.{n}"


def registration(
    target: str,
    attrs: str = "",
    *,
    service_type: str = TARGET,
    scopes: tuple[str, ...] = ("DEFAULT",),
    language: str = "en",
    lifetime: int = 300,
    fresh: bool = True,
    source: str = SA,
) -> Registration:
    return Registration(
        url=target,
        service_type=service_type,
        scopes=scopes,
        language=language,
        attributes=parse_attr_list(attrs),
        lifetime=lifetime,
        fresh=fresh,
        source=source,
    )


def urls(directory: Directory, service_type: str, scopes: frozenset[str] = DEFAULT) -> list[str]:
    return [entry.url for entry in directory.by_type(service_type, scopes, 0)]


@pytest.fixture
def directory() -> Directory:
    return Directory(max_entries=100, max_entries_per_source=10)


def test_type_keys_and_naming_authorities() -> None:
    assert type_keys("Service:iSCSI:Target") == ("service:iscsi:target", "service:iscsi")
    assert type_keys("service:tftp") == ("service:tftp",)
    assert type_keys("http") == ("http",)
    assert naming_authority("service:x.acme:y") == "acme"  # RFC 2608 4.1
    assert naming_authority("service:x.acme") == "acme"
    assert naming_authority("service:iscsi:target") == ""
    assert naming_authority("http") == ""


def test_lookup_by_concrete_and_abstract_type_within_scopes(directory: Directory) -> None:
    directory.register(registration(url(1)), 0)
    directory.register(registration(url(2), scopes=("lab",)), 0)
    directory.register(
        registration("service:iscsi:sms://192.0.2.9", service_type="service:iscsi:sms"), 0
    )
    assert urls(directory, TARGET) == [url(1)]
    assert urls(directory, "SERVICE:ISCSI:TARGET", scope_keys(["Lab"])) == [url(2)]
    assert urls(directory, "service:iscsi") == ["service:iscsi:sms://192.0.2.9", url(1)]
    assert urls(directory, "service:iscsi:target:extra") == []
    assert [e.url for e in directory.by_url(url(2), scope_keys(["lab", "DEFAULT"]), 0)] == [url(2)]
    assert directory.by_url(url(2), DEFAULT, 0) == []


def test_incremental_update_rfc_2608_9_3_example(directory: Directory) -> None:
    directory.register(registration(url(1), "(A=1),(B=2),(C=3)"), 0)
    entry = directory.register(registration(url(1), "(C=30),(D=40)", fresh=False), 1)
    assert entry.attributes == parse_attr_list("(A=1),(B=2),(C=30),(D=40)")
    assert entry.expires == 301  # an update refreshes the lifetime too


def test_fresh_replaces_entirely_even_across_scope_sets() -> None:
    directory = Directory(max_entries=100, max_entries_per_source=10)
    directory.register(registration(url(1), "(a=1)", scopes=("DEFAULT",)), 0)
    directory.register(registration(url(1), "(b=2)", scopes=("lab",)), 0)  # RFC 2608 8.3
    assert urls(directory, TARGET) == []
    (entry,) = directory.by_type(TARGET, scope_keys(["lab"]), 0)
    assert entry.attributes == parse_attr_list("(b=2)")
    assert len(directory) == 1


@pytest.mark.parametrize(
    ("update", "code"),
    [
        (registration(url(2), fresh=False), ErrorCode.INVALID_UPDATE),  # nothing to update
        (registration(url(1), fresh=False, scopes=("lab",)), ErrorCode.SCOPE_NOT_SUPPORTED),
        (
            registration(url(1), fresh=False, service_type="service:iscsi:sms"),
            ErrorCode.INVALID_UPDATE,
        ),
        (registration(url(1), fresh=False, language="de"), ErrorCode.INVALID_UPDATE),
    ],
)
def test_bad_incremental_updates(
    directory: Directory, update: Registration, code: ErrorCode
) -> None:
    directory.register(registration(url(1), "(a=1)"), 0)
    with pytest.raises(RegistrationError) as raised:
        directory.register(update, 1)
    assert raised.value.code == code
    (entry,) = directory.by_type(TARGET, DEFAULT, 1)
    assert entry.attributes == parse_attr_list("(a=1)")


def test_languages_are_separate_registrations(directory: Directory) -> None:
    directory.register(registration(url(1), "(x=en)"), 0)
    directory.register(registration(url(1), "(x=de)", language="DE"), 0)
    assert [e.key.language for e in directory.by_url(url(1), DEFAULT, 0)] == ["de", "en"]


def test_lifetime_expiry_and_refresh(directory: Directory) -> None:
    directory.register(registration(url(1), lifetime=60), 0)
    directory.register(registration(url(2), lifetime=60), 0)
    directory.register(registration(url(2), lifetime=60), 30)  # refreshed
    assert urls(directory, TARGET, DEFAULT) == [url(1), url(2)]
    assert [e.url for e in directory.by_type(TARGET, DEFAULT, 60)] == [url(2)]
    assert directory.by_type(TARGET, DEFAULT, 90) == []
    assert len(directory) == 0 and directory.registered_from(SA) == 0


def test_refreshes_do_not_grow_the_expiry_heap(directory: Directory) -> None:
    for second in range(5000):
        directory.register(registration(url(1)), second)
    assert len(directory._expiries) <= 2 * len(directory) + 64


def test_deregister_whole_url_or_tags(directory: Directory) -> None:
    directory.register(registration(url(1), "(auth-name=any),(alias=disk),(portal-group=1)"), 0)
    directory.register(registration(url(1), "(alias=Platte)", language="de"), 0)
    directory.deregister(url(1), ["default"], ("auth-*", "ALIAS"), 1)  # RFC 2608 9.4 filters
    assert [e.attributes for e in directory.by_url(url(1), DEFAULT, 1)] == [
        (),
        parse_attr_list("(portal-group=1)"),
    ]
    with pytest.raises(RegistrationError) as raised:
        directory.deregister(url(1), ["DEFAULT", "lab"], (), 1)
    assert raised.value.code == ErrorCode.SCOPE_NOT_SUPPORTED
    directory.deregister(url(1), ["DEFAULT"], (), 1)  # every language (RFC 2608 10.6)
    assert len(directory) == 0
    directory.deregister(url(1), ["DEFAULT"], (), 1)  # a retransmission is fine


def test_caps_per_source_and_total() -> None:
    directory = Directory(max_entries=5, max_entries_per_source=3)
    for n in range(3):
        directory.register(registration(url(n)), 0)
    directory.register(registration(url(0), "(a=1)"), 0)  # a refresh needs no room
    with pytest.raises(RegistrationError) as raised:
        directory.register(registration(url(3)), 0)
    assert raised.value.code == ErrorCode.DA_BUSY_NOW
    directory.register(registration(url(3), source="10.0.0.6"), 0)
    directory.register(registration(url(4), source="10.0.0.7"), 0)
    with pytest.raises(RegistrationError):
        directory.register(registration(url(5), source="10.0.0.8"), 0)
    directory.put(url(6), TARGET, ("DEFAULT",), (), 0)  # the registry feed is not capped
    assert len(directory) == 6
    assert directory.by_type(TARGET, DEFAULT, 301) != []  # lifetimes free the room again
    directory.register(registration(url(5), source="10.0.0.8"), 301)


def test_a_url_the_registry_feeds_is_listed_once_as_the_registry_has_it(
    directory: Directory,
) -> None:
    attrs = (Attribute("iscsi-name", ("iqn.2001-04.com.example:sn.1",)),)
    directory.register(registration(url(1), "(from=slp)", scopes=("lab",)), 0)
    directory.put(url(1), TARGET, ("DEFAULT",), attrs, 1)
    directory.register(registration(url(1), "(from=slp)"), 2)  # a refresh, in other scopes
    everywhere = scope_keys(["DEFAULT", "lab"])
    (entry,) = directory.by_url(url(1), everywhere, 10)  # not in "lab" (issue 11 item 3)
    assert entry.source == ISNS_SOURCE and entry.attributes == attrs
    assert [e.url for e in directory.by_type(TARGET, everywhere, 10)] == [url(1)]
    # Held all the same: it still expires, and a SrvDeReg knows it.
    assert directory.holds_registration(url(1), "EN", 10) and len(directory) == 2
    assert directory.deregister(url(1), ["DEFAULT"], (), 3)
    assert not directory.deregister(url(1), ["DEFAULT"], (), 3)  # never held (now)
    assert not directory.holds_registration(url(1), "en", 3)
    (entry,) = directory.by_type(TARGET, DEFAULT, 10**9)
    assert entry.expires is None and entry.attributes == attrs
    assert directory.remove(url(1)) and not directory.remove(url(1))
    assert len(directory) == 0


def test_slp_registrations_come_back_when_the_registry_drops_the_url(
    directory: Directory,
) -> None:
    directory.register(registration(url(1), "(from=slp)"), 0)
    directory.put(url(1), TARGET, ("DEFAULT",), (), 1)
    assert [e.source for e in directory.by_url(url(1), DEFAULT, 2)] == [ISNS_SOURCE]
    directory.remove(url(1))
    assert [e.source for e in directory.by_url(url(1), DEFAULT, 2)] == [SA]
    assert urls(directory, TARGET) == [url(1)]
    assert directory.by_url(url(1), DEFAULT, 301) == []  # its lifetime ran on meanwhile


def test_a_registration_can_be_listed_in_fewer_scopes_than_it_names(
    directory: Directory,
) -> None:
    named = registration(url(1), scopes=("DEFAULT", "dd-prod"))
    listed = dataclasses.replace(named, listed_scopes=("DEFAULT",))
    directory.register(listed, 0)
    assert urls(directory, TARGET, scope_keys(["dd-prod"])) == []
    assert urls(directory, TARGET) == [url(1)]
    # The key is what it named: a SrvDeReg names the same scopes (RFC 2608 10.6).
    assert directory.deregister(url(1), ["DEFAULT", "dd-prod"], (), 1)
    assert len(directory) == 0


def test_put_replaces_the_registry_view_of_a_url(directory: Directory) -> None:
    directory.put(url(1), TARGET, ("DEFAULT",), (), 0)
    directory.put(url(1), TARGET, ("lab",), (), 0)
    assert [e.key.scopes for e in directory.by_url(url(1), scope_keys(["DEFAULT", "lab"]), 0)] == [
        frozenset({"lab"})
    ]


@pytest.mark.parametrize(
    ("target", "scopes", "attrs"),
    [
        ("iqn.2001-04.com.example:sn.1", ("DEFAULT",), ()),  # no service URL
        (url(1), (), ()),
        (url(1), ("DEFAULT",), (Attribute("x", (1, "one")),)),  # mixed types
    ],
)
def test_put_refuses_what_slp_cannot_carry(
    directory: Directory, target: str, scopes: tuple[str, ...], attrs: tuple[Attribute, ...]
) -> None:
    with pytest.raises(ValueError):
        directory.put(target, TARGET, scopes, attrs, 0)
    assert len(directory) == 0


def test_service_types_by_naming_authority(directory: Directory) -> None:
    directory.register(registration(url(1)), 0)
    directory.register(registration(url(2), service_type="Service:iSCSI:Target"), 0)
    directory.register(registration("service:x.acme:y://h", service_type="service:x.acme:y"), 0)
    directory.register(registration("http://h/", service_type="http", scopes=("lab",)), 0)
    assert directory.service_types(DEFAULT, None, 0) == [
        "Service:iSCSI:Target",
        "service:x.acme:y",
    ]
    assert directory.service_types(DEFAULT, "", 0) == ["Service:iSCSI:Target"]
    assert directory.service_types(DEFAULT, "ACME", 0) == ["service:x.acme:y"]
    assert directory.service_types(scope_keys(["lab"]), "", 0) == ["http"]


def test_updated_attributes_keeps_order() -> None:
    old = parse_attr_list("(a=1),b,(c=3)")
    assert updated_attributes(old, parse_attr_list("(B=2),(d=4)")) == parse_attr_list(
        "(a=1),(B=2),(c=3),(d=4)"
    )


def test_merge_attributes_rfc_2608_10_4() -> None:
    merged = merge_attributes(
        [
            parse_attr_list("(A=a a,b),(n=1),flag,(t=true)"),
            parse_attr_list("(a=A   A,B),(n=2),(flag=on),(t=false)"),
            parse_attr_list("(n=x)"),
        ]
    )
    # One copy per tag and value, first spelling; values of another type are left out.
    assert merged == parse_attr_list("(A=a a,b),(n=1,2),(flag=on),(t=true)")

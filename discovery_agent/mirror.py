"""The registry as SLP services (RFC 4018 5.2, 5.3), kept current in the directory agent.

Every iSCSI target appears once per TCP portal that reaches it, as
`service:iscsi:target://host:port/iscsi-name`; the iSNS server as `service:iscsi:sms`
with protocols=isns. A target's scopes are the configured ones plus the name of each
enabled DD holding it, so `findsrvs` in a DD's scope lists that DD's targets; its
auth-name lists the initiators of those DDs ("any" for a target in no DD), so a UA can
ask for exactly the targets it may log in to (RFC 4018 4.1.1). Pure: `now` is passed in.
"""

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address, ip_address

from .catalog import Catalog, Domain, Node
from .slp.agent import ISCSI_TARGET, DirectoryAgent
from .slp.attributes import Attribute, AttrValue
from .slp.strings import comparison_key

log = logging.getLogger(__name__)

ISCSI_SMS = "service:iscsi:sms"  # RFC 4018 5.3
ANY = "any"  # RFC 4018 5.2: auth-name when no specific initiator name is required


@dataclass(frozen=True, slots=True)
class Service:
    url: str
    service_type: str
    scopes: tuple[str, ...]
    attributes: tuple[Attribute, ...]


def host_text(host: str) -> str:
    """A host as a service URL writes it: IPv6 literals in brackets (RFC 4018 5.2)."""
    try:
        is_ipv6 = isinstance(ip_address(host), IPv6Address)
    except ValueError:
        is_ipv6 = False  # a host name
    return f"[{host}]" if is_ipv6 else host


def _merge_scopes(*groups: Iterable[str]) -> tuple[str, ...]:
    """The scopes in order, once each by their comparison key (RFC 2608 6.4)."""
    merged: dict[str, str] = {}
    for scope in (scope for group in groups for scope in group):
        merged.setdefault(comparison_key(scope), scope)
    return tuple(merged.values())


def _attribute(tag: str, *values: AttrValue) -> Attribute:
    return Attribute(tag, values)


def target_services(node: Node, catalog: Catalog, scopes: Sequence[str]) -> dict[str, Service]:
    """The service:iscsi:target entries for `node`, by URL; none for a non-target."""
    if not node.is_target:
        return {}
    domains = [d.name for d in catalog.domains_of(node.name) if d.enabled and d.name]
    access = catalog.access_names(node.name)
    common = [_attribute("iscsi-name", node.name), _attribute("transports", "tcp")]
    if node.alias:
        common.append(_attribute("alias", node.alias))
    if node.management_address is not None:
        common.append(_attribute("mgmt-entity", str(node.management_address)))
    if access is None or access:
        common.append(_attribute("auth-name", *(access or (ANY,))))
    services = {}
    for portal in node.portals:
        url = f"{ISCSI_TARGET}://{host_text(str(portal.address))}:{portal.port}/{node.name}"
        attributes = (common[0], _attribute("portal-group", portal.group_tag), *common[1:])
        services[url] = Service(url, ISCSI_TARGET, _merge_scopes(scopes, domains), attributes)
    return services


def sms_service(host: str, port: int, scopes: Sequence[str]) -> Service:
    """The iSNS server as a storage management service (RFC 4018 5.3)."""
    return Service(
        f"{ISCSI_SMS}://{host_text(host)}:{port}",
        ISCSI_SMS,
        tuple(scopes),
        (_attribute("protocols", "isns"), _attribute("transports", "tcp", "udp")),
    )


class RegistryMirror:
    """Publishes the catalog into a DirectoryAgent and keeps it there: after each change
    only the services that differ are put or removed."""

    def __init__(
        self, agent: DirectoryAgent, sms_endpoints: Sequence[tuple[str, int]], now: float
    ) -> None:
        self.agent = agent
        self.catalog = Catalog()
        self._sms_endpoints = tuple(sms_endpoints)
        self._scopes: tuple[str, ...] = ()
        self._published: dict[str, dict[str, Service]] = {}  # owner -> URL -> service
        self._refresh_scopes(now)

    def reload(self, nodes: Iterable[Node], domains: Iterable[Domain], now: float) -> None:
        """Replace everything with a fresh read of the registry."""
        before = set(self._published) - {""}
        self.catalog = Catalog()
        for node in nodes:
            self.catalog.put_node(node)
        for domain in domains:
            self.catalog.put_domain(domain)
        self._refresh_scopes(now)
        self._republish(before | set(self.catalog.nodes), now)

    def update(
        self,
        nodes: Mapping[str, Node | None],
        domains: Mapping[int, Domain | None],
        now: float,
    ) -> None:
        """Apply re-read nodes and DDs (None: gone from the registry)."""
        catalog = self.catalog
        affected = catalog.neighbours(nodes)
        for domain_id, domain in domains.items():
            old = catalog.domains.get(domain_id)
            affected |= old.members if old else frozenset()
            affected |= domain.members if domain else frozenset()
            if domain is None:
                catalog.remove_domain(domain_id)
            else:
                catalog.put_domain(domain)
        for name, node in nodes.items():
            if node is None:
                catalog.remove_node(name)
            else:
                catalog.put_node(node)
        affected |= catalog.neighbours(nodes)
        if domains:
            self._refresh_scopes(now)
        self._republish(affected, now)

    def _refresh_scopes(self, now: float) -> None:
        scopes = _merge_scopes(self.agent.settings.scopes, self.catalog.scope_names())
        if scopes == self._scopes:
            return
        self._scopes = scopes
        self.agent.serve_scopes(scopes)
        sms = [sms_service(host, port, scopes) for host, port in self._sms_endpoints]
        self._publish("", {service.url: service for service in sms}, now)  # "": the server

    def _republish(self, names: Iterable[str], now: float) -> None:
        configured = self.agent.settings.scopes
        for name in names:
            node = self.catalog.nodes.get(name)
            wanted = target_services(node, self.catalog, configured) if node else {}
            self._publish(name, wanted, now)

    def _publish(self, owner: str, wanted: dict[str, Service], now: float) -> None:
        old = self._published.pop(owner, {})
        for url in old.keys() - wanted.keys():
            self.agent.remove_service(url)
        kept: dict[str, Service] = {}
        for url, service in wanted.items():
            if old.get(url) == service:
                kept[url] = service
                continue
            try:
                self.agent.put_service(
                    url, service.service_type, service.scopes, service.attributes, now
                )
            except ValueError as exc:  # something SLP cannot carry; the rest still shows
                log.warning("not advertising %s over SLP: %s", url, exc)
                self.agent.remove_service(url)
                continue
            kept[url] = service
        if kept:
            self._published[owner] = kept

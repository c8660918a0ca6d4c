"""Registry objects as the API's JSON: plain dicts, built on demand from the live objects
(nothing is copied ahead of a request)."""

from functools import lru_cache
from typing import Any

from ..isnsp.constants import DDSetStatus, NodeType, ScnBitmap
from ..isnsp.messages import IPAddress, PortNumber, address_text
from ..registry.database import Database
from ..registry.insight import Explanation, Preview, Reason
from ..registry.objects import (
    DiscoveryDomain,
    DiscoveryDomainSet,
    NetworkEntity,
    Portal,
    PortalGroup,
    PortalKey,
    StorageNode,
    portal_address,
)
from ..registry.registry import Registry

Json = dict[str, Any]


@lru_cache(maxsize=1024)
def _flag_names(value: int, flags: type[NodeType] | type[ScnBitmap]) -> tuple[str, ...]:
    return tuple(f.name.lower() for f in flags if f.value and f.name and value & f.value)


def flag_names(value: int | None, flags: type[NodeType] | type[ScnBitmap]) -> list[str]:
    """["target", "initiator"] from a Node Type; the same for an SCN Bitmap."""
    return list(_flag_names(value, flags)) if value else []


@lru_cache(maxsize=65536)  # pages of nodes repeat their entities' portals
def portal_text(ip: IPAddress, port: PortNumber) -> str:
    """`10.0.0.1:3260/tcp`, `[fe80::1]:3260/udp`: what the API reads back as a member."""
    return address_text(ip, port)


def portal_key_text(key: PortalKey) -> str:
    return portal_text(*portal_address(key))


def entity_view(registry: Registry, entity: NetworkEntity) -> Json:
    return {
        "eid": entity.eid,
        "index": entity.index,
        "protocol": entity.protocol,
        "management_ip": None if entity.mgmt_ip is None else str(entity.mgmt_ip),
        "timestamp": entity.timestamp,
        "registration_period": entity.registration_period,
        "expires_at": registry.liveness.expires_at(entity.eid),
        "portals": [portal_text(p.ip, p.port) for p in entity.portals.values()],
        "nodes": list(entity.nodes),
    }


def portal_view(registry: Registry, portal: Portal) -> Json:
    esi = registry.liveness.esi_state(portal.key)
    return {
        "address": portal_text(portal.ip, portal.port),
        "index": portal.index,
        "entity": portal.entity.eid,
        "symbolic_name": portal.symbolic_name,
        "esi_interval": portal.esi_interval,
        "esi_port": None if portal.esi_port is None else str(portal.esi_port),
        "scn_port": None if portal.scn_port is None else str(portal.scn_port),
        "esi": None if esi is None else {"last_answer": esi[0], "unanswered": esi[1]},
    }


def node_view(registry: Registry, node: StorageNode) -> Json:
    db = registry.db
    entity = node.entity
    return {
        "name": node.name,
        "index": node.index,
        "type": flag_names(node.node_type, NodeType),
        "alias": node.alias,
        "entity": entity.eid,
        "portals": [portal_text(p.ip, p.port) for p in entity.portals.values()],
        "dds": sorted(db.node_domains.get(node.name, ())),
        "scn_bitmap": flag_names(node.scn_bitmap, ScnBitmap),
        "registration_expires_at": registry.liveness.expires_at(entity.eid),
        "esi_monitored": any(p.esi_interval for p in entity.portals.values()),
    }


def portal_group_view(pg: PortalGroup) -> Json:
    return {
        "node": pg.node_name,
        "portal": portal_text(pg.portal_ip, pg.portal_port),
        "tag": pg.tag,
        "index": pg.index,
        "entity": pg.entity.eid,
    }


def dd_view(db: Database, dd: DiscoveryDomain) -> Json:
    return {
        "id": dd.id,
        "name": dd.name,
        "features": dd.features,
        "enabled": db.dd_active(dd.id),
        "members": [*dd.nodes, *(portal_key_text(k) for k in dd.portals)],
        "dd_sets": sorted(db.dd_sets.get(dd.id, ())),
    }


def dds_view(dds: DiscoveryDomainSet) -> Json:
    return {
        "id": dds.id,
        "name": dds.name,
        "enabled": bool(dds.status & DDSetStatus.ENABLED),
        "dds": sorted(dds.dds),
    }


def subscription_view(node: StorageNode) -> Json:
    return {
        "node": node.name,
        "scn_bitmap": flag_names(node.scn_bitmap, ScnBitmap),
        "scn_ports": [
            portal_text(p.ip, p.scn_port) for p in node.entity.portals.values() if p.scn_port
        ],
    }


def _reason_view(reason: Reason) -> Json:
    return {
        "kind": reason.kind,
        "dd_id": reason.dd_id,
        "dd_name": reason.dd_name,
        "dd_sets": list(reason.dd_sets),
    }


def explanation_view(explanation: Explanation) -> Json:
    return {
        "initiator": explanation.initiator,
        "target": explanation.target,
        "visible": explanation.visible,
        "target_registered": explanation.target_registered,
        "reasons": [_reason_view(r) for r in explanation.reasons],
        "disabled_dds": [_reason_view(r) for r in explanation.disabled_domains],
    }


def _pairs(pairs: tuple[tuple[str, str], ...]) -> list[Json]:
    return [{"initiator": i, "target": t} for i, t in pairs]


def preview_view(preview: Preview) -> Json:
    return {
        "added": _pairs(preview.added),
        "removed": _pairs(preview.removed),
        "added_count": preview.added_count,
        "removed_count": preview.removed_count,
        "sessions_losing_access": _pairs(preview.sessions_losing_access),
    }

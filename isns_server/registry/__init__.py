"""The iSNS registry (RFC 4171): objects, registration, queries, discovery domains.

Pure: no I/O and no clock; `Registry.handle(message, now)` returns an `Outcome`.
"""

from .liveness import EsiProbe, Removal, Tick
from .objects import (
    DiscoveryDomain,
    DiscoveryDomainSet,
    NetworkEntity,
    ObjectType,
    Portal,
    PortalGroup,
    StorageNode,
)
from .outcome import COUNTERS, Change, Notification, Outcome, Ref
from .persistence import Record, StoredRef
from .policy import Policy
from .registry import Registry
from .zoning import TargetPortal, VisibleTarget

__all__ = [
    "COUNTERS",
    "Change",
    "DiscoveryDomain",
    "DiscoveryDomainSet",
    "EsiProbe",
    "NetworkEntity",
    "Notification",
    "ObjectType",
    "Outcome",
    "Policy",
    "Portal",
    "PortalGroup",
    "Record",
    "Ref",
    "Registry",
    "Removal",
    "StorageNode",
    "StoredRef",
    "TargetPortal",
    "Tick",
    "VisibleTarget",
]

"""The iSNS registry (RFC 4171): objects, registration, queries, discovery domains.

Pure: no I/O and no clock; `Registry.handle(message, now)` returns an `Outcome`.
"""

from .objects import (
    DiscoveryDomain,
    DiscoveryDomainSet,
    NetworkEntity,
    ObjectType,
    Portal,
    PortalGroup,
    StorageNode,
)
from .outcome import COUNTERS, Change, Outcome, Ref
from .persistence import Record, StoredRef
from .policy import Policy
from .registry import Registry
from .zoning import TargetPortal, VisibleTarget

__all__ = [
    "COUNTERS",
    "Change",
    "DiscoveryDomain",
    "DiscoveryDomainSet",
    "NetworkEntity",
    "ObjectType",
    "Outcome",
    "Policy",
    "Portal",
    "PortalGroup",
    "Record",
    "Ref",
    "Registry",
    "StorageNode",
    "StoredRef",
    "TargetPortal",
    "VisibleTarget",
]

"""What every API route reads from: the registry, the write path, the audit log, the
portal's live state and the readiness checks; set on the aiohttp app under CONTEXT."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from ..registry import Registry
from .audit import AuditLog
from .event_hub import EventHub
from .writes import Planner, Writer

Json = dict[str, Any]


@dataclass(slots=True)
class PortalState:
    """The embedded portal's targets with their LUNs, and its live sessions (pairs of
    initiator and target for zoning previews; views for the session list)."""

    targets: Callable[[], list[Json]]
    sessions: Callable[[], list[Json]]


@dataclass(slots=True)
class ApiContext:
    registry: Registry
    planner: Planner
    writer: Writer
    audit: AuditLog
    portal: PortalState
    # name -> problem (None: fine), for /readyz
    readiness: Callable[[], Awaitable[dict[str, str | None]]]
    events: EventHub = field(default_factory=EventHub)  # for /api/v1/events
    metrics: CollectorRegistry = field(default_factory=CollectorRegistry)  # for /metrics


CONTEXT = web.AppKey("isns_api_context", ApiContext)


def context(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]

"""Prometheus metrics (`/metrics`), all in one CollectorRegistry owned by the application.

Two kinds, so that the sans-IO cores never import prometheus_client:
- Events the adapters see (an iSNS request answered, an SCN delivered, a store batch
  written, a SCSI task ended) are counted as they happen, through the `IsnsMetrics`,
  `StoreMetrics` and `PortalMetrics` the composition root hands to those adapters.
- State and the plain counters the cores keep (registry object counts, SCNs waiting,
  live sessions, login outcomes, the SLP agent's counters) are read when Prometheus
  scrapes, by `StateCollector`: nothing is done for them on the request path.

Every name starts with `isns_`; docs/api.md ("Metrics") lists them.
"""

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .isnsp.constants import FunctionId, NodeType, Status

if TYPE_CHECKING:
    from .isnsp.messages import Message
    from .portal.session.tasks import ScsiTask
    from .registry import Registry
    from .scsi import LogicalUnit, ScsiResult

# Seconds: an iSNS query answers in tens of microseconds, a registration waits for an fsync.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                   0.5, 1.0, 2.5)  # fmt: skip
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)  # records per commit


_FUNCTIONS = frozenset(FunctionId)


def function_label(function: int) -> str:
    """`DEV_ATTR_QRY`; a function this server does not know is `other`, so a client
    cannot create label values at will."""
    try:
        return FunctionId(function).name
    except ValueError:
        return "other"


def status_label(status: int | None) -> str:
    try:
        return Status(status or 0).name
    except ValueError:
        return "other"


class IsnsMetrics:
    """What the iSNS service's adapters count: requests, SCNs, ESIs, expiries."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "isns_requests",
            "iSNS requests answered, by function and response status",
            ["function", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "isns_request_duration_seconds",
            "From an iSNS request's arrival to its answer (changes: once durable), by function",
            ["function"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.scn_sent = Counter(
            "isns_scn_sent", "SCNs delivered (answered by the recipient)", registry=registry
        )
        self.scn_failed = Counter(
            "isns_scn_failed",
            "SCNs not delivered: no_answer after every retry, queue_full (dropped oldest)",
            ["reason"],
            registry=registry,
        )
        self.esi_sent = Counter("isns_esi_sent", "ESI messages sent", registry=registry)
        self.esi_failed = Counter(
            "isns_esi_failed",
            "ESI messages unanswered, or answered for another portal",
            registry=registry,
        )
        self.expired = Counter(
            "isns_entities_expired",
            "Entities or portals removed by the server: registration period run out "
            "(expired), ESI unanswered (esi_entity, esi_portal)",
            ["cause"],
            registry=registry,
        )

        # (function, status) -> the counter's and the histogram's children: label lookups
        # cost more than the observation itself. Unknown functions share one key.
        self._children: dict[tuple[int, int | None], tuple[Counter, Histogram]] = {}

    def timed(
        self, function: int, reply: "Callable[[Message], None]"
    ) -> "Callable[[Message], None]":
        """`reply`, counting the answer and the time since now."""
        started = time.perf_counter()

        def answered(answer: "Message") -> None:
            elapsed = time.perf_counter() - started
            key = (function if function in _FUNCTIONS else -1, answer.status)
            children = self._children.get(key)
            if children is None:
                name = function_label(function)
                children = (
                    self.requests.labels(name, status_label(answer.status)),
                    self.latency.labels(name),
                )
                self._children[key] = children
            children[0].inc()
            children[1].observe(elapsed)
            reply(answer)

        return answered


class StoreMetrics:
    """Group commit: how long a batch takes to be durable, and how many records it has."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.commit = Histogram(
            "isns_store_commit_duration_seconds",
            "Time to write one batch of changes durably (one transaction, one fsync)",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch = Histogram(
            "isns_store_batch_records",
            "Records written per batch (changes of every request that waited for it)",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )

    def batch_written(self, records: int, seconds: float) -> None:
        self.commit.observe(seconds)
        self.batch.observe(records)


class PortalMetrics:
    """SCSI commands by logical unit, and how long tasks take from the PDU to the result."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.commands = Counter(
            "isns_lun_commands",
            "SCSI commands with data ended, by target, LUN and direction (read, write)",
            ["target", "lun", "direction"],
            registry=registry,
        )
        self.bytes = Counter(
            "isns_lun_bytes",
            "Data bytes of SCSI commands, by target, LUN and direction (read, write)",
            ["target", "lun", "direction"],
            registry=registry,
        )
        self.task_latency = Histogram(
            "isns_task_duration_seconds",
            "From a SCSI command's full arrival to its result (disk and queueing included)",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        # (logical unit, direction) -> the two counters' children: a dict lookup per task
        self._children: dict[tuple[LogicalUnit, str], tuple[Counter, Counter]] = {}

    def task_done(self, task: "ScsiTask", result: "ScsiResult", seconds: float) -> None:
        self.task_latency.observe(seconds)
        command = task.command
        if command.read:
            direction, size = "read", min(len(result.data), command.expected_data_transfer_length)
        elif command.write:
            direction, size = "write", len(task.data_out)
        else:
            return
        unit = task.unit
        if unit is None:
            return
        children = self._children.get((unit, direction))
        if children is None:
            identity = unit.state.identity
            labels = (identity.target_name, str(identity.lun), direction)
            children = self.commands.labels(*labels), self.bytes.labels(*labels)
            self._children[unit, direction] = children
        children[0].inc()
        children[1].inc(size)


class SlpCounts(Protocol):
    """The plain counters of the SLP directory agent (discovery_agent.slp.agent)."""

    @property
    def requests(self) -> Mapping[str, int]: ...
    @property
    def truncated_replies(self) -> int: ...
    @property
    def rate_limited(self) -> int: ...


def _nothing() -> None:
    return None


def _zero() -> int:
    return 0


@dataclass(slots=True)
class Sources:
    """Where the scrape reads state from; each returns None (or nothing) while its
    component is not running."""

    registry: "Callable[[], Registry | None]" = _nothing
    scn_queued: Callable[[], int] = _zero
    session_types: Callable[[], Iterable[str]] = tuple
    logins: Callable[[], Mapping[str, int]] = dict
    slp: Callable[[], SlpCounts | None] = _nothing


_NODE_TYPES = (("target", NodeType.TARGET), ("initiator", NodeType.INITIATOR),
               ("control", NodeType.CONTROL))  # fmt: skip
LOGIN_OUTCOMES = ("success", "authentication_failure", "zoning_refused", "target_not_found",
                  "other_failure")  # fmt: skip


class StateCollector(Collector):
    """Reads state at scrape time (the registry's counts cost one pass over its nodes)."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        sources = self.sources
        registry = sources.registry()
        if registry is not None:
            yield from _registry_counts(registry)
        yield GaugeMetricFamily(
            "isns_scn_queued", "SCNs waiting for delivery", value=sources.scn_queued()
        )
        sessions = GaugeMetricFamily(
            "isns_portal_sessions", "Live iSCSI sessions at the portal, by type", labels=["type"]
        )
        found: dict[str, int] = {"normal": 0, "discovery": 0}
        for kind in sources.session_types():
            found[kind] = found.get(kind, 0) + 1
        for kind, count in found.items():
            sessions.add_metric([kind], count)
        yield sessions
        logins = CounterMetricFamily(
            "isns_portal_logins",
            "Portal logins by outcome (zoning_refused: no shared enabled discovery domain)",
            labels=["outcome"],
        )
        outcomes = sources.logins()
        for outcome in LOGIN_OUTCOMES:
            logins.add_metric([outcome], outcomes.get(outcome, 0))
        yield logins
        slp = sources.slp()
        if slp is not None:
            yield from _slp_counts(slp)


def _registry_counts(registry: "Registry") -> Iterator[Metric]:
    db = registry.db
    objects = GaugeMetricFamily(
        "isns_registry_objects", "Objects in the iSNS registry, by kind", labels=["kind"]
    )
    for kind, table in (
        ("entity", db.entities),
        ("node", db.nodes),
        ("portal", db.portals),
        ("portal_group", db.pgs),
        ("dd", db.dds),
        ("dd_set", db.ddss),
    ):
        objects.add_metric([kind], len(table))
    yield objects
    # Count the few distinct Node Type values first: one C-speed pass over the nodes.
    by_value = Tally(node.node_type for node in db.nodes.values())
    counts = dict.fromkeys((name for name, _ in _NODE_TYPES), 0)
    for value, count in by_value.items():
        for name, bit in _NODE_TYPES:
            if (value or 0) & bit:
                counts[name] += count
    nodes = GaugeMetricFamily(
        "isns_registry_nodes",
        "Storage nodes by node type (a node may have several)",
        labels=["type"],
    )
    for name, count in counts.items():
        nodes.add_metric([name], count)
    yield nodes
    yield GaugeMetricFamily(
        "isns_registry_scn_subscribers", "Nodes with an SCN registration", value=len(db.subscribers)
    )


def _slp_counts(slp: SlpCounts) -> Iterator[Metric]:
    requests = CounterMetricFamily(
        "isns_slp_requests",
        "SLP messages handled by the directory agent, by function",
        labels=["function"],
    )
    for function, count in sorted(slp.requests.items()):
        requests.add_metric([function], count)
    yield requests
    yield CounterMetricFamily(
        "isns_slp_truncated_replies",
        "SLP replies cut to fit the MTU (OVERFLOW set), or not sent for it",
        value=slp.truncated_replies,
    )
    yield CounterMetricFamily(
        "isns_slp_rate_limited",
        "SLP datagrams dropped unanswered by the per-source rate limit",
        value=slp.rate_limited,
    )


@dataclass(slots=True)
class Metrics:
    """The application's metrics: one registry, the adapters' parts, the scrape sources."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    sources: Sources = field(default_factory=Sources)
    isns: IsnsMetrics = field(init=False)
    store: StoreMetrics = field(init=False)
    portal: PortalMetrics = field(init=False)

    def __post_init__(self) -> None:
        self.isns = IsnsMetrics(self.registry)
        self.store = StoreMetrics(self.registry)
        self.portal = PortalMetrics(self.registry)
        self.registry.register(StateCollector(self.sources))

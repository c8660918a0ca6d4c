"""Metrics: the scrape-time collector over the registry and the cores' plain counters,
the adapters' counters (Dispatcher, store batches, SCSI tasks), the SLP agent's counts,
and /metrics behind a token."""

from collections import Counter
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from discovery_agent.slp.agent import AgentSettings, DirectoryAgent
from discovery_agent.slp.codec import build_message
from discovery_agent.slp.messages import SrvRqst
from isns_server.api.context import CONTEXT
from isns_server.isnsp.constants import FunctionId, NodeType, Tag
from isns_server.isnsp.messages import Attribute, Message, request
from isns_server.metrics import Metrics, function_label
from isns_server.scsi.sense import ScsiResult
from isns_server.service.dispatcher import Dispatcher

from ..registry.builders import ADMIN, NOW, iqn, new_registry, node, ok, portal, register
from .conftest import READ_HEADERS, Api, DictStore

T1, T2, I1 = iqn("t1"), iqn("t2"), iqn("i1")


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and sorted labels."""
    text = generate_latest(metrics.registry).decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


@dataclass
class SlpCounts:
    requests: Counter[str] = field(default_factory=Counter)
    truncated_replies: int = 0
    rate_limited: int = 0


def test_the_collector_reads_the_registry_and_the_cores_counters_at_scrape_time() -> None:
    registry = new_registry()
    ok(register(registry, T1, "e1", portal("127.0.0.1", 3260), node(T1), node(T2)))
    ok(register(registry, ADMIN, "e2", node(ADMIN, NodeType.INITIATOR | NodeType.CONTROL)))
    metrics = Metrics()
    logins: Counter[str] = Counter(success=3, zoning_refused=2)
    slp = SlpCounts(Counter(SrvRqst=5, invalid=1), truncated_replies=4, rate_limited=7)
    metrics.sources.registry = lambda: registry
    metrics.sources.scn_queued = lambda: 9
    metrics.sources.session_types = lambda: ["normal", "normal", "discovery"]
    metrics.sources.logins = lambda: logins
    metrics.sources.slp = lambda: slp

    found = samples(metrics)
    assert found["isns_registry_objects", (("kind", "entity"),)] == 2
    assert found["isns_registry_objects", (("kind", "node"),)] == 3
    assert found["isns_registry_objects", (("kind", "portal"),)] == 1
    assert found["isns_registry_nodes", (("type", "target"),)] == 2
    assert found["isns_registry_nodes", (("type", "initiator"),)] == 1
    assert found["isns_registry_nodes", (("type", "control"),)] == 1
    assert found["isns_scn_queued", ()] == 9
    assert found["isns_portal_sessions", (("type", "normal"),)] == 2
    assert found["isns_portal_sessions", (("type", "discovery"),)] == 1
    assert found["isns_portal_logins_total", (("outcome", "success"),)] == 3
    assert found["isns_portal_logins_total", (("outcome", "zoning_refused"),)] == 2
    assert found["isns_portal_logins_total", (("outcome", "authentication_failure"),)] == 0
    assert found["isns_slp_requests_total", (("function", "SrvRqst"),)] == 5
    assert found["isns_slp_truncated_replies_total", ()] == 4
    assert found["isns_slp_rate_limited_total", ()] == 7

    # Read again at the next scrape, not copied: the registry and counters move on.
    ok(register(registry, I1, "e3", node(I1, NodeType.INITIATOR)))
    logins["success"] += 1
    found = samples(metrics)
    assert found["isns_registry_objects", (("kind", "node"),)] == 4
    assert found["isns_portal_logins_total", (("outcome", "success"),)] == 4


def test_components_that_are_off_leave_their_series_out_or_at_zero() -> None:
    found = samples(Metrics())
    assert not any(name.startswith(("isns_registry_", "isns_slp_")) for name, _ in found)
    assert found["isns_scn_queued", ()] == 0
    assert found["isns_portal_sessions", (("type", "normal"),)] == 0


def test_function_labels_are_bounded() -> None:
    assert function_label(FunctionId.DEV_ATTR_QRY) == "DEV_ATTR_QRY"
    assert {function_label(n) for n in range(0x20, 0x4000)} == {"other"}


async def test_the_dispatcher_counts_and_times_every_answer_once() -> None:
    registry = new_registry()
    store = DictStore()
    metrics = Metrics()
    dispatcher = Dispatcher(registry, store, clock=lambda: NOW, metrics=metrics.isns)
    answers: list[Message] = []
    try:
        for message in (
            _request(FunctionId.DEV_ATTR_REG, T1, node(T1)),
            _request(FunctionId.DEV_ATTR_QRY, T1, node(T1)),
            _request(0x0030, T1, ()),
        ):
            dispatcher.dispatch(message, answers.append, "127.0.0.1:5000")
        pending = store.barrier()
        if pending is not None:
            await pending
    finally:
        await store.close()
    assert len(answers) == 3
    found = samples(metrics)
    reg = (("function", "DEV_ATTR_REG"), ("status", "SUCCESSFUL"))
    assert found["isns_requests_total", reg] == 1
    unknown = (("function", "other"), ("status", "MESSAGE_NOT_SUPPORTED"))
    assert found["isns_requests_total", unknown] == 1
    assert found["isns_request_duration_seconds_count", (("function", "DEV_ATTR_REG"),)] == 1


def _request(function: int, source: str, attrs: tuple[Attribute, ...]) -> Message:
    """A request for `function`, which may be one iSNSP does not define (request() builds
    only those it does)."""
    known = request(FunctionId.DEV_ATTR_QRY, 1, Attribute(Tag.ISCSI_NAME, source), (), attrs)
    return replace(known, function=function)


@dataclass(eq=False)
class Unit:
    """A logical unit as the metrics see it: hashable, with its identity."""

    state: Any


def test_store_batches_and_scsi_tasks_are_observed() -> None:
    metrics = Metrics()
    metrics.store.batch_written(12, 0.004)
    unit = Unit(SimpleNamespace(identity=SimpleNamespace(target_name=T1, lun=2)))
    target = SimpleNamespace(unit=lambda lun: unit)

    def task(read: bool, write: bool, length: int, data_out: bytes = b"") -> Any:
        command = SimpleNamespace(
            read=read, write=write, expected_data_transfer_length=length, lun=2 << 48
        )
        return SimpleNamespace(command=command, data_out=data_out, target=target, unit=unit)

    result = ScsiResult(data=b"x" * 8192)
    metrics.portal.task_done(task(True, False, 4096), result, 0.001)  # Data-In is capped
    metrics.portal.task_done(task(False, True, 512, b"y" * 512), ScsiResult(data=b""), 0.002)
    metrics.portal.task_done(task(False, False, 0), ScsiResult(data=b""), 0.0001)
    found = samples(metrics)
    assert found["isns_store_batch_records_sum", ()] == 12
    assert found["isns_store_commit_duration_seconds_count", ()] == 1
    read = (("direction", "read"), ("lun", "2"), ("target", T1))
    write = (("direction", "write"), ("lun", "2"), ("target", T1))
    assert found["isns_lun_commands_total", read] == 1
    assert found["isns_lun_bytes_total", read] == 4096
    assert found["isns_lun_bytes_total", write] == 512
    assert found["isns_task_duration_seconds_count", ()] == 3


def test_the_slp_agent_counts_requests_parse_errors_and_rate_limited_datagrams() -> None:
    da = DirectoryAgent(
        AgentSettings(url="service:directory-agent://192.0.2.10", rate=1.0, burst=2),
        boot_timestamp=1_700_000_000,
    )
    da.startup(0.0)
    request = build_message(SrvRqst(xid=1, service_type="service:iscsi:target"))
    source = ("192.0.2.50", 40000)
    da.handle(request, source, "unicast-udp", 0.0)
    da.handle(b"\x02garbage", source, "unicast-udp", 0.0)
    for _ in range(3):
        assert da.handle(request, source, "unicast-udp", 0.0) == []  # over the burst
    assert da.counters.requests == Counter(SrvRqst=1, invalid=1)
    assert da.counters.rate_limited == 3


async def test_metrics_route_needs_a_token_and_serves_the_text_format(api: Api) -> None:
    context = api.client.app[CONTEXT]
    metrics = Metrics()
    metrics.sources.registry = lambda: api.registry
    context.metrics = metrics.registry
    assert (await api.client.get("/metrics")).status == 401
    answer = await api.client.get("/metrics", headers=READ_HEADERS)
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert 'isns_registry_objects{kind="entity"} 0.0' in await answer.text()

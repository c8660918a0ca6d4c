"""API writes as the iSNS requests a Control Node would send (DDReg, DDDereg, DDSReg,
DDSDereg, DevDereg), handed to the Dispatcher: durable before the answer, SCNs sent, and
the SLP mirror and SendTargets following, exactly as for `isnsadm`.

A planner checks a request against the registry first (404, 409, 422 here, never a
half-applied change) and returns the message with the zoning change it amounts to, which
is also what /api/v1/zoning/preview evaluates.
"""

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_address
from itertools import count
from typing import Any

from ..config.schema import ConfigValueError, ListenAddress
from ..isnsp.constants import DDSetStatus, FunctionId, Status, Tag
from ..isnsp.messages import Attribute, Message, PortNumber, request
from ..names import iscsi_name_problem, normalize_name
from ..registry import Registry
from ..registry.database import Database
from ..registry.insight import NEW_DD, ProposedChange
from ..registry.objects import PortalKey, portal_key
from ..service import Dispatcher
from ..store import StoreError
from .audit import AuditLog
from .errors import ApiError
from .views import Json, dd_view, dds_view, entity_view

# The Source of the API's iSNS requests: a Control Node by configuration (app.py).
API_SOURCE = "iqn.2026-11.org.isns-server:management-api"
MAX_NAME_BYTES = 255  # DD and DD set symbolic names (RFC 4171 6.11.1.2, 6.11.2.2)
_xids = count(1)


@dataclass(slots=True)
class Plan:
    """One checked write: the iSNS `message`, the zoning `change` it makes, a sentence for
    the audit log, and how to read the affected object before and after."""

    message: Message
    change: ProposedChange
    what: str
    view: Callable[[], Json | None]


def etag(view: Json) -> str:
    canonical = json.dumps(view, sort_keys=True, separators=(",", ":"))
    return '"' + hashlib.sha256(canonical.encode()).hexdigest()[:20] + '"'


def check_if_match(header: str | None, view: Json) -> None:
    """412 unless If-Match (when sent) names the object's current ETag, or is `*`."""
    if header is None:
        return
    wanted = {tag.strip() for tag in header.split(",")}
    if "*" not in wanted and etag(view) not in wanted:
        raise ApiError(
            412,
            "changed since you read it (If-Match does not match the current ETag); "
            "read it again and redo your change on the new version",
            "If-Match",
        )


# --- input checks ----------------------------------------------------------------------


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object", "body")
    return body


def _name(body: dict[str, Any], key: str, required: bool) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"{key} must be a non-empty string", key)
    if len(value.encode()) > MAX_NAME_BYTES or "\x00" in value:
        raise ApiError(422, f"{key} must be at most {MAX_NAME_BYTES} bytes, without NUL", key)
    return value


def _list(body: dict[str, Any], key: str, required: bool) -> list[Any]:
    value = body.get(key, None if required else [])
    if not isinstance(value, list):
        raise ApiError(400, f"{key} must be a JSON array", key)
    return value


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"{where} must be a whole number", where)
    return value


def _bool(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise ApiError(400, f"{key} must be true or false", key)
    return value


Member = str | tuple[Any, PortNumber]


def parse_member(text: Any, where: str) -> Member:
    """An iSCSI name (RFC 3722), or a portal as `address:port[/tcp|/udp]`."""
    if not isinstance(text, str):
        raise ApiError(400, f"{where} must be a string (an iSCSI name or address:port)", where)
    if text[:1].isdigit() or text.startswith("["):
        address, _, protocol = text.partition("/")
        if protocol not in ("", "tcp", "udp"):
            raise ApiError(422, f"{where}: a portal ends in /tcp or /udp, not /{protocol}", where)
        try:
            parsed = ListenAddress.parse(address)
        except ConfigValueError as exc:
            raise ApiError(422, f"{where}: not a portal: {exc}", where) from None
        return ip_address(parsed.host), PortNumber(parsed.port, protocol == "udp")
    name = normalize_name(text)
    problem = iscsi_name_problem(name)
    if problem is not None:
        raise ApiError(
            422,
            f"{where}: {text!r} is not an iSCSI name (RFC 3722): {problem}; "
            "a portal member is written address:port, an IPv6 address in brackets",
            where,
        )
    return name


def _members(values: list[Any], key: str) -> list[Member]:
    return [parse_member(value, f"{key}[{i}]") for i, value in enumerate(values)]


def _member_attrs(members: list[Member]) -> tuple[Attribute, ...]:
    attrs: list[Attribute] = []
    for member in members:
        if isinstance(member, str):
            attrs.append(Attribute(Tag.DD_MEMBER_ISCSI_NAME, member))
        else:
            attrs.append(Attribute(Tag.DD_MEMBER_PORTAL_IP_ADDR, member[0]))
            attrs.append(Attribute(Tag.DD_MEMBER_PORTAL_TCP_UDP_PORT, member[1]))
    return tuple(attrs)


def _member_key(member: Member) -> str | PortalKey:
    return member if isinstance(member, str) else portal_key(*member)


def _message(
    function: FunctionId, keys: tuple[Attribute, ...], operating: tuple[Attribute, ...]
) -> Message:
    source = Attribute(Tag.ISCSI_NAME, API_SOURCE)
    return request(function, next(_xids) & 0xFFFF, source, keys, operating)


# --- planners ----------------------------------------------------------------------------


class Planner:
    """Turns API requests into checked Plans over the current registry."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    @property
    def db(self) -> Database:
        return self.registry.db  # looked up each time: a failed write reloads it

    def dd(self, dd_id: int) -> Json:
        dd = self.db.dds.get(dd_id)
        if dd is None:
            raise ApiError(404, f"no discovery domain with ID {dd_id}; GET /api/v1/dds lists them")
        return dd_view(self.db, dd)

    def dd_set(self, dds_id: int) -> Json:
        dds = self.db.ddss.get(dds_id)
        if dds is None:
            raise ApiError(404, f"no DD set with ID {dds_id}; GET /api/v1/dd-sets lists them")
        return dds_view(dds)

    def _dd_view(self, dd_id: int) -> Callable[[], Json | None]:
        return lambda: dd_view(self.db, self.db.dds[dd_id]) if dd_id in self.db.dds else None

    def _dds_view(self, dds_id: int) -> Callable[[], Json | None]:
        return lambda: dds_view(self.db.ddss[dds_id]) if dds_id in self.db.ddss else None

    def _free_dd_name(self, name: str, dd_id: int | None = None) -> None:
        owner = self.db.dd_names.get(name)
        if owner is not None and owner != dd_id:
            raise ApiError(409, f"discovery domain {name!r} exists already (ID {owner})", "name")

    def _free_set_name(self, name: str, dds_id: int | None = None) -> None:
        owner = self.db.dds_names.get(name)
        if owner is not None and owner != dds_id:
            raise ApiError(409, f"DD set {name!r} exists already (ID {owner})", "name")

    def create_dd(self, body: Any) -> Plan:
        body = _object(body)
        name = _name(body, "name", required=True)
        assert name is not None
        members = _members(_list(body, "members", required=False), "members")
        self._free_dd_name(name)
        names = {m for m in members if isinstance(m, str)}
        message = _message(
            FunctionId.DD_REG, (), (Attribute(Tag.DD_SYMBOLIC_NAME, name), *_member_attrs(members))
        )

        def view() -> Json | None:
            dd_id = self.db.dd_names.get(name)
            return None if dd_id is None else dd_view(self.db, self.db.dds[dd_id])

        return Plan(
            message,
            ProposedChange(members_added={NEW_DD: names}),
            f"create discovery domain {name!r} with {len(members)} members",
            view,
        )

    def rename_dd(self, dd_id: int, body: Any) -> Plan:
        self.dd(dd_id)
        body = _object(body)
        name = _name(body, "name", required=True)
        assert name is not None
        self._free_dd_name(name, dd_id)
        message = _message(
            FunctionId.DD_REG,
            (Attribute(Tag.DD_ID, dd_id),),
            (Attribute(Tag.DD_SYMBOLIC_NAME, name),),
        )
        what = f"rename discovery domain {dd_id} to {name!r}"
        return Plan(message, ProposedChange(), what, self._dd_view(dd_id))

    def add_members(self, dd_id: int, body: Any) -> Plan:
        self.dd(dd_id)
        members = _members(_list(_object(body), "members", required=True), "members")
        names = {m for m in members if isinstance(m, str)}
        message = _message(
            FunctionId.DD_REG, (Attribute(Tag.DD_ID, dd_id),), _member_attrs(members)
        )
        what = f"add {len(members)} members to discovery domain {dd_id}"
        return Plan(
            message, ProposedChange(members_added={dd_id: names}), what, self._dd_view(dd_id)
        )

    def remove_members(self, dd_id: int, body: Any) -> Plan:
        view = self.dd(dd_id)
        members = _members(_list(_object(body), "members", required=True), "members")
        dd = self.db.dds[dd_id]
        for i, member in enumerate(members):
            key = _member_key(member)
            if key not in dd.nodes and key not in dd.portals:
                raise ApiError(
                    404,
                    f"members[{i}] is not a member of discovery domain {view['name']!r}",
                    f"members[{i}]",
                )
        names = {m for m in members if isinstance(m, str)}
        message = _message(
            FunctionId.DD_DEREG, (Attribute(Tag.DD_ID, dd_id),), _member_attrs(members)
        )
        what = f"remove {len(members)} members from discovery domain {dd_id}"
        return Plan(
            message, ProposedChange(members_removed={dd_id: names}), what, self._dd_view(dd_id)
        )

    def delete_dd(self, dd_id: int) -> Plan:
        view = self.dd(dd_id)
        message = _message(FunctionId.DD_DEREG, (Attribute(Tag.DD_ID, dd_id),), ())
        what = f"delete discovery domain {dd_id} ({view['name']!r})"
        return Plan(message, ProposedChange(dds_deleted={dd_id}), what, self._dd_view(dd_id))

    def _dd_ids(self, values: list[Any], key: str) -> list[int]:
        ids = [_int(value, f"{key}[{i}]") for i, value in enumerate(values)]
        for i, dd_id in enumerate(ids):
            if dd_id not in self.db.dds:
                raise ApiError(
                    422, f"{key}[{i}]: no discovery domain with ID {dd_id}", f"{key}[{i}]"
                )
        return ids

    def create_dd_set(self, body: Any) -> Plan:
        body = _object(body)
        name = _name(body, "name", required=True)
        assert name is not None
        enabled = _bool(body, "enabled")
        dds = self._dd_ids(_list(body, "dds", required=False), "dds")
        self._free_set_name(name)
        status = DDSetStatus.ENABLED if enabled or enabled is None else DDSetStatus.DISABLED
        operating = (
            Attribute(Tag.DD_SET_SYMBOLIC_NAME, name),
            Attribute(Tag.DD_SET_STATUS, int(status)),
            *(Attribute(Tag.DD_ID, d) for d in dds),
        )
        message = _message(FunctionId.DDS_REG, (), operating)

        def view() -> Json | None:
            dds_id = self.db.dds_names.get(name)
            return None if dds_id is None else dds_view(self.db.ddss[dds_id])

        new_set = NEW_DD  # the same placeholder ID: a set that does not exist yet
        change = ProposedChange(
            set_enabled={new_set: bool(status)}, set_members_added={new_set: set(dds)}
        )
        return Plan(message, change, f"create DD set {name!r} with {len(dds)} DDs", view)

    def update_dd_set(self, dds_id: int, body: Any) -> Plan:
        self.dd_set(dds_id)
        body = _object(body)
        name = _name(body, "name", required=False)
        enabled = _bool(body, "enabled")
        if name is None and enabled is None:
            raise ApiError(400, "give name, enabled, or both", "body")
        operating: list[Attribute] = []
        change = ProposedChange()
        if name is not None:
            self._free_set_name(name, dds_id)
            operating.append(Attribute(Tag.DD_SET_SYMBOLIC_NAME, name))
        if enabled is not None:
            status = DDSetStatus.ENABLED if enabled else DDSetStatus.DISABLED
            operating.append(Attribute(Tag.DD_SET_STATUS, int(status)))
            change.set_enabled[dds_id] = enabled
        message = _message(
            FunctionId.DDS_REG, (Attribute(Tag.DD_SET_ID, dds_id),), tuple(operating)
        )
        what = f"update DD set {dds_id}: " + ", ".join(
            part
            for part in (
                f"name {name!r}" if name is not None else "",
                ("enable" if enabled else "disable") if enabled is not None else "",
            )
            if part
        )
        return Plan(message, change, what, self._dds_view(dds_id))

    def add_set_members(self, dds_id: int, body: Any) -> Plan:
        self.dd_set(dds_id)
        dds = self._dd_ids(_list(_object(body), "dds", required=True), "dds")
        message = _message(
            FunctionId.DDS_REG,
            (Attribute(Tag.DD_SET_ID, dds_id),),
            tuple(Attribute(Tag.DD_ID, d) for d in dds),
        )
        change = ProposedChange(set_members_added={dds_id: set(dds)})
        what = f"add {len(dds)} DDs to DD set {dds_id}"
        return Plan(message, change, what, self._dds_view(dds_id))

    def remove_set_member(self, dds_id: int, dd_id: int) -> Plan:
        view = self.dd_set(dds_id)
        if dd_id not in view["dds"]:
            raise ApiError(404, f"discovery domain {dd_id} is not in DD set {view['name']!r}")
        message = _message(
            FunctionId.DDS_DEREG,
            (Attribute(Tag.DD_SET_ID, dds_id),),
            (Attribute(Tag.DD_ID, dd_id),),
        )
        change = ProposedChange(set_members_removed={dds_id: {dd_id}})
        what = f"remove discovery domain {dd_id} from DD set {dds_id}"
        return Plan(message, change, what, self._dds_view(dds_id))

    def delete_dd_set(self, dds_id: int) -> Plan:
        view = self.dd_set(dds_id)
        message = _message(FunctionId.DDS_DEREG, (Attribute(Tag.DD_SET_ID, dds_id),), ())
        what = f"delete DD set {dds_id} ({view['name']!r})"
        return Plan(message, ProposedChange(sets_deleted={dds_id}), what, self._dds_view(dds_id))

    def deregister_entity(self, eid: str) -> Plan:
        entity = self.registry.db.entities.get(normalize_name(eid))
        if entity is None:
            raise ApiError(404, f"no entity {eid!r}; GET /api/v1/entities lists them")
        message = _message(
            FunctionId.DEV_DEREG, (), (Attribute(Tag.ENTITY_IDENTIFIER, entity.eid),)
        )
        registry, key = self.registry, entity.eid

        def view() -> Json | None:
            found = registry.db.entities.get(key)
            return None if found is None else entity_view(registry, found)

        return Plan(message, ProposedChange(), f"deregister entity {key!r}", view)


class Writer:
    """Applies Plans through the Dispatcher and audits each one."""

    def __init__(self, dispatcher: Dispatcher, audit: AuditLog) -> None:
        self.dispatcher = dispatcher
        self.audit = audit

    async def apply(self, plan: Plan, who: str, request_summary: Json) -> Json | None:
        """Make the change; the object's view after it, once the change is durable."""
        if not self.audit.store.writable:
            raise ApiError(
                503, "changes are refused while the store cannot be written; the log says why"
            )
        before = plan.view()
        record = self.audit.begin(who, plan.what, request_summary, before)
        answer: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.dispatcher.dispatch(plan.message, answer.set_result, f"the management API ({who})")
        after = plan.view()
        audited = self.audit.complete(record, after, "ok")
        response = await answer
        if audited is not None:
            with contextlib.suppress(StoreError):  # the answer says what became of it
                await audited
        status = response.status
        if status == Status.INTERNAL_ERROR:
            # The store dropped the change and its audit record; memory was reloaded.
            self.audit.forget(record)
            raise ApiError(
                503, "the change could not be saved, so it was not made; the log says why"
            )
        if status != Status.SUCCESSFUL:
            name = _status_name(status)
            self.audit.complete(record, plan.view(), f"refused: iSNS status {name}")
            raise ApiError(409, f"the registry refused the change with iSNS status {name}")
        return after


def _status_name(status: int | None) -> str:
    try:
        return Status(status or 0).name
    except ValueError:
        return str(status)

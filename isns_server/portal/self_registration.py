"""The portal's targets in the iSNS registry: registered at startup, kept fresh, removed
at shutdown (RFC 4171 5.6.5.1, 5.6.5.4, 6.2.6).

The portal is an iSNS client of its own server: requests go through the same path as
any client's (registry, then store, then the answer), so persistence and State Change
Notifications see them like any other registration.
"""

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..isnsp.constants import EntityProtocol, Flags, FunctionId, NodeType, Status, Tag
from ..isnsp.messages import Attribute, Message, PortNumber, request
from ..registry import TargetPortal
from ..schedule import Sleep

log = logging.getLogger(__name__)

RegistryCall = Callable[[Message], Awaitable[Message]]
_xids = itertools.count(1)
_STATUSES = frozenset(Status)
_RETRY = 60  # seconds, a third of it between attempts while not registered


@dataclass(frozen=True, slots=True)
class Registration:
    """One network entity holding the portal's targets, portals and portal groups."""

    eid: str
    targets: tuple[tuple[str, str | None], ...]  # (iSCSI name, alias); at least one
    portals: tuple[TargetPortal, ...]

    def register(self) -> Message:
        """DevAttrReg replacing whatever the entity held (targets may have changed)."""
        operating = [
            Attribute(Tag.ENTITY_IDENTIFIER, self.eid),
            Attribute(Tag.ENTITY_PROTOCOL, int(EntityProtocol.ISCSI)),
        ]
        for portal in self.portals:
            operating += [
                Attribute(Tag.PORTAL_IP_ADDRESS, portal.address),
                Attribute(Tag.PORTAL_TCP_UDP_PORT, PortNumber(portal.port)),
            ]
        for name, alias in self.targets:
            operating += [
                Attribute(Tag.ISCSI_NAME, name),
                Attribute(Tag.ISCSI_NODE_TYPE, int(NodeType.TARGET)),
            ]
            if alias:
                operating.append(Attribute(Tag.ISCSI_ALIAS, alias))
        for name, _ in self.targets:
            for portal in self.portals:
                operating += [
                    Attribute(Tag.PG_ISCSI_NAME, name),
                    Attribute(Tag.PG_PORTAL_IP_ADDR, portal.address),
                    Attribute(Tag.PG_PORTAL_TCP_UDP_PORT, PortNumber(portal.port)),
                    Attribute(Tag.PG_TAG, portal.group_tag),
                ]
        return self._request(FunctionId.DEV_ATTR_REG, tuple(operating), Flags.REPLACE)

    def refresh(self) -> Message:
        """DevAttrQry for the entity: any message refreshes its registration (6.2.6)."""
        return self._request(FunctionId.DEV_ATTR_QRY, (Attribute(Tag.ENTITY_IDENTIFIER),))

    def deregister(self) -> Message:
        """DevDereg names what it removes in the Operating Attributes, with no key (5.6.5.4)."""
        entity = (Attribute(Tag.ENTITY_IDENTIFIER, self.eid),)
        return self._request(FunctionId.DEV_DEREG, entity, keyed=False)

    def _request(
        self,
        function: FunctionId,
        operating: tuple[Attribute, ...],
        flags: Flags = Flags.NONE,
        keyed: bool = True,
    ) -> Message:
        source = Attribute(Tag.ISCSI_NAME, self.targets[0][0])
        key = (Attribute(Tag.ENTITY_IDENTIFIER, self.eid),) if keyed else ()
        return request(function, next(_xids), source, key, operating, flags)


def registration_period(answer: Message) -> int | None:
    """The Registration Period a DevAttrRsp gave the entity."""
    for attr in answer.attributes:
        if attr.tag == Tag.REGISTRATION_PERIOD and isinstance(attr.value, int):
            return attr.value
    return None


def refresh_pause(period: int | None) -> float:
    """Seconds until the next refresh: a third of the Registration Period, at least one;
    a third of a minute while not registered."""
    return max(1.0, (period or _RETRY) / 3)


def holds_entity(answer: Message, eid: str) -> bool:
    """Whether a DevAttrQryRsp shows the entity still registered."""
    return answer.status == Status.SUCCESSFUL and any(
        attr.tag == Tag.ENTITY_IDENTIFIER and attr.value == eid for attr in answer.attributes
    )


class TargetRegistrar:
    """Registers at `start`, refreshes at a third of the Registration Period (registering
    again if the entity disappeared or could not be registered), deregisters at `stop`.
    Failures are logged, never raised: the portal keeps serving logins regardless."""

    def __init__(
        self, registration: Registration, call: RegistryCall, sleep: Sleep = asyncio.sleep
    ) -> None:
        self.registration = registration
        self._call = call
        self._sleep = sleep
        self._period: int | None = None  # None: not registered
        self._refresher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._register()
        self._refresher = asyncio.create_task(self._refresh())

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None
        answer = await self._call(self.registration.deregister())
        if answer.status != Status.SUCCESSFUL:
            self._failed("deregister", answer, "they stay registered until they expire")

    async def _register(self) -> None:
        answer = await self._call(self.registration.register())
        if answer.status != Status.SUCCESSFUL:
            self._period = None
            self._failed("register", answer, "is one of them registered by another entity?")
            return
        self._period = registration_period(answer) or _RETRY
        log.info(
            "registered targets %s on portals %s (entity %s)",
            ", ".join(name for name, _ in self.registration.targets),
            ", ".join(f"{p.address}:{p.port}" for p in self.registration.portals),
            self.registration.eid,
        )

    async def _refresh(self) -> None:
        while True:
            await self._sleep(refresh_pause(self._period))
            if self._period is not None:
                answer = await self._call(self.registration.refresh())
                if holds_entity(answer, self.registration.eid):
                    continue
                log.warning(
                    "entity %s of the portal's targets left the registry; registering again",
                    self.registration.eid,
                )
            await self._register()

    def _failed(self, action: str, answer: Message, hint: str) -> None:
        status = answer.status
        text = Status(status).name if status in _STATUSES else str(status)
        log.error(
            "could not %s the portal's targets %s (entity %s) in the registry: iSNS status %s; %s",
            action,
            ", ".join(name for name, _ in self.registration.targets),
            self.registration.eid,
            text,
            hint,
        )

"""The portal's targets in the registry: the messages it sends, applied to a real registry,
and the registrar's lifecycle over an in-process registry call."""

import asyncio
from ipaddress import ip_address

import pytest

from isns_server.isnsp.constants import FunctionId, NodeType, Status, Tag
from isns_server.isnsp.messages import Attribute, Message, PortNumber, request
from isns_server.portal.self_registration import (
    Registration,
    TargetRegistrar,
    holds_entity,
    refresh_pause,
    registration_period,
)
from isns_server.registry import Policy, Registry, TargetPortal, VisibleTarget

from ...polling import Pacer

NOW = 1_700_000_000.0
T1 = "iqn.2026-11.org.example.test:t1"
T2 = "iqn.2026-11.org.example.test:t2"
HOST = "iqn.2026-11.org.example.test:host"
PORTALS = (
    TargetPortal(ip_address("192.0.2.10"), 3260, 1),
    TargetPortal(ip_address("2001:db8::10"), 3260, 1),
)
REGISTRATION = Registration("portal.example", ((T1, "disk one"), (T2, None)), PORTALS)


def test_registration_makes_the_targets_visible_with_their_portals() -> None:
    registry = Registry(Policy())
    outcome = registry.handle(REGISTRATION.register(), NOW)
    assert outcome.response.status == Status.SUCCESSFUL
    assert outcome.dirty  # persisted like any registration
    assert registration_period(outcome.response) == 900
    assert registry.visible_targets(HOST) == [
        VisibleTarget(T1, "disk one", PORTALS),
        VisibleTarget(T2, None, PORTALS),
    ]
    # Registering again replaces rather than adds.
    smaller = Registration("portal.example", ((T2, None),), PORTALS[:1])
    assert registry.handle(smaller.register(), NOW).response.status == Status.SUCCESSFUL
    assert registry.visible_targets(HOST) == [VisibleTarget(T2, None, PORTALS[:1])]


def test_refresh_and_deregistration() -> None:
    registry = Registry(Policy())
    registry.handle(REGISTRATION.register(), NOW)
    assert holds_entity(
        registry.handle(REGISTRATION.refresh(), NOW + 10).response, "portal.example"
    )
    outcome = registry.handle(REGISTRATION.deregister(), NOW + 20)
    assert outcome.response.status == Status.SUCCESSFUL and outcome.dirty
    assert registry.visible_targets(HOST) == []
    assert not holds_entity(registry.handle(REGISTRATION.refresh(), NOW).response, "portal.example")


def test_a_name_registered_by_another_entity_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    registry = Registry(Policy())
    other = request(
        FunctionId.DEV_ATTR_REG,
        1,
        Attribute(Tag.ISCSI_NAME, T1),
        (Attribute(Tag.ENTITY_IDENTIFIER, "elsewhere"),),
        (
            Attribute(Tag.ENTITY_IDENTIFIER, "elsewhere"),
            Attribute(Tag.PORTAL_IP_ADDRESS, ip_address("192.0.2.99")),
            Attribute(Tag.PORTAL_TCP_UDP_PORT, PortNumber(3260)),
            Attribute(Tag.ISCSI_NAME, T1),
            Attribute(Tag.ISCSI_NODE_TYPE, int(NodeType.TARGET)),
        ),
    )
    assert registry.handle(other, NOW).response.status == Status.SUCCESSFUL

    async def call(message: Message) -> Message:
        return registry.handle(message, NOW).response

    async def lifecycle() -> None:
        registrar = TargetRegistrar(REGISTRATION, call)
        await registrar.start()
        await registrar.stop()

    asyncio.run(lifecycle())
    assert "could not register the portal's targets" in caplog.text
    assert "registered by another entity?" in caplog.text


def test_refreshes_come_at_a_third_of_the_period() -> None:
    assert [refresh_pause(period) for period in (900, 3, 1, None)] == [300.0, 1.0, 1.0, 20.0]


async def test_the_registrar_registers_again_when_the_entity_disappears(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = Registry(Policy())  # the default Registration Period, 900 s

    async def call(message: Message) -> Message:
        return registry.handle(message, NOW).response

    pacer = Pacer(hold=True)
    registrar = TargetRegistrar(REGISTRATION, call, sleep=pacer)
    await registrar.start()
    assert await pacer.asked() == 300.0
    registry.handle(REGISTRATION.deregister(), NOW)  # an administrator removed it
    assert registry.visible_targets(HOST) == []
    pacer.resume()  # the refresh finds it gone and registers again
    assert await pacer.asked() == 300.0
    assert len(registry.visible_targets(HOST)) == 2
    assert "left the registry; registering again" in caplog.text
    await registrar.stop()
    assert registry.visible_targets(HOST) == []


async def test_while_refused_the_registrar_tries_again_every_20_s() -> None:
    registry = Registry(Policy())
    taken = Registration("elsewhere", ((T1, None),), PORTALS[:1])
    assert registry.handle(taken.register(), NOW).response.status == Status.SUCCESSFUL

    async def call(message: Message) -> Message:
        return registry.handle(message, NOW).response

    pacer = Pacer(hold=True)
    registrar = TargetRegistrar(REGISTRATION, call, sleep=pacer)
    await registrar.start()
    assert await pacer.asked() == 20.0
    pacer.resume()
    assert await pacer.asked() == 20.0  # still refused
    registry.handle(taken.deregister(), NOW)  # the name is free
    pacer.resume()
    assert await pacer.asked() == 300.0
    assert len(registry.visible_targets(HOST)) == 2
    await registrar.stop()

"""DNS-SD as a zero-configuration client sees it: a zeroconf browser on 127.0.0.1 finds
the iSNS server and the SendTargets portal, and nothing that names a target."""

import asyncio

from zeroconf import ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from discovery_agent.dnssd import ISNS_TYPE, PORTAL_TYPE
from discovery_agent.service import DiscoveryAgentService, in_process_endpoints
from isns_server.config import parse_config

from ..processes import free_port


async def browse(zeroconf: AsyncZeroconf, types: list[str], timeout: float) -> dict[str, str]:
    """The first instance name found of each type, within `timeout` seconds."""
    found: dict[str, str] = {}
    complete = asyncio.Event()

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Added:
            found.setdefault(service_type, name)
            if len(found) == len(types):
                complete.set()

    browser = AsyncServiceBrowser(zeroconf.zeroconf, types, handlers=[on_change])
    try:
        await asyncio.wait_for(complete.wait(), timeout)
    finally:
        await browser.async_cancel()
    return found


async def test_isns_server_and_portal_are_advertised_without_target_names() -> None:
    isns_port, portal_port = free_port(), free_port()
    config = parse_config(
        f"isns: {{listen: ['127.0.0.1:{isns_port}']}}\n"
        f"portal: {{listen: ['0.0.0.0:{portal_port}']}}\n"  # a wildcard: our interfaces
        "slp: {enabled: false}\n"
        "mdns: {interfaces: ['127.0.0.1']}\n"
    )
    service = DiscoveryAgentService(config, in_process_endpoints(config), slp_optional=False)
    await service.start()
    client = AsyncZeroconf(interfaces=["127.0.0.1"])
    try:
        names = await browse(client, [ISNS_TYPE, PORTAL_TYPE], timeout=10.0)
        expected = {
            ISNS_TYPE: (isns_port, {b"txtvers": b"1", b"transports": b"tcp,udp"}),
            PORTAL_TYPE: (portal_port, {b"txtvers": b"1", b"discovery": b"sendtargets"}),
        }
        for service_type, (port, txt) in expected.items():
            info = AsyncServiceInfo(service_type, names[service_type])
            assert await info.async_request(client.zeroconf, 3000)
            assert (info.port, info.parsed_addresses(), info.properties) == (
                port,
                ["127.0.0.1"],
                txt,
            )
    finally:
        await client.async_close()
        await service.stop()


async def test_nothing_is_multicast_until_interfaces_are_listed() -> None:
    config = parse_config("slp: {enabled: false}\n")  # mdns enabled, no interfaces
    service = DiscoveryAgentService(config, in_process_endpoints(config), slp_optional=False)
    await service.start()
    assert service.dnssd is None and service.transport is None
    await service.stop()

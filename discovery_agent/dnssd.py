"""DNS-SD (RFC 6763 over mDNS, RFC 6762) with python-zeroconf: where the iSNS server and
the SendTargets portal are, for zero-configuration initiators and management tools.

Only the two front doors are advertised, never the targets behind them: target names
stay with iSNS and SendTargets, which apply discovery domains. Multicast goes out on
the `mdns.interfaces` addresses only (zeroconf's `interfaces=`), nowhere else.
"""

import asyncio
import logging
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address

from zeroconf import ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

log = logging.getLogger(__name__)

ISNS_TYPE = "_isns._tcp.local."
PORTAL_TYPE = "_iscsi-target._tcp.local."
TXT_VERSION = "1"  # RFC 6763 6.7: a txtvers key lets the record evolve


@dataclass(frozen=True, slots=True)
class Advertisement:
    service_type: str
    port: int
    addresses: tuple[str, ...]
    properties: Mapping[str, str] = field(default_factory=dict)


def isns_advertisement(port: int, addresses: Sequence[str]) -> Advertisement:
    """The iSNS server: TCP and UDP on one port (RFC 4171 5.1)."""
    return Advertisement(
        ISNS_TYPE, port, tuple(addresses), {"txtvers": TXT_VERSION, "transports": "tcp,udp"}
    )


def portal_advertisement(port: int, addresses: Sequence[str]) -> Advertisement:
    """The iSCSI portal that answers SendTargets (RFC 7143 12.3)."""
    return Advertisement(
        PORTAL_TYPE, port, tuple(addresses), {"txtvers": TXT_VERSION, "discovery": "sendtargets"}
    )


def _label(text: str) -> str:
    """A DNS label from the host name: letters, digits and hyphens."""
    cleaned = "".join(c if c.isalnum() else "-" for c in text.split(".")[0].lower())
    return cleaned.strip("-")[:50] or "isns-server"


class DnsSdAdvertiser:
    def __init__(
        self,
        interfaces: Sequence[str],
        advertisements: Sequence[Advertisement],
    ) -> None:
        self.interfaces = list(interfaces)
        self.host = _label(socket.gethostname())
        self.infos = [self._info(ad) for ad in advertisements]
        self._zeroconf: AsyncZeroconf | None = None
        self._announcing: asyncio.Task[None] | None = None

    def _info(self, ad: Advertisement) -> ServiceInfo:
        # Our own host name under .local., so the addresses we publish never contradict
        # the records another responder (avahi) keeps for the machine's name.
        return ServiceInfo(
            ad.service_type,
            f"{self.host}.{ad.service_type}",
            port=ad.port,
            properties=dict(ad.properties),
            server=f"{self.host}-isns.local.",
            addresses=[ip_address(a).packed for a in ad.addresses],
        )

    async def start(self) -> None:
        """Open the mDNS sockets (errors surface here), then probe and announce in the
        background: RFC 6762 8 takes seconds that startup need not wait for."""
        self._zeroconf = AsyncZeroconf(interfaces=self.interfaces)
        self._announcing = asyncio.create_task(self._announce(self._zeroconf))
        self._announcing.add_done_callback(_report_failure)

    async def _announce(self, zeroconf: AsyncZeroconf) -> None:
        probes = [
            await zeroconf.async_register_service(i, allow_name_change=True) for i in self.infos
        ]
        await asyncio.gather(*probes)
        for info in self.infos:
            log.info(
                "DNS-SD: advertising %s port %d on %s",
                info.name,
                info.port,
                ", ".join(self.interfaces),
            )

    async def stop(self) -> None:
        if self._announcing is not None:
            self._announcing.cancel()
            await asyncio.wait({self._announcing})  # its failure, if any, is logged already
            self._announcing = None
        if self._zeroconf is None:
            return
        await self._zeroconf.async_unregister_all_services()  # goodbye packets (RFC 6762 10.1)
        await self._zeroconf.async_close()
        self._zeroconf = None


def _report_failure(task: "asyncio.Task[None]") -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("DNS-SD advertising failed, nothing is advertised: %s", exc)

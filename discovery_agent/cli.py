"""`discovery-agent`: the SLP directory agent and DNS-SD advertiser on a subnet of its own,
fed from a remote iSNS server. Reads the same YAML as isns-server; uses its `slp`,
`mdns`, `discovery_agent` and `log_level` keys."""

import sys

from isns_server import launcher
from isns_server.config import Config

from .service import DiscoveryAgentService, node_name, standalone_endpoints
from .transport import SlpListenError


def build(config: Config) -> DiscoveryAgentService:
    return DiscoveryAgentService(config, standalone_endpoints(config), slp_optional=False)


def ready(config: Config) -> str:
    server = standalone_endpoints(config).isns_server
    return f"discovery-agent ready: mirroring iSNS server {server} as {node_name(config)}"


def nothing_to_run(config: Config) -> str | None:
    if not config.slp.enabled and not (config.mdns.enabled and config.mdns.interfaces):
        return "nothing to run: slp is disabled and mdns has no interfaces"
    return None


def main(argv: list[str] | None = None) -> int:
    return launcher.main(
        "discovery-agent",
        "SLPv2 directory agent (RFC 2608, RFC 4018) and DNS-SD advertiser that mirror an "
        "iSNS server's registry (default 127.0.0.1:3205).",
        argv,
        build=build,
        ready=ready,
        runtime_errors=(SlpListenError,),
        refuse=nothing_to_run,
    )


if __name__ == "__main__":
    sys.exit(main())

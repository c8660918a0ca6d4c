"""`discovery-agent`: the SLP directory agent and DNS-SD advertiser on a subnet of its own,
fed from a remote iSNS server. Reads the same YAML as isns-server; uses its `slp`,
`mdns`, `discovery_agent` and `log_level` keys."""

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from isns_server import __version__
from isns_server.config import Config, ConfigError, load_config

from .service import DiscoveryAgentService, node_name, standalone_endpoints
from .transport import SlpListenError

EXIT_CONFIG = 2
EXIT_RUNTIME = 1
log = logging.getLogger("discovery_agent")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="discovery-agent",
        description="SLPv2 directory agent (RFC 2608, RFC 4018) and DNS-SD advertiser that "
        "mirror an iSNS server's registry (default 127.0.0.1:3205).",
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="YAML configuration file")
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the configuration, print the result and exit",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        help="override the configuration's log_level",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


async def run(config: Config) -> None:
    """Run until SIGINT or SIGTERM, then say goodbye (DAAdvert, DNS-SD, iSNS) and stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    endpoints = standalone_endpoints(config)
    service = DiscoveryAgentService(config, endpoints, slp_optional=False)
    await service.start()
    log.info(
        "discovery-agent ready: mirroring iSNS server %s as %s",
        endpoints.isns_server,
        node_name(config),
    )
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        await service.stop()
    log.info("stopped")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"discovery-agent: configuration refused:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    if not config.slp.enabled and not (config.mdns.enabled and config.mdns.interfaces):
        print(
            "discovery-agent: nothing to run: slp is disabled and mdns has no interfaces",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    if args.check_config:
        print(f"{args.config or 'embedded defaults'}: configuration is valid")
        return 0
    logging.basicConfig(
        level=(args.log_level or config.log_level).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(run(config))
    except SlpListenError as exc:
        log.error("%s", exc)
        return EXIT_RUNTIME
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`isns-server` command line."""

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from . import __version__
from .app import run
from .config import ConfigError, load_config
from .service import ListenError
from .store import StoreError
from .target.scsi import BackstoreError

EXIT_CONFIG = 2  # like argparse: the invocation or its configuration is wrong
EXIT_RUNTIME = 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="isns-server",
        description="iSNS name server (RFC 4171) with SendTargets portal and discovery agents. "
        "Runs on embedded defaults when no configuration file is given.",
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"isns-server: configuration refused:\n{exc}", file=sys.stderr)
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
    except (ListenError, StoreError, BackstoreError) as exc:
        logging.getLogger("isns_server").error("%s", exc)
        return EXIT_RUNTIME
    return 0


if __name__ == "__main__":
    sys.exit(main())

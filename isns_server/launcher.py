"""What `isns-server` and `discovery-agent` share: their options, loading and checking the
configuration, logging, and running until SIGINT or SIGTERM."""

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from . import __version__
from .config import Config, ConfigError, load_config

EXIT_CONFIG = 2  # like argparse: the invocation or its configuration is wrong
EXIT_RUNTIME = 1


class Component(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def main(
    prog: str,
    description: str,
    argv: list[str] | None,
    build: Callable[[Config], Component],
    ready: Callable[[Config], str],
    runtime_errors: tuple[type[Exception], ...],
    refuse: Callable[[Config], str | None] = lambda config: None,
) -> int:
    """Parse options, load the configuration (refused: exit 2 before touching anything),
    then run what `build` makes until signalled; a `runtime_errors` failure exits 1."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
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
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"{prog}: configuration refused:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    if (problem := refuse(config)) is not None:
        print(f"{prog}: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check_config:
        print(f"{args.config or 'embedded defaults'}: configuration is valid")
        return 0
    logging.basicConfig(
        level=(args.log_level or config.log_level).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    log = logging.getLogger(prog.replace("-", "_"))  # the package's logger
    try:
        asyncio.run(run_until_signalled(build(config), lambda: ready(config), log))
    except runtime_errors as exc:
        log.error("%s", exc)
        return EXIT_RUNTIME
    return 0


async def run_until_signalled(
    component: Component, ready: Callable[[], str], log: logging.Logger
) -> None:
    """Start `component`, run until SIGINT or SIGTERM, then stop it cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await component.start()
    log.info("%s", ready())
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        await component.stop()
    log.info("stopped")

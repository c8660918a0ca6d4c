"""Composition root: builds every enabled component from the configuration and runs them."""

import asyncio
import logging
import signal

from .config import Config
from .registry import Policy, Registry
from .service import Dispatcher, IsnsService
from .store import Store, open_store

log = logging.getLogger("isns_server")


class Application:
    """Everything `isns-server` runs, started and stopped in dependency order."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store: Store | None = None
        self.registry: Registry | None = None
        self.isns: IsnsService | None = None

    async def start(self) -> None:
        config = self.config
        self.store = open_store(config.store.backend, config.data_dir, config.store.durable)
        policy = Policy(
            default_dd=config.isns.default_dd,
            control_nodes=frozenset(config.isns.control_nodes),
            registration_period=config.isns.registration_period,
        )
        records = self.store.load()
        self.registry = Registry.restore(records, policy)
        if config.store.backend == "sqlite":
            log.info("registry loaded from %s: %d records", config.data_dir, len(records))
        try:
            if config.isns.enabled:
                self.isns = IsnsService(
                    Dispatcher(self.registry, self.store), config.isns.max_message_size
                )
                await self.isns.start(config.isns.listen)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self.isns is not None:
            await self.isns.stop()
            self.isns = None
        if self.store is not None:
            await self.store.close()
            self.store = None


async def run(config: Config) -> None:
    """Run until SIGINT or SIGTERM, then shut down cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    app = Application(config)
    await app.start()
    log.info("isns-server ready")
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        await app.stop()
    log.info("stopped")

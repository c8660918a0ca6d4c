"""`isns-server migrate --from-sqlite DIR`: copy the registry a single server kept in
DIR/registry.sqlite3 into the etcd cluster of the configuration's store.etcd, once,
before the replicas start.

Nothing is overwritten: a prefix that already holds records is refused, and each key is
written only if it does not exist yet, so a migration run twice (or against a cluster
replicas already use) changes nothing.
"""

import argparse
import asyncio
import json
import sys
from pathlib import Path

from ..config import ConfigError, load_config
from ..config.schema import EtcdSection
from ..store import SqliteStore, StoreError
from ..store.sqlite import DATABASE_NAME
from . import etcd_wire as wire
from .etcd_client import EtcdClient
from .etcd_store import MAX_TXN_OPS, encode, etcd_client, name_key, record_key
from .etcd_wire import EtcdError


async def copy_records(source: SqliteStore, settings: EtcdSection) -> int:
    """Copy every record of `source` under settings.prefix; the number copied."""
    client = etcd_client(settings)
    prefix = settings.prefix.encode()
    try:
        existing = await client.range(prefix + b"r/", wire.prefix_end(prefix + b"r/"), limit=1)
        if existing.kvs:
            raise StoreError(
                f"etcd already holds a registry under {settings.prefix!r}: nothing copied "
                f"(choose another store.etcd.prefix, or delete that one with "
                f"etcdctl del --prefix {settings.prefix})"
            )
        copied = 0
        batch: list[tuple[bytes, bytes]] = []
        for ref, record in source.records():
            batch.append((record_key(prefix, ref), encode(record)))
            name = name_key(prefix, ref, record)  # a DD's or DD set's name, held
            if name is not None:
                batch.append((name, json.dumps(ref[1]).encode()))
            if len(batch) >= MAX_TXN_OPS - 1:
                await _write(client, batch)
                batch = []
            copied += 1
        if batch:
            await _write(client, batch)
        return copied
    except EtcdError as exc:
        raise StoreError(f"cannot write to etcd ({', '.join(settings.endpoints)}): {exc}") from None
    finally:
        await client.close()


async def _write(client: EtcdClient, batch: list[tuple[bytes, bytes]]) -> None:
    answer = await client.txn(
        [wire.mod_revision_is(key, 0) for key, _ in batch],
        [wire.put_op(key, value) for key, value in batch],
    )
    if not answer.succeeded:
        raise StoreError("another writer created some of the same keys meanwhile: stopped")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="isns-server migrate",
        description="Copy a single server's registry (SQLite) into the etcd cluster of "
        "the configuration's store.etcd, for replicas to share.",
    )
    parser.add_argument(
        "--from-sqlite",
        type=Path,
        required=True,
        metavar="DIR",
        help=f"the data_dir holding {DATABASE_NAME}",
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="YAML configuration file")
    args = parser.parse_args(argv)
    if not (args.from_sqlite / DATABASE_NAME).is_file():
        print(f"isns-server migrate: no {DATABASE_NAME} in {args.from_sqlite}", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"isns-server migrate: configuration refused:\n{exc}", file=sys.stderr)
        return 2
    settings = config.store.etcd
    try:
        source = SqliteStore(args.from_sqlite)
        copied = asyncio.run(copy_records(source, settings))
    except StoreError as exc:
        print(f"isns-server migrate: {exc}", file=sys.stderr)
        return 1
    print(
        f"copied {copied} records from {args.from_sqlite / DATABASE_NAME} to etcd "
        f"({', '.join(settings.endpoints)}) under {settings.prefix!r}"
    )
    return 0

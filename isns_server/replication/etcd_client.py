"""A small asyncio etcd v3 client over the JSON gateway, with aiohttp (docs/architecture.md
says why this and not a client library).

Requests go to one endpoint at a time; one that cannot be connected to is left for the
next in the list. A transaction is never sent twice: when the connection breaks after it
was sent, nobody knows whether etcd committed it, so the caller hears an error and the
watch tells what really happened.
"""

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Sequence

import aiohttp

from . import etcd_wire as wire
from .etcd_wire import EtcdError, Json

log = logging.getLogger(__name__)


class EtcdClient:
    def __init__(
        self,
        endpoints: Sequence[str],
        ssl_context: ssl.SSLContext | None = None,
        user: str | None = None,
        password: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        if not endpoints:
            raise ValueError("no etcd endpoint")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.timeout = timeout
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._user = user
        self._password = password
        self._token: str | None = None
        self._current = 0
        self._session: aiohttp.ClientSession | None = None

    @property
    def endpoint(self) -> str:
        return self.endpoints[self._current]

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout)
            )
        return self._session

    async def _post(self, path: str, body: Json, resend: bool = True) -> Json:
        """POST to the current endpoint, moving on to the others when it cannot be
        connected to (or, if `resend`, when it fails in any way)."""
        problems = []
        for _ in self.endpoints:
            endpoint = self.endpoint
            try:
                return await self._post_to(endpoint, path, body)
            except aiohttp.ClientConnectorError as exc:
                problems.append(f"{endpoint}: {exc.os_error.strerror or exc}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"{endpoint}: {type(exc).__name__} {exc}".rstrip()
                if not resend:
                    raise EtcdError(f"etcd did not answer ({problem})") from None
                problems.append(problem)
            self._current = (self._current + 1) % len(self.endpoints)
        raise EtcdError("no etcd endpoint answered (" + "; ".join(problems) + ")")

    async def _post_to(self, endpoint: str, path: str, body: Json) -> Json:
        headers = await self._auth_headers(endpoint)
        async with asyncio.timeout(self.timeout):
            async with self._client().post(
                f"{endpoint}{path}", json=body, headers=headers, ssl=self._ssl
            ) as answer:
                result: Json = await answer.json(content_type=None)
        try:
            wire.check_error(result)
        except EtcdError as exc:
            if exc.code == wire.CODE_UNAUTHENTICATED and self._user is not None:
                self._token = None  # expired: authenticate again, then retry once
                return await self._post_to(endpoint, path, body)
            raise
        return result

    async def _auth_headers(self, endpoint: str) -> dict[str, str]:
        if self._user is None:
            return {}
        if self._token is None:
            async with asyncio.timeout(self.timeout):
                async with self._client().post(
                    f"{endpoint}/v3/auth/authenticate",
                    json={"name": self._user, "password": self._password or ""},
                    ssl=self._ssl,
                ) as answer:
                    result: Json = await answer.json(content_type=None)
            wire.check_error(result)
            self._token = str(result.get("token", ""))
        return {"Authorization": self._token}

    async def range(
        self, key: bytes, end: bytes, revision: int = 0, limit: int = 0
    ) -> wire.RangeAnswer:
        return wire.parse_range(
            await self._post("/v3/kv/range", wire.range_request(key, end, revision, limit))
        )

    async def range_prefix(
        self, prefix: bytes, page: int = 1000
    ) -> AsyncIterator[tuple[wire.KeyValue, int]]:
        """Every key under `prefix` as of one revision (read in pages at that revision),
        each with that revision."""
        key, end, revision = prefix, wire.prefix_end(prefix), 0
        while True:
            answer = await self.range(key, end, revision, page)
            revision = revision or answer.revision
            for kv in answer.kvs:
                yield kv, revision
            if not answer.more or not answer.kvs:
                return
            key = answer.kvs[-1].key + b"\0"

    async def txn(
        self, compare: list[Json], success: list[Json], failure: list[Json] | None = None
    ) -> wire.TxnAnswer:
        body = wire.txn_request(compare, success, failure)
        return wire.parse_txn(await self._post("/v3/kv/txn", body, resend=False))

    async def watch(
        self, key: bytes, end: bytes, start_revision: int
    ) -> AsyncIterator[wire.WatchAnswer]:
        """The changes from `start_revision` on, as etcd sends them, until the stream
        breaks (EtcdError) or etcd cancels it (an answer with `canceled`)."""
        body = wire.watch_request(key, end, start_revision)
        endpoint = self.endpoint
        try:
            headers = await self._auth_headers(endpoint)
            async with self._client().post(
                f"{endpoint}/v3/watch", json=body, headers=headers, ssl=self._ssl
            ) as answer:
                decoder = wire.StreamDecoder()
                async for chunk in answer.content.iter_any():
                    for message in decoder.feed(chunk):
                        yield wire.parse_watch(message)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._current = (self._current + 1) % len(self.endpoints)
            raise EtcdError(f"watch on {endpoint} broke: {type(exc).__name__} {exc}") from None
        self._current = (self._current + 1) % len(self.endpoints)
        raise EtcdError(f"watch on {endpoint} ended: the member closed it")

    async def lease_grant(self, ttl: int) -> int:
        lease, _ = wire.parse_lease_grant(await self._post("/v3/lease/grant", {"TTL": str(ttl)}))
        return lease

    async def lease_keepalive(self, lease: int) -> int:
        """Refresh `lease`; its TTL now (0: it had expired and is gone)."""
        return wire.parse_keepalive(await self._post("/v3/lease/keepalive", {"ID": str(lease)}))

    async def lease_revoke(self, lease: int) -> None:
        await self._post("/v3/lease/revoke", {"ID": str(lease)})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

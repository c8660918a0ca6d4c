"""The API's listener: HTTPS with api.tls, and startup errors that name the key."""

import socket
import ssl
import subprocess
from pathlib import Path

import aiohttp
import pytest

from isns_server.api import ApiServer, build_app
from isns_server.api.audit import AuditLog
from isns_server.api.auth import Tokens
from isns_server.api.context import ApiContext, PortalState
from isns_server.api.writes import Planner, Writer
from isns_server.config.schema import ApiSection, ApiTls, ListenAddress
from isns_server.service import ListenError
from isns_server.service.dispatcher import Dispatcher
from isns_server.store import MemoryStore

from ..processes import free_port
from ..unit.api.conftest import new_api_registry


def self_signed(directory: Path) -> ApiTls:
    cert, key = directory / "api.crt", directory / "api.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return ApiTls(cert, key)


async def ready() -> dict[str, str | None]:
    return {}


def server(settings: ApiSection) -> ApiServer:
    """An API serving health checks only: its listener is what is tested here."""
    registry = new_api_registry()
    store = MemoryStore()
    audit = AuditLog(store, [], keep=1)
    writer = Writer(Dispatcher(registry, store), audit)
    context = ApiContext(registry, Planner(registry), writer, audit, PortalState(list, list), ready)
    return ApiServer(settings, build_app(context, Tokens([]), 1024))


async def test_https_with_api_tls(tmp_path: Path) -> None:
    tls = self_signed(tmp_path)
    port = free_port()
    api = server(ApiSection(listen=ListenAddress("127.0.0.1", port), tls=tls))
    await api.start()
    try:
        trusted = ssl.create_default_context(cafile=str(tls.cert))
        async with aiohttp.ClientSession() as http:
            answer = await http.get(f"https://127.0.0.1:{port}/healthz", ssl=trusted)
            assert answer.status == 200
            with pytest.raises(aiohttp.ClientError):
                await http.get(f"http://127.0.0.1:{port}/healthz")
    finally:
        await api.stop()


async def test_a_bad_certificate_or_a_busy_port_stops_startup_naming_the_key(
    tmp_path: Path,
) -> None:
    missing = ApiTls(tmp_path / "none.crt", tmp_path / "none.key")
    with pytest.raises(ListenError, match=r"api\.tls: cannot load certificate .*none\.crt"):
        await server(
            ApiSection(listen=ListenAddress("127.0.0.1", free_port()), tls=missing)
        ).start()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        api = server(ApiSection(listen=ListenAddress("127.0.0.1", port)))
        with pytest.raises(ListenError, match=r"127\.0\.0\.1:\d+.*api\.listen"):
            await api.start()
        await api.stop()

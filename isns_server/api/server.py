"""The API's aiohttp application and its listener (api.listen, optional TLS, the
connection limits of listener.py)."""

import logging
import ssl
from collections.abc import Iterable

from aiohttp import web

from ..admission import Admission, ConnectionLimits, TcpListener
from ..config import ListenAddress
from ..config.schema import ApiSection, ApiTls
from ..service.server import ListenError, listen_problem
from . import (
    events,
    health_routes,
    metrics_routes,
    openapi,
    page_routes,
    read_routes,
    write_routes,
    zoning_routes,
)
from .auth import Tokens, auth_middleware
from .context import CONTEXT, ApiContext
from .errors import errors_middleware
from .listener import HTTP_LOG, AdmittedConnection

log = logging.getLogger(__name__)

# One route table per concern.
ROUTE_TABLES: tuple[web.RouteTableDef, ...] = (
    health_routes.routes,
    openapi.routes,
    read_routes.routes,
    write_routes.routes,
    zoning_routes.routes,
    page_routes.routes,
    events.routes,
    metrics_routes.routes,
)


def build_app(
    context: ApiContext,
    tokens: Tokens,
    max_body_size: int,
    route_tables: Iterable[web.RouteTableDef] = ROUTE_TABLES,
) -> web.Application:
    app = web.Application(
        middlewares=[errors_middleware, auth_middleware(tokens)], client_max_size=max_body_size
    )
    app[CONTEXT] = context
    app.on_shutdown.append(events.close_streams)
    for table in route_tables:
        app.add_routes(table)
    return app


def tls_context(tls: ApiTls) -> ssl.SSLContext:
    tls_settings = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        tls_settings.load_cert_chain(tls.cert, tls.key)
    except (OSError, ssl.SSLError) as exc:
        raise ListenError(
            f"api.tls: cannot load certificate {tls.cert} with key {tls.key}: {exc}; "
            "check both are PEM files this user can read and that they match"
        ) from None
    return tls_settings


def connection_limits(settings: ApiSection) -> ConnectionLimits:
    return ConnectionLimits(
        "api",
        settings.max_connections,
        settings.max_connections_per_source,
        settings.idle_timeout,
    )


class ApiServer:
    def __init__(self, settings: ApiSection, app: web.Application) -> None:
        self.settings = settings
        self.app = app
        self.runner: web.AppRunner | None = None
        self.listener: TcpListener | None = None
        self.admission = Admission("management API", connection_limits(settings))
        self.port: int | None = None

    async def start(self) -> None:
        settings = self.settings
        tls = tls_context(settings.tls) if settings.tls is not None else None
        self.runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, logger=HTTP_LOG
        )
        await self.runner.setup()
        handlers = self.runner.server
        assert handlers is not None
        address = settings.listen
        try:
            self.listener = TcpListener.open(
                address.host,
                address.port,
                lambda: AdmittedConnection(handlers, self.admission, tls),
                "management API",
            )
        except OSError as exc:
            await self.stop()
            raise listen_problem(address, "TCP", "api.listen", exc) from None
        self.listener.start()
        self.port = self.listener.port
        scheme = "https" if tls else "http"
        bound = ListenAddress(address.host, self.port)
        log.info("management API listening on %s://%s/api/v1/", scheme, bound)

    async def stop(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        self.admission.close_all()  # those still in their TLS handshake: aiohttp never saw them

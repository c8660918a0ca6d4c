"""Liveness and readiness for supervisors and load balancers; no token needed."""

from aiohttp import web

from .auth import public
from .context import context

routes = web.RouteTableDef()


@routes.get("/healthz")
@public
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
@public
async def readyz(request: web.Request) -> web.Response:
    problems = await context(request).readiness()
    failing = {name: problem for name, problem in problems.items() if problem is not None}
    checks = {name: problem or "ok" for name, problem in problems.items()}
    status = "not ready" if failing else "ready"
    return web.json_response({"status": status, "checks": checks}, status=503 if failing else 200)

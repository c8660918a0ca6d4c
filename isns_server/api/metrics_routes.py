"""/metrics: the application's Prometheus metrics (isns_server/metrics.py).

It takes a token like every other route (a read token is enough): the per-LUN series
name the targets, and Prometheus sends one with `authorization: {credentials_file: ...}`.
"""

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .context import context

routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(context(request).metrics)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

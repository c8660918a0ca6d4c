"""Routes that change the registry: discovery domains, DD sets, entity deregistration.
Each checks its input (writes.Planner), honours If-Match where the object has an ETag,
and is applied and audited by writes.Writer."""

from typing import Any

from aiohttp import web

from .auth import PRINCIPAL, Principal
from .context import context
from .errors import json_body
from .writes import Plan, check_if_match, etag

routes = web.RouteTableDef()


async def _apply(
    request: web.Request, plan: Plan, body: Any = None, status: int = 200
) -> web.Response:
    principal: Principal = request[PRINCIPAL]
    summary = {"method": request.method, "path": request.path, "body": body}
    after = await context(request).writer.apply(plan, principal.name, summary)
    if after is None:
        return web.Response(status=204)
    return web.json_response(after, status=status, headers={"ETag": etag(after)})


def _dd_id(request: web.Request) -> int:
    return int(request.match_info["dd_id"])


def _dds_id(request: web.Request) -> int:
    return int(request.match_info["dds_id"])


@routes.post("/api/v1/dds")
async def create_dd(request: web.Request) -> web.Response:
    body = await json_body(request)
    plan = context(request).planner.create_dd(body)
    return await _apply(request, plan, body, status=201)


@routes.patch("/api/v1/dds/{dd_id:\\d+}")
async def rename_dd(request: web.Request) -> web.Response:
    planner = context(request).planner
    check_if_match(request.headers.get("If-Match"), planner.dd(_dd_id(request)))
    body = await json_body(request)
    return await _apply(request, planner.rename_dd(_dd_id(request), body), body)


@routes.delete("/api/v1/dds/{dd_id:\\d+}")
async def delete_dd(request: web.Request) -> web.Response:
    planner = context(request).planner
    check_if_match(request.headers.get("If-Match"), planner.dd(_dd_id(request)))
    return await _apply(request, planner.delete_dd(_dd_id(request)))


@routes.post("/api/v1/dds/{dd_id:\\d+}/members")
async def add_members(request: web.Request) -> web.Response:
    planner = context(request).planner
    check_if_match(request.headers.get("If-Match"), planner.dd(_dd_id(request)))
    body = await json_body(request)
    return await _apply(request, planner.add_members(_dd_id(request), body), body)


@routes.post("/api/v1/dds/{dd_id:\\d+}/members/remove")
async def remove_members(request: web.Request) -> web.Response:
    planner = context(request).planner
    check_if_match(request.headers.get("If-Match"), planner.dd(_dd_id(request)))
    body = await json_body(request)
    return await _apply(request, planner.remove_members(_dd_id(request), body), body)


@routes.post("/api/v1/dd-sets")
async def create_dd_set(request: web.Request) -> web.Response:
    body = await json_body(request)
    plan = context(request).planner.create_dd_set(body)
    return await _apply(request, plan, body, status=201)


@routes.patch("/api/v1/dd-sets/{dds_id:\\d+}")
async def update_dd_set(request: web.Request) -> web.Response:
    planner = context(request).planner
    check_if_match(request.headers.get("If-Match"), planner.dd_set(_dds_id(request)))
    body = await json_body(request)
    return await _apply(request, planner.update_dd_set(_dds_id(request), body), body)


@routes.delete("/api/v1/dd-sets/{dds_id:\\d+}")
async def delete_dd_set(request: web.Request) -> web.Response:
    planner = context(request).planner
    check_if_match(request.headers.get("If-Match"), planner.dd_set(_dds_id(request)))
    return await _apply(request, planner.delete_dd_set(_dds_id(request)))


@routes.post("/api/v1/dd-sets/{dds_id:\\d+}/dds")
async def add_set_members(request: web.Request) -> web.Response:
    planner = context(request).planner
    check_if_match(request.headers.get("If-Match"), planner.dd_set(_dds_id(request)))
    body = await json_body(request)
    return await _apply(request, planner.add_set_members(_dds_id(request), body), body)


@routes.delete("/api/v1/dd-sets/{dds_id:\\d+}/dds/{dd_id:\\d+}")
async def remove_set_member(request: web.Request) -> web.Response:
    planner = context(request).planner
    check_if_match(request.headers.get("If-Match"), planner.dd_set(_dds_id(request)))
    return await _apply(request, planner.remove_set_member(_dds_id(request), _dd_id(request)))


@routes.delete("/api/v1/entities/{eid}")
async def deregister_entity(request: web.Request) -> web.Response:
    plan = context(request).planner.deregister_entity(request.match_info["eid"])
    return await _apply(request, plan)

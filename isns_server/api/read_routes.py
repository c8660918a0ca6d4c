"""GET routes over the registry: entities, nodes, portals, portal groups, DDs, DD sets,
SCN subscriptions; the portal's targets and sessions; the audit log."""

from itertools import takewhile

from aiohttp import web

from ..isnsp.constants import NodeType
from ..names import normalize_name
from ..registry.objects import ObjectType, PGKey
from .context import context
from .errors import ApiError
from .pages import decode_cursor, keys_from, limit_of, page_response
from .views import (
    dd_view,
    dds_view,
    entity_view,
    node_view,
    portal_group_view,
    portal_view,
    subscription_view,
)
from .writes import etag

routes = web.RouteTableDef()

_NODE_TYPES = {
    "target": NodeType.TARGET,
    "initiator": NodeType.INITIATOR,
    "control": NodeType.CONTROL,
}


def _prefix(request: web.Request) -> str:
    return normalize_name(request.query.get("prefix", ""))


@routes.get("/api/v1/entities")
async def list_entities(request: web.Request) -> web.Response:
    ctx = context(request)
    db = ctx.registry.db
    keys = keys_from(
        db.order[ObjectType.ENTITY], db.entities, decode_cursor(request, str), _prefix(request)
    )
    entities = (db.entities[k] for k in keys)
    return await page_response(
        entities, limit_of(request), lambda e: e.eid, lambda e: entity_view(ctx.registry, e)
    )


@routes.get("/api/v1/entities/{eid}")
async def get_entity(request: web.Request) -> web.Response:
    ctx = context(request)
    eid = request.match_info["eid"]
    entity = ctx.registry.db.entities.get(normalize_name(eid))
    if entity is None:
        raise ApiError(404, f"no entity {eid!r}; GET /api/v1/entities lists them")
    return web.json_response(entity_view(ctx.registry, entity))


@routes.get("/api/v1/nodes")
async def list_nodes(request: web.Request) -> web.Response:
    ctx = context(request)
    db = ctx.registry.db
    wanted = request.query.get("type")
    if wanted is not None and wanted not in _NODE_TYPES:
        raise ApiError(400, f"type must be one of {', '.join(_NODE_TYPES)}", "type")
    keys = keys_from(
        db.order[ObjectType.NODE], db.nodes, decode_cursor(request, str), _prefix(request)
    )
    nodes = (db.nodes[k] for k in keys)
    if wanted is not None:
        bit = _NODE_TYPES[wanted]
        nodes = (n for n in nodes if (n.node_type or 0) & bit)
    return await page_response(
        nodes, limit_of(request), lambda n: n.name, lambda n: node_view(ctx.registry, n)
    )


@routes.get("/api/v1/nodes/{name}")
async def get_node(request: web.Request) -> web.Response:
    ctx = context(request)
    name = request.match_info["name"]
    node = ctx.registry.db.nodes.get(normalize_name(name))
    if node is None:
        raise ApiError(404, f"no registered node {name!r}; GET /api/v1/nodes lists them")
    return web.json_response(node_view(ctx.registry, node))


@routes.get("/api/v1/portals")
async def list_portals(request: web.Request) -> web.Response:
    ctx = context(request)
    db = ctx.registry.db
    after = decode_cursor(request, tuple[bytes, int])
    portals = (db.portals[k] for k in db.order[ObjectType.PORTAL].after(after))
    return await page_response(
        portals, limit_of(request), lambda p: p.key, lambda p: portal_view(ctx.registry, p)
    )


@routes.get("/api/v1/portal-groups")
async def list_portal_groups(request: web.Request) -> web.Response:
    db = context(request).registry.db
    after: PGKey | None = decode_cursor(request, tuple[str, bytes, int])
    prefix = _prefix(request)
    # A PG's key starts with its node's name: the prefix's PGs are one run of keys.
    start = after if after is None or after[0] >= prefix else (prefix, b"", -1)
    keys = db.order[ObjectType.PORTAL_GROUP].after(start)
    pgs = (db.pgs[k] for k in takewhile(lambda k: k[0].startswith(prefix), keys))
    return await page_response(pgs, limit_of(request), lambda pg: pg.key, portal_group_view)


@routes.get("/api/v1/dds")
async def list_dds(request: web.Request) -> web.Response:
    db = context(request).registry.db
    prefix = request.query.get("prefix", "")
    dds = (db.dds[k] for k in db.order[ObjectType.DD].after(decode_cursor(request, int)))
    dds = (dd for dd in dds if dd.name.startswith(prefix))
    return await page_response(dds, limit_of(request), lambda dd: dd.id, lambda dd: dd_view(db, dd))


@routes.get("/api/v1/dds/{dd_id:\\d+}")
async def get_dd(request: web.Request) -> web.Response:
    view = context(request).planner.dd(int(request.match_info["dd_id"]))
    return web.json_response(view, headers={"ETag": etag(view)})


@routes.get("/api/v1/dd-sets")
async def list_dd_sets(request: web.Request) -> web.Response:
    db = context(request).registry.db
    prefix = request.query.get("prefix", "")
    sets = (db.ddss[k] for k in db.order[ObjectType.DDS].after(decode_cursor(request, int)))
    sets = (s for s in sets if s.name.startswith(prefix))
    return await page_response(sets, limit_of(request), lambda s: s.id, dds_view)


@routes.get("/api/v1/dd-sets/{dds_id:\\d+}")
async def get_dd_set(request: web.Request) -> web.Response:
    view = context(request).planner.dd_set(int(request.match_info["dds_id"]))
    return web.json_response(view, headers={"ETag": etag(view)})


@routes.get("/api/v1/subscriptions")
async def list_subscriptions(request: web.Request) -> web.Response:
    db = context(request).registry.db
    after = decode_cursor(request, str)
    prefix = _prefix(request)
    # Walk the node order and keep subscribers: stops once the page is full.
    keys = keys_from(db.order[ObjectType.NODE], db.nodes, after, prefix)
    nodes = (db.subscribers[n] for n in keys if n in db.subscribers)
    return await page_response(nodes, limit_of(request), lambda n: n.name, subscription_view)


@routes.get("/api/v1/targets")
async def list_local_targets(request: web.Request) -> web.Response:
    return web.json_response({"items": context(request).portal.targets()})


@routes.get("/api/v1/sessions")
async def list_sessions(request: web.Request) -> web.Response:
    return web.json_response({"items": context(request).portal.sessions()})


@routes.get("/api/v1/audit")
async def list_audit(request: web.Request) -> web.Response:
    audit = context(request).audit
    records = audit.newest_first(decode_cursor(request, int))
    return await page_response(records, limit_of(request), lambda r: r["id"], lambda r: r)

"""Zoning insight: why an initiator sees a target, and what a change would do."""

from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..registry.insight import explain, preview
from .auth import reads_only
from .context import context
from .errors import ApiError, json_body
from .views import explanation_view, preview_view
from .writes import Plan, Planner

routes = web.RouteTableDef()


@routes.get("/api/v1/zoning/explain")
async def explain_visibility(request: web.Request) -> web.Response:
    registry = context(request).registry
    names = {}
    for key in ("initiator", "target"):
        value = request.query.get(key)
        if not value:
            raise ApiError(400, f"{key} is required: an iSCSI name", key)
        names[key] = value
    answer = explain(registry.db, registry.policy, names["initiator"], names["target"])
    return web.json_response(explanation_view(answer))


def _dd(body: dict[str, Any]) -> int:
    return _id(body, "dd")


def _set(body: dict[str, Any]) -> int:
    return _id(body, "dd_set")


def _id(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(
            400, f"{key} must be the ID of a {'DD set' if key == 'dd_set' else 'DD'}", key
        )
    return value


# The changes a preview can evaluate: the write routes' own planners.
_ACTIONS: dict[str, Callable[[Planner, dict[str, Any]], Plan]] = {
    "create_dd": lambda p, b: p.create_dd(b),
    "rename_dd": lambda p, b: p.rename_dd(_dd(b), b),
    "add_members": lambda p, b: p.add_members(_dd(b), b),
    "remove_members": lambda p, b: p.remove_members(_dd(b), b),
    "delete_dd": lambda p, b: p.delete_dd(_dd(b)),
    "create_dd_set": lambda p, b: p.create_dd_set(b),
    "update_dd_set": lambda p, b: p.update_dd_set(_set(b), b),
    "add_dd_set_members": lambda p, b: p.add_set_members(_set(b), b),
    "remove_dd_set_member": lambda p, b: p.remove_set_member(_set(b), _dd(b)),
    "delete_dd_set": lambda p, b: p.delete_dd_set(_set(b)),
}


@routes.post("/api/v1/zoning/preview")
@reads_only
async def preview_change(request: web.Request) -> web.Response:
    ctx = context(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object", "body")
    action = body.get("action")
    if not isinstance(action, str) or action not in _ACTIONS:
        raise ApiError(400, f"action must be one of {', '.join(_ACTIONS)}", "action")
    plan = _ACTIONS[action](ctx.planner, body)
    sessions = [(s["initiator"], s["target"]) for s in ctx.portal.sessions() if s["target"]]
    registry = ctx.registry
    answer = preview(registry.db, registry.policy, plan.change, sessions)
    return web.json_response({"action": action, "what": plan.what, **preview_view(answer)})

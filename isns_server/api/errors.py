"""Errors as the API answers them: JSON `{"error": ..., "field": ...}` written for an
operator, with the HTTP status that says whose fault it is."""

import json
import logging
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Refuse a request with `status`; `field` names the part of the request at fault
    (a JSON path such as `members[2]`, a query parameter, a header)."""

    def __init__(self, status: int, error: str, field: str | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.field = field


def error_response(
    status: int, error: str, field: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response({"error": error, "field": field}, status=status, headers=headers)


# aiohttp's own refusals (no such route, wrong method, body too large), in our words.
_HTTP_ERRORS = {
    404: ("no such API route; GET /api/v1/openapi.json lists them", None),
    405: ("this route does not take that method; GET /api/v1/openapi.json lists them", None),
    413: ("request body too large; raise api.max_body_size if this is intended", "body"),
}


@web.middleware
async def errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ApiError as exc:
        return error_response(exc.status, exc.error, exc.field)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error, field = _HTTP_ERRORS.get(exc.status, (exc.reason, None))
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return error_response(exc.status, error, field, headers)
    except Exception:
        log.exception("internal error answering %s %s", request.method, request.path)
        return error_response(500, "internal error; the server log has the details")


async def json_body(request: web.Request) -> Any:
    """The request's JSON body, or 400 naming what is wrong with it."""
    if not request.can_read_body:
        raise ApiError(400, "a JSON body is required", "body")
    text = await request.read()  # 413 past api.max_body_size
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}", "body") from None

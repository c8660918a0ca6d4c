"""The web page at `/`: static files shipped in the package (api/static), no build step,
nothing fetched from elsewhere. The page itself needs no token; it asks for one and
sends it with every API call it makes."""

from pathlib import Path

from aiohttp import web

from .auth import public
from .errors import ApiError

routes = web.RouteTableDef()

STATIC = Path(__file__).parent / "static"
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
_FILES = frozenset(("index.html", "app.js", "style.css"))
# Only this server's own files run on the page: the token in it is worth protecting.
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _file(name: str) -> web.Response:
    path = STATIC / name
    return web.Response(
        body=path.read_bytes(),
        content_type=_TYPES[path.suffix],
        charset="utf-8",
        headers=_HEADERS,
    )


@routes.get("/")
@public
async def page(request: web.Request) -> web.Response:
    return _file("index.html")


@routes.get("/static/{name}")
@public
async def static_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in _FILES:
        raise ApiError(404, f"no page file {name!r}")
    return _file(name)

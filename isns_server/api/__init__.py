"""The management API (aiohttp): read the registry, zone it, audit every change.

A front-end beside iSNS, the portal and SLP, over the same registry; writes are iSNS
requests handed to the same Dispatcher. docs/api.md is the administrator's view.
"""

from .server import ROUTE_TABLES, ApiServer, build_app

__all__ = ["ROUTE_TABLES", "ApiServer", "build_app"]

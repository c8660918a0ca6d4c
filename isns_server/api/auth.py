"""Bearer tokens: who may read, who may change. Tokens live in files (`api.tokens`); with
none configured, the first start writes one admin token under data_dir."""

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from ..config.schema import ApiSection
from .errors import error_response

log = logging.getLogger(__name__)

READ, ADMIN = "read", "admin"
GENERATED_TOKEN_FILE = "api-admin.token"
_SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS"))
_PUBLIC = "_isns_api_public"
_READS_ONLY = "_isns_api_reads_only"

Handler = TypeVar("Handler", bound=Callable[..., Any])


class TokenError(Exception):
    """A token file cannot be used; the message says which and what to do."""


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str


PRINCIPAL = web.RequestKey("isns_api_principal", Principal)


class Tokens:
    """Finds the principal a presented token belongs to. Every configured token is
    compared, each in constant time over equal-length digests, so the answer's timing
    says nothing about which token, or how much of one, was close."""

    def __init__(self, tokens: list[tuple[str, Principal]]) -> None:
        self._entries = [(_digest(token), principal) for token, principal in tokens]

    def find(self, presented: str) -> Principal | None:
        digest = _digest(presented)
        found = None
        for expected, principal in self._entries:
            if hmac.compare_digest(digest, expected):
                found = principal
        return found


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def load_tokens(settings: ApiSection, data_dir: Path) -> Tokens:
    """The configured tokens, or the generated admin token when none are configured."""
    if not settings.tokens:
        return Tokens(
            [(_generated_token(data_dir / GENERATED_TOKEN_FILE), Principal(ADMIN, ADMIN))]
        )
    found = []
    for i, entry in enumerate(settings.tokens):
        try:
            token = entry.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise TokenError(
                f"api.tokens[{i}] ({entry.name}): cannot read {entry.token_file}: {exc.strerror}"
            ) from None
        if len(token) < 16:
            raise TokenError(
                f"api.tokens[{i}] ({entry.name}): {entry.token_file} must hold a token of at "
                "least 16 characters (e.g. the output of `openssl rand -hex 32`)"
            )
        found.append((token, Principal(entry.name, entry.role)))
    return Tokens(found)


def _generated_token(path: Path) -> str:
    """The token in `path`, written there first (mode 0600) if the file does not exist."""
    try:
        token = path.read_text(encoding="utf-8").strip()
        if token:
            log.info("management API: admin token read from %s (no api.tokens configured)", path)
            return token
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise TokenError(f"cannot read the API admin token {path}: {exc.strerror}") from None
    token = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(token + "\n")
    except OSError as exc:
        raise TokenError(f"cannot write the API admin token to {path}: {exc.strerror}") from None
    log.warning(
        "management API: no api.tokens configured; wrote an admin token to %s (mode 0600): "
        "send it as `Authorization: Bearer <token>`",
        path,
    )
    return token


def public(handler: Handler) -> Handler:
    """Mark a route that needs no token (health checks)."""
    setattr(handler, _PUBLIC, True)
    return handler


def reads_only(handler: Handler) -> Handler:
    """Mark a POST route that changes nothing (a preview): a read token may use it."""
    setattr(handler, _READS_ONLY, True)
    return handler


def auth_middleware(tokens: Tokens) -> Any:
    @web.middleware
    async def authenticate(request: web.Request, handler: Any) -> web.StreamResponse:
        route_handler = request.match_info.handler
        if getattr(route_handler, _PUBLIC, False) or request.match_info.http_exception:
            response: web.StreamResponse = await handler(request)
            return response
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        principal = tokens.find(presented.strip()) if scheme.lower() == "bearer" else None
        if principal is None:
            return error_response(
                401,
                "a valid token is required: send `Authorization: Bearer <token>` "
                "(api.tokens, or the generated admin token in data_dir)",
                "Authorization",
                {"WWW-Authenticate": 'Bearer realm="isns-server"'},
            )
        writes = request.method not in _SAFE_METHODS and not getattr(
            route_handler, _READS_ONLY, False
        )
        if writes and principal.role != ADMIN:
            return error_response(
                403, f"token {principal.name!r} has role {principal.role}: changes need admin"
            )
        request[PRINCIPAL] = principal
        response = await handler(request)
        return response

    return authenticate

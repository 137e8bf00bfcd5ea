"""Every error leaves in Skop's ErrorResponse shape; `/scrape` routes need an API key."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler

from skopd.errors import ApiError, Unauthorized, Unavailable, error_body
from skopd.web.tokens import TokenSigner

log = logging.getLogger("skopd.web")

OWNER: web.RequestKey[str] = web.RequestKey("owner", str)
# Set when a request was authorised by a stream token scoped to one job.
TOKEN_JOB: web.RequestKey[str] = web.RequestKey("token_job", str)
SIGNER_KEY: web.AppKey[TokenSigner] = web.AppKey("token_signer", TokenSigner)
API_KEYS: web.AppKey[tuple[str, ...]] = web.AppKey("api_keys", tuple)
MAX_BYTES: web.AppKey[int] = web.AppKey("max_request_bytes", int)
RETRY_AFTER_STOPPING_S = 5
_SAFE = frozenset({"GET", "HEAD"})


class Drain:
    """Shutdown state. Once `stopping`, requests that would change something answer 503 while
    those in flight finish; `idle` is set whenever none is in flight, so stopping waits no
    longer than the last of them."""

    def __init__(self) -> None:
        self.stopping = False
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()


DRAIN: web.AppKey[Drain] = web.AppKey("drain", Drain)


# The routes of each API face answer errors in that face's own shape: (path pattern,
# body of an error from status, message and path). Skop's ErrorResponse everywhere else.
ErrorShape = Callable[[int, str, str], bytes]
ERROR_SHAPES: web.AppKey[tuple[tuple[re.Pattern[str], ErrorShape], ...]] = web.AppKey(
    "error_shapes", tuple
)
API_PREFIXES = ("/scrape", "/api/")  # what needs a key, and what stops while shutting down


def _json_error(
    request: web.Request, status: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    shape: ErrorShape = error_body
    for pattern, face_shape in request.app.get(ERROR_SHAPES, ()):
        if pattern.match(request.path):
            shape = face_shape
            break
    return web.Response(
        body=shape(status, message, request.path),
        status=status,
        content_type="application/json",
        headers=headers,
    )


_REASONS = {
    404: "not found",
    405: "method not allowed",
    413: "request body too large",
}


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return _json_error(request, exc.status, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = _REASONS.get(exc.status, exc.reason)
        if exc.status == 404:
            message = f"no route {request.method} {request.path}"
        elif exc.status == 405:
            allowed = exc.headers.get("Allow", "")
            message = f"method {request.method} not allowed on {request.path}; allowed: {allowed}"
        elif exc.status == 413:
            message = f"request body too large (limit {request.app[MAX_BYTES]} bytes)"
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return _json_error(request, exc.status, message, headers)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _json_error(request, 500, "internal server error")


@web.middleware
async def drain(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[DRAIN]
    if state.stopping and request.method not in _SAFE and request.path.startswith(API_PREFIXES):
        raise Unavailable(
            "skopd is shutting down and takes no new work; retry shortly",
            headers={"Retry-After": str(RETRY_AFTER_STOPPING_S)},
        )
    state.in_flight += 1
    state.idle.clear()
    try:
        return await handler(request)
    finally:
        state.in_flight -= 1
        if not state.in_flight:
            state.idle.set()


def owner_of(key: str) -> str:
    """Jobs are stored under a digest of the key that made them, never the key itself."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _is_stream(path: str) -> bool:
    return path == "/scrape/events" or (
        path.startswith("/scrape/events/") and path != "/scrape/events/token"
    )


def _presented_key(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("X-API-Key")


@web.middleware
async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(API_PREFIXES):
        return await handler(request)
    keys = request.app[API_KEYS]
    if not keys:
        request[OWNER] = ""
        return await handler(request)
    presented = _presented_key(request)
    token = request.query.get("token")
    if not presented and token and request.method == "GET" and _is_stream(request.path):
        claims = request.app[SIGNER_KEY].verify(token)
        if claims is None:
            raise Unauthorized("invalid or expired stream token; mint a new one")
        request[OWNER] = claims.owner
        if claims.job_id is not None:
            request[TOKEN_JOB] = claims.job_id
        return await handler(request)
    if not presented:
        raise Unauthorized(
            "missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`"
        )
    # Compare against every key, in constant time, so timing tells nothing about near misses.
    # A byte that is not UTF-8 arrives as a surrogate: kept as that byte, it matches no key.
    match = False
    given = presented.encode("utf-8", "surrogateescape")
    for key in keys:
        match |= hmac.compare_digest(given, key.encode())
    if not match:
        raise Unauthorized("invalid API key")
    request[OWNER] = owner_of(presented)
    return await handler(request)

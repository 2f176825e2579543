"""The floe API application: Magnum's v1 API (plus floe's extensions) over a Runtime."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import uuid

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from floe import __version__
from floe.api import manila, openapi, versions
from floe.api.cache import ApiCaches, cacheable
from floe.api.errors import error_document, error_response, install_error_handlers
from floe.api.routers import (
    certificates,
    clusters,
    clustertemplates,
    maintenance,
    nodes,
    share_attachments,
    unsupported,
)
from floe.runtime import Runtime
from floe.services import identity
from floe.services.errors import NotAuthorized

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-OpenStack-Request-Id"
# Magnum's bookmark links are unversioned (/clusters/<uuid>); it serves them as /v1.
_BOOKMARK_ROOTS = ("clusters", "clustertemplates", "certificates", "mservices")


def _normalise_path(path: str) -> str:
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    first = path.split("/", 2)[1]
    if first in _BOOKMARK_ROOTS:
        path = "/v1" + path
    return path


def _header(scope: Scope, name: bytes) -> str | None:
    values = [v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == name]
    return ", ".join(values) if values else None


# The one route whose body may exceed the API's limit (it streams to disk, bounded apart).
IMAGE_UPLOAD = ("POST", "/v1/floe/images")
# What may spell a non-finite number: the constants, or a float past 1e308 (json reads 1e999 as inf).
_NON_FINITE = re.compile(rb"NaN|Infinity|[eE][+-]?[0-9]{3}|[0-9]{300}")


class BodyTooLarge(StarletteHTTPException):
    """Raised from `receive` once a body passes its limit; the app's handlers shape the 413."""

    def __init__(self, limit: int):
        super().__init__(413, f"The request body is larger than {limit} bytes, the most this API accepts.")


class _NonFinite(ValueError):
    pass


def _reject_constant(name: str) -> None:
    raise _NonFinite(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NonFinite(text[:32])
    return value


def _check_finite(body: bytes) -> None:
    """400 if `body` is JSON with NaN or ±Infinity (Python's json takes them; JSON does not)."""
    if not _NON_FINITE.search(body):
        return
    try:
        json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)
    except _NonFinite as exc:
        raise StarletteHTTPException(
            400, f"The request body is not valid JSON: {exc} is not a number (JSON has no NaN or Infinity)."
        ) from None
    except (ValueError, RecursionError, MemoryError):
        return  # not JSON: the route says what it expected


def limited(receive: Receive, limit: int, check_json: bool) -> Receive:
    """`receive`, refusing a body (chunked or not) once it passes `limit` bytes, and one with
    non-finite numbers once it is complete (when `check_json`)."""
    received = 0
    parts: list[bytes] = []

    async def receive_limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                raise BodyTooLarge(limit)
            if check_json:
                parts.append(chunk)
                if not message.get("more_body"):
                    _check_finite(b"".join(parts))
                    parts.clear()
        return message

    return receive_limited


def _declared_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    if value is None or not (value.isascii() and value.isdigit()):
        return None  # absent or odd: the streaming count still applies
    return int(value) if len(value) <= 18 else 10**18  # int() refuses 4,301 digits


class FloeMiddleware:
    """Outermost layer: trailing slashes, request ids, microversions, authentication and
    the 500 of last resort.

    Pure ASGI, so it wraps even errors that escape every handler: those get a
    Magnum-shaped 500 (logged here, no traceback in the response).
    """

    def __init__(self, app: ASGIApp):
        self.app = app
        # Cluster reads being built now, by key: (data version they started at, their answer).
        self._flights: dict[tuple, tuple[int, asyncio.Future]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = _normalise_path(scope["path"])
        if path != scope["path"]:
            scope = dict(scope, path=path, raw_path=path.encode())
        request_id = f"req-{uuid.uuid4()}"
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        headers = {REQUEST_ID_HEADER: request_id}
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                extra = [(k.encode(), v.encode()) for k, v in headers.items()]
                message = dict(message, headers=[*message.get("headers", []), *extra])
            await send(message)

        try:
            upload = (scope["method"], path) == IMAGE_UPLOAD
            settings = scope["app"].state.runtime.settings
            limit = settings.max_image_bytes if upload else settings.max_body_bytes
            declared = _declared_length(scope)
            if declared is not None and declared > limit:
                # Refused before anything is read (or anyone authenticated: it reveals nothing).
                too_large = BodyTooLarge(limit)
                if path == "/v2" or path.startswith("/v2/"):
                    refusal = manila.fault(413, too_large.detail, request_id)
                else:
                    refusal = error_response(413, too_large.detail, request_id)
                await refusal(scope, receive, send_with_headers)
                return
            receive = limited(receive, limit, check_json=not upload)
            if path == "/v1" or path.startswith("/v1/"):
                refusal = await self._check_v1(scope, state, headers)
                if refusal is not None:
                    await refusal(scope, receive, send_with_headers)
                    return
                if cacheable(scope):
                    await self._cached(scope, receive, send_with_headers)
                    return
            await self.app(scope, receive, send_with_headers)
        except Exception:
            log.exception("unhandled error in %s %s (%s)", scope.get("method"), path, request_id)
            if started:
                raise
            detail = f"An unexpected error occurred; see the server log for request {request_id}."
            await JSONResponse(error_document(500, detail, request_id), status_code=500)(
                scope, receive, send_with_headers
            )

    async def _check_v1(self, scope: Scope, state: dict, headers: dict[str, str]) -> JSONResponse | None:
        """Negotiate the microversion and authenticate; an error response if either fails."""
        request_id = state["request_id"]
        try:
            version = versions.parse_version(_header(scope, b"openstack-api-version"))
        except versions.VersionError as exc:
            limits = versions.version_headers(versions.MIN_VERSION)
            headers.update({k: v for k, v in limits.items() if k != versions.HEADER})
            extra = {}
            if exc.status == 406:  # as Magnum's HTTPNotAcceptableAPIVersion
                extra = {"max_version": versions.fmt(versions.MAX_VERSION),
                         "min_version": versions.fmt(versions.MIN_VERSION)}
            return error_response(exc.status, exc.detail, request_id, **extra)
        state["api_version"] = version
        headers.update(versions.version_headers(version))
        if scope["path"] == "/v1":  # the discovery document is public
            return None
        # Authenticate before routing or reading the body, as keystonemiddleware does for
        # Magnum: without a valid token nothing else is revealed.
        app_state = scope["app"].state
        secret = _header(scope, b"x-auth-token")
        caller = app_state.caches.caller(secret) if secret else None
        if caller is None:
            version = app_state.caches.callers.version()
            try:
                caller = await run_in_threadpool(identity.authenticate, app_state.runtime.db, secret)
            except NotAuthorized as exc:
                return error_response(401, exc.detail, request_id)
            app_state.caches.callers.put(secret, caller, version)
        state["caller"] = caller
        return None

    async def _cached(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A cluster read: the kept answer if nothing changed since it was built, else a fresh one (kept)."""
        answers = scope["app"].state.caches.answers
        state = scope["state"]
        # Everything the answer depends on: who asks, what, in which version, and the base URL
        # its links are made of.
        key = (state["caller"], scope["path"], scope.get("query_string", b""), state["api_version"],
               scope.get("scheme"), _header(scope, b"host"), scope.get("root_path", ""))
        kept = answers.get(key)
        version = answers.version()
        flight = self._flights.get(key)
        if kept is None and flight is not None and flight[0] == version:
            # The same read is being built from data as fresh as this request's: share it
            # (a burst of polls after a change builds the answer once, not once per poll).
            kept = await asyncio.shield(flight[1])
        if kept is not None:
            status, response_headers, body = kept
            await send({"type": "http.response.start", "status": status, "headers": response_headers})
            await send({"type": "http.response.body", "body": body})
            return
        done: asyncio.Future = asyncio.get_running_loop().create_future()
        self._flights[key] = (version, done)
        start: Message = {}
        body_parts: list[bytes] = []

        async def keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                body_parts.append(message.get("body", b""))
                if not message.get("more_body") and start.get("status") == 200:
                    body = b"".join(body_parts)
                    answer = (200, list(start.get("headers", [])), body)
                    answers.put(key, answer, version, size=len(body))
                    if not done.done():
                        done.set_result(answer)
            await send(message)

        try:
            await self.app(scope, receive, keep)
        finally:
            # A later request may have replaced our entry (the data changed meanwhile) and
            # even finished and removed its own: remove the entry only if it is still ours.
            flight = self._flights.get(key)
            if flight is not None and flight[1] is done:
                del self._flights[key]
            if not done.done():
                done.set_result(None)  # an error or a refusal: those waiting build their own


def create_app(runtime: Runtime) -> FastAPI:
    """The ASGI app serving `runtime` (the engine, if any, is started by the caller)."""
    app = FastAPI(
        title="floe",
        version=__version__,
        description="Docker Swarm clusters behind OpenStack Magnum's v1 API.",
        redirect_slashes=False,
    )
    app.state.runtime = runtime
    app.state.caches = ApiCaches(runtime.db.engine)
    install_error_handlers(app)
    app.include_router(versions.router)
    app.include_router(clustertemplates.router)
    app.include_router(clusters.router)
    app.include_router(certificates.router)
    app.include_router(nodes.router)
    app.include_router(maintenance.router)
    app.include_router(share_attachments.router)
    app.include_router(unsupported.router)  # known Magnum routes floe answers without a feature
    openapi.install(app)  # /openapi.json and /v2/openapi.json, before the /v2 mount
    manila.install(app, runtime)  # Manila's v2 API for shares at /v2
    app.add_middleware(manila.RootSwitch)
    app.add_middleware(FloeMiddleware)
    return app

"""The floe API application: Magnum's v1 API with floe's extensions, and Manila's v2 API
mounted at /v2, over one Runtime.

The outermost middleware (`FloeMiddleware`) does what every API shares: trailing slashes,
request ids, the bounds on request bodies, and the 500 of last resort, each answered in the
error shape of the API the path belongs to. Each API's gate then negotiates its
microversions and authenticates (magnum/gate.py, manila/gate.py).
"""

from __future__ import annotations

import json
import logging
import math
import re
import uuid

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from floe import __version__
from floe.api import compute, extensions, identity, magnum, manila, monitoring, openapi, registry
from floe.api import metrics as floe_metrics
from floe.api.cache import ApiCaches
from floe.api.errors import ErrorShape, install_error_handlers
from floe.api.http import REQUEST_ID_HEADER, header
from floe.api.magnum import openapi as magnum_openapi
from floe.api.manila import openapi as manila_openapi
from floe.runtime import Runtime

log = logging.getLogger(__name__)



def _normalise_path(path: str) -> str:
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    return path


def error_shape(path: str) -> ErrorShape:
    """The error shape of the API `path` belongs to: Manila's under /v2, Keystone's under
    /identity, Nova's under /v2.1, Magnum's elsewhere."""
    if path == "/v2" or path.startswith("/v2/"):
        return manila.MANILA_FAULTS
    if path == "/identity" or path.startswith("/identity/"):
        return identity.KEYSTONE_ERRORS
    if path == "/v2.1" or path.startswith("/v2.1/"):
        return compute.NOVA_FAULTS
    return magnum.MAGNUM_ERRORS


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
    value = header(scope, b"content-length")
    if value is None or not (value.isascii() and value.isdigit()):
        return None  # absent or odd: the streaming count still applies
    return int(value) if len(value) <= 18 else 10**18  # int() refuses 4,301 digits


class FloeMiddleware:
    """Outermost layer: trailing slashes, request ids, body bounds, the headers every answer
    carries (`state["response_headers"]`) and the 500 of last resort.

    Pure ASGI, so it wraps even errors that escape every handler: those get a 500 in the
    API's error shape (logged here, no traceback in the response).
    """

    def __init__(self, app: ASGIApp):
        self.app = app

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
        # Headers every answer to this request carries, whoever makes it: the gates add their
        # version headers here, so even the 500 of last resort has them.
        headers = state["response_headers"] = {REQUEST_ID_HEADER: request_id}
        shape = error_shape(path)
        started = False

        async def send_with_id(message: Message) -> None:
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
                await shape.response(413, BodyTooLarge(limit).detail, request_id)(scope, receive, send_with_id)
                return
            await self.app(scope, limited(receive, limit, check_json=not upload), send_with_id)
        except Exception:
            log.exception("unhandled error in %s %s (%s)", scope.get("method"), path, request_id)
            if started:
                raise
            detail = f"An unexpected error occurred; see the server log for request {request_id}."
            await shape.response(500, detail, request_id)(scope, receive, send_with_id)


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
    install_error_handlers(app, magnum.MAGNUM_ERRORS)  # /v1 (Magnum and floe's extensions) and /
    app.include_router(magnum.router)
    app.include_router(extensions.router)
    app.include_router(registry.router)  # the image registry's token realm, /registry/token
    app.include_router(monitoring.router)  # node targets and their service discovery, /monitoring (scrape token)
    # /openapi.json and /v2/openapi.json, before the /v2 mount.
    openapi.install(app, v1=magnum_openapi.document, v2=manila_openapi.document)
    manila.install(app)  # Manila's v2 API for shares at /v2
    identity.install(app)  # Keystone's v3 API at /identity/v3
    compute.install(app)  # Nova's flavors at /v2.1
    floe_metrics.install(app)  # floe's own /metrics (Prometheus), for its scrape token or an admin
    app.add_middleware(manila.RootSwitch)
    app.add_middleware(magnum.MagnumGate)
    app.add_middleware(FloeMiddleware)
    floe_metrics.instrument(app)  # outermost: counts every answer, by route template
    return app

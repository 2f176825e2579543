"""The floe API application: Magnum's v1 API (plus floe's extensions) over a Runtime."""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from floe import __version__
from floe.api import versions
from floe.api.errors import error_document, error_response, install_error_handlers
from floe.api.routers import certificates, clusters, clustertemplates, maintenance, nodes
from floe.runtime import Runtime
from floe.services import identity
from floe.services.errors import NotAuthorized

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-OpenStack-Request-Id"
# Magnum's bookmark links are unversioned (/clusters/<uuid>); it serves them as /v1.
_BOOKMARK_ROOTS = ("clusters", "clustertemplates", "certificates")


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


class FloeMiddleware:
    """Outermost layer: trailing slashes, request ids, microversions, authentication and
    the 500 of last resort.

    Pure ASGI, so it wraps even errors that escape every handler: those get a
    Magnum-shaped 500 (logged here, no traceback in the response).
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
            if path == "/v1" or path.startswith("/v1/"):
                refusal = await self._check_v1(scope, state, headers)
                if refusal is not None:
                    await refusal(scope, receive, send_with_headers)
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
        runtime = scope["app"].state.runtime
        try:
            state["caller"] = await run_in_threadpool(
                identity.authenticate, runtime.db, _header(scope, b"x-auth-token")
            )
        except NotAuthorized as exc:
            return error_response(401, exc.detail, request_id)
        return None


def create_app(runtime: Runtime) -> FastAPI:
    """The ASGI app serving `runtime` (the engine, if any, is started by the caller)."""
    app = FastAPI(
        title="floe",
        version=__version__,
        description="Docker Swarm clusters behind OpenStack Magnum's v1 API.",
        redirect_slashes=False,
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(versions.router)
    app.include_router(clustertemplates.router)
    app.include_router(clusters.router)
    app.include_router(certificates.router)
    app.include_router(nodes.router)
    app.include_router(maintenance.router)
    app.add_middleware(FloeMiddleware)
    return app

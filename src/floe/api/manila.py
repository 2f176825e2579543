"""OpenStack Manila's v2 API: a sub-application mounted at /v2 with Manila's conventions.

- Microversions in `X-OpenStack-Manila-API-Version` (2.0 by default, `latest` allowed, 400
  for a malformed header, 406 outside [MIN, MAX]); every answer carries the version used.
- The project id in the path is optional (`/v2/shares` or `/v2/{project_id}/shares`, as the
  service catalog has it); when given it must be the token's project.
- Errors in Manila's fault shape: {"itemNotFound": {"code": 404, "message": "..."}}.
- Version discovery: `GET /` answers Magnum's document unless the request speaks Manila (its
  version header), so both clients discover floe at the same root; `GET /v2` is Manila's.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from floe import __version__
from floe.api.errors import request_id_of, validation_detail
from floe.api.versions import host_url, link
from floe.runtime import Runtime
from floe.services import identity
from floe.services.errors import NotAuthorized, ServiceError

log = logging.getLogger(__name__)

HEADER = "X-OpenStack-Manila-API-Version"
SERVICE = "shared-file-system"
MIN_VERSION = (2, 0)
# Manila's microversions up to the scheduler hints (2.65): later ones add features floe
# does not have (soft delete, locks, backups…), so clients must not ask for them.
MAX_VERSION = (2, 65)
UPDATED = "2021-09-01T00:00:00Z"
# Manila's fault names by status (manila/api/openstack/wsgi.py); others are computeFault.
FAULT_NAMES = {
    400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound", 405: "badMethod",
    409: "conflictingRequest", 413: "overLimit", 415: "badMediaType", 429: "overLimit", 501: "notImplemented",
    503: "serviceUnavailable",
}
_PROJECT_IN_PATH = re.compile(r"^/v2/([0-9a-fA-F-]{32,36})(/.*)?$")


def fmt(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def fault(status: int, message: str, request_id: str = "", **headers: str) -> JSONResponse:
    """A Manila-shaped error response."""
    name = FAULT_NAMES.get(status, "computeFault")
    body = {name: {"code": status, "message": message or HTTPStatus(status).phrase}}
    if request_id:
        body[name]["request_id"] = request_id
    return JSONResponse(body, status_code=status, headers=headers or None)


class VersionError(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


def parse_version(legacy: str | None, standard: str | None) -> tuple[int, int]:
    """The requested microversion from Manila's header (or `OpenStack-API-Version: shared-file-system X`)."""
    value = legacy
    if value is None and standard:
        for entry in standard.split(","):
            words = entry.split()
            if len(words) == 2 and words[0].lower() in (SERVICE, "share", "sharev2"):
                value = words[1]
    if value is None or not value.strip():
        return MIN_VERSION
    value = value.strip()
    if value.lower() == "latest":
        return MAX_VERSION
    # ASCII digits only (\d would take "١٢"), and few enough that int() takes them.
    m = re.fullmatch(r"([0-9]{1,9})\.([0-9]{1,9})", value)
    if not m:
        raise VersionError(
            400, f"API Version String {value} is of invalid format. Must be of format MajorNum.MinorNum."
        )
    version = (int(m.group(1)), int(m.group(2)))
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise VersionError(
            406,
            f"Version {fmt(version)} is not supported by the API. Minimum is {fmt(MIN_VERSION)} and maximum is "
            f"{fmt(MAX_VERSION)}.",
        )
    return version




def _header(scope: Scope, name: bytes) -> str | None:
    values = [v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == name]
    return ", ".join(values) if values else None


def speaks_manila(scope: Scope) -> bool:
    """Whether a request comes from a Manila client (for the shared root document)."""
    if _header(scope, HEADER.lower().encode()) is not None:
        return True
    standard = _header(scope, b"openstack-api-version") or ""
    return any(w in standard.lower() for w in (SERVICE, "sharev2"))


class ManilaMiddleware:
    """Version negotiation, authentication, the optional project id, and the 500 of last resort."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        request_id = state.get("request_id", "")
        headers: dict[str, str] = {}
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                extra = [(k.encode(), v.encode()) for k, v in headers.items()]
                message = dict(message, headers=[*message.get("headers", []), *extra])
            await send(message)

        try:
            version = parse_version(_header(scope, HEADER.lower().encode()),
                                    _header(scope, b"openstack-api-version"))
        except VersionError as exc:
            await fault(exc.status, exc.detail, request_id)(scope, receive, send)
            return
        state["manila_version"] = version
        headers.update({HEADER: fmt(version), "Vary": HEADER})
        runtime = scope["app"].state.runtime
        try:
            caller = await run_in_threadpool(identity.authenticate, runtime.db, _header(scope, b"x-auth-token"))
        except NotAuthorized as exc:
            await fault(401, exc.detail, request_id)(scope, receive, send_with_headers)
            return
        state["caller"] = caller
        path = scope["path"]
        m = _PROJECT_IN_PATH.match(path)
        if m:
            if m.group(1).lower() != caller.project_id.lower():
                await fault(400, "Malformed request url: the project id in the URL is not the token's project.",
                            request_id)(scope, receive, send_with_headers)
                return
            path = "/v2" + (m.group(2) or "")
            scope = dict(scope, path=path, raw_path=path.encode())
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            log.exception("unhandled error in %s %s (%s)", scope.get("method"), path, request_id)
            if started:
                raise
            await fault(500, f"An unexpected error occurred; see the server log for request {request_id}.",
                        request_id)(scope, receive, send_with_headers)


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return fault(exc.status, exc.detail, request_id_of(request))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return fault(400, validation_detail(list(exc.errors())), request_id_of(request))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"The resource could not be found: {request.url.path}"
    elif exc.status_code == 405:
        detail = f"The method {request.method} is not allowed for {request.url.path}"
    return fault(exc.status_code, detail, request_id_of(request), **(getattr(exc, "headers", None) or {}))


def version_doc(base: str) -> dict:
    """Manila's description of its v2 API."""
    return {
        "id": "v2.0",
        "status": "CURRENT",
        "version": fmt(MAX_VERSION),
        "min_version": fmt(MIN_VERSION),
        "updated": UPDATED,
        "links": [
            link("describedby", "https://docs.openstack.org/api-ref/shared-file-system/", "text/html"),
            link("self", f"{base}/v2/"),
        ],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.share+json;version=1"}],
    }


def versions_document(request: Request) -> dict:
    return {"versions": [version_doc(host_url(request))]}


root_router = APIRouter()


@root_router.get("/v2", summary="Manila's v2 API version (no token needed)")
def v2_root(request: Request) -> JSONResponse:
    doc = versions_document(request)
    return JSONResponse(doc, headers={HEADER: fmt(MIN_VERSION), "Vary": HEADER})


class RootSwitch:
    """At `GET /`, answer Manila's versions document to Manila clients and pass everything else on."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/" and scope["method"] in ("GET", "HEAD") \
                and speaks_manila(scope):
            request = Request(scope)
            await JSONResponse(versions_document(request))(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_manila_app(runtime: Runtime) -> FastAPI:
    """The /v2 sub-application (mounted by create_app)."""
    from floe.api.routers import share_extras, shares

    app = FastAPI(title="floe shares (Manila v2)", version=__version__, redirect_slashes=False,
                  openapi_url=None, docs_url=None, redoc_url=None)
    app.state.runtime = runtime
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.include_router(shares.router)
    app.include_router(share_extras.router)  # share networks, snapshots, pools: none or refused
    app.add_middleware(ManilaMiddleware)
    return app


def install(app: FastAPI, runtime: Runtime) -> None:
    """Serve Manila's v2 API at /v2 of the floe app, and its versions document at / and /v2."""
    app.include_router(root_router)
    app.mount("/v2", create_manila_app(runtime))
    # Starlette's mount pattern (`^/v2/(?P<path>.*)$`) stops at a newline, so /v2/shares/%0A
    # would fall through to the Magnum app and get a Magnum-shaped 404.
    mount = app.routes[-1]
    mount.path_regex = re.compile(mount.path_regex.pattern, re.DOTALL)  # type: ignore[attr-defined]

"""floe's own `/metrics` (Prometheus text), and the middleware that counts the API's requests.

`GET /metrics` sits outside /v1 and /v2, so no OpenStack client ever meets it and no API's
gate stands in front of it. It answers the scrape token (`Authorization: Bearer <token>`,
floe.monitoring.access) or an admin's X-Auth-Token; anything else is refused (401, or 403 for
a valid token that is not an admin's) in the error shape of floe's top-level API.

Requests are counted by their route template (`/v1/clusters/{ident}`, never the id in the
path), so the series stay as few as the routes are. The template is what the router matched:
`RouteRecorder`, innermost in the app and in every mounted API (inside their gates, which may
rewrite the path), notes it in the request's state; `RequestMetrics`, outermost, counts the
answer once it is sent, whoever made it (a gate's refusal, the 413 or 500 of last resort).
Cluster reads a gate answers from its cache never reach the router: their template is the one
the router matched when the kept answer was built (`_Templates`).
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from floe import metrics
from floe.api import auth
from floe.api.cache import cacheable
from floe.errors import Forbidden, NotAuthorized
from floe.monitoring.access import scrape_allowed
from floe.monitoring.metrics import StateCollector
from floe.runtime import Runtime
from floe.services import quotas

ROUTE_KEY = "metrics_route"
OTHER = "other"  # a request no route matched (or refused before routing)


class _Templates:
    """Route templates of the cluster reads the router answered, by path, for the gate's kept answers."""

    LIMIT = 16384  # paths kept; past it the table starts again (a kept answer's next build refills it)

    def __init__(self) -> None:
        self._by_path: dict[str, str] = {}

    def note(self, path: str, template: str) -> None:
        if len(self._by_path) >= self.LIMIT:
            self._by_path.clear()
        self._by_path[path] = template

    def get(self, path: str) -> str | None:
        return self._by_path.get(path.rstrip("/") or "/")


def route_template(scope: Scope) -> str | None:
    """The template of the route the router matched in `scope` (a mount's prefix included), or None.

    Past a mount whose app routed nothing itself (static files; a mounted API's gate refused
    before routing) it is `<mount>/{path}`.
    """
    route = scope.get("route")
    path = getattr(route, "path", None)
    # Past a mount, root_path is the server's root path (app_root_path) plus the mount's prefix.
    mounted = scope.get("root_path", "")[len(scope.get("app_root_path", scope.get("root_path", ""))):]
    if path is None or isinstance(route, Mount):
        return mounted + "/{path}" if mounted else None
    return mounted + path


class RouteRecorder:
    """Innermost: notes the matched route's template in the request's state (shared by every copy of the scope)."""

    def __init__(self, app: ASGIApp, templates: _Templates):
        self.app = app
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "http":
                template = route_template(scope)
                state = scope.setdefault("state", {})
                if template is not None and ROUTE_KEY not in state:  # a mounted API's recorder came first
                    state[ROUTE_KEY] = template
                    if cacheable(scope):
                        self.templates.note(scope["path"], template)


class RequestMetrics:
    """Outermost: counts every answer by method, route template and status, and times it."""

    def __init__(self, app: ASGIApp, templates: _Templates):
        self.app = app
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        status = 500  # if nothing is sent, the server answers 500

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            route = state.get(ROUTE_KEY) or (self.templates.get(scope["path"]) if scope["method"] == "GET" else None)
            metrics.api_request(scope["method"], route or OTHER, status, time.perf_counter() - started)


def instrument(app: FastAPI) -> None:
    """Count `app`'s requests: call once create_app has added its own middleware and mounts."""
    if not metrics.ENABLED:
        return
    templates = _Templates()
    for target in [app, *(r.app for r in app.routes if isinstance(r, Mount) and isinstance(r.app, FastAPI))]:
        # Appended, so innermost: inside the API's gate, after any rewrite of the path.
        target.user_middleware.append(Middleware(RouteRecorder, templates=templates))
    app.add_middleware(RequestMetrics, templates=templates)


# --- GET /metrics ---------------------------------------------------------------------------

class _Process(Collector):
    """floe.metrics' instruments of this process, in each app's registry."""

    def collect(self):
        return metrics.REGISTRY.collect()


def quota_reader(runtime: Runtime):
    """Each project's limits and usage as floe.services.quotas counts them (for the state collector)."""

    def read(session: Session, project_ids: list[str]) -> dict[str, tuple[dict[str, int], dict[str, int]]]:
        limits = quotas.limits_by_project(session, runtime.settings, project_ids)
        used = quotas.usage_by_project(session)
        unused = dict.fromkeys(quotas.RESOURCES, 0)
        return {p: (limits[p], used.get(p, unused)) for p in project_ids}

    return read


def install(app: FastAPI) -> None:
    """Serve GET /metrics on `app` (its runtime's state and this process's instruments)."""
    runtime: Runtime = app.state.runtime
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Process())
    registry.register(StateCollector(runtime, quota_reader(runtime)))
    app.state.metrics_registry = registry
    app.add_api_route("/metrics", scrape, methods=["GET"], include_in_schema=False)


async def scrape(request: Request) -> Response:
    """Prometheus text of floe's metrics, for the scrape token or an admin."""
    runtime: Runtime = request.app.state.runtime
    if not scrape_allowed(runtime.settings.home, request.headers.get("authorization")):
        if request.headers.get("x-auth-token") is None:
            raise NotAuthorized(
                "/metrics needs floe's scrape token (Authorization: Bearer <the token in "
                "$FLOE_HOME/monitoring/scrape-token>) or an admin's X-Auth-Token."
            )
        caller = await auth.authenticate(request.scope)  # NotAuthorized (401) if unknown or expired
        if not caller.is_admin:
            raise Forbidden("Only an admin (or floe's scrape token) may read /metrics.")
    body = await run_in_threadpool(generate_latest, request.app.state.metrics_registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)

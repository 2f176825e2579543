"""floe's web dashboard: server-rendered pages (Jinja2) at /dashboard/ over the same services
as the APIs, with a little vanilla JavaScript for what changes live (events, node charts).

`install(app)` adds it to the API's app (the composition root, server.py, does): the pages,
their static files, and the redirect of a browser's `GET /` to the dashboard (API clients
still get the versions document there).
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from floe.web import account, clusters, live, storage
from floe.web.render import HERE, error_page
from floe.web.session import CSRFError, LoginRequired

__all__ = ["BrowserRoot", "install", "wants_html"]


def wants_html(scope: Scope) -> bool:
    """Whether a request is a browser's: it names text/html in Accept. Stock API clients send
    `application/json` (keystoneauth) or `*/*` (python-requests, curl), never text/html."""
    for name, value in scope.get("headers", []):
        if name == b"accept":
            return b"text/html" in value.lower()
    return False


class BrowserRoot:
    """`GET /` from a browser goes to the dashboard (303); everything else passes on."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/" and scope["method"] in ("GET", "HEAD") \
                and wants_html(scope):
            await RedirectResponse("/dashboard/", status_code=303)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _machine_path(path: str) -> bool:
    return path.endswith(".json") or path == "/dashboard/events"


async def _login_required(request: Request, exc: Exception) -> Response:
    if _machine_path(request.url.path):
        return JSONResponse({"error": "Not signed in (or the session expired): sign in again."}, status_code=401)
    assert isinstance(exc, LoginRequired)
    return RedirectResponse(f"/dashboard/login?{urlencode({'next': exc.next_path})}", status_code=303)


async def _csrf_refused(request: Request, exc: Exception) -> Response:
    return error_page(request, None, 403, str(exc))


def install(app: FastAPI) -> None:
    """Serve the dashboard from `app` (before it starts)."""
    app.include_router(account.router)
    app.include_router(clusters.router)
    app.include_router(storage.router)
    app.include_router(live.router)
    app.mount("/dashboard/static", StaticFiles(directory=str(HERE / "static")), name="dashboard-static")
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(CSRFError, _csrf_refused)
    app.add_middleware(BrowserRoot)

"""Rendering the dashboard's pages: the Jinja2 templates, what every page gets, error pages."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from floe import __version__
from floe.services import dashboard
from floe.services.identity import Caller
from floe.web import session

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
ALL_PROJECTS = "all"


def _age(when: datetime | None) -> str:
    """'3m ago' style, for the lists."""
    if when is None:
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = int((datetime.now(UTC) - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{max(seconds, 0)}s ago"


def _gib(value: int | float | None) -> str:
    return "" if value is None else f"{value / 2**30:.1f} GiB"


templates.env.filters["age"] = _age
templates.env.filters["gib"] = _gib
templates.env.globals["version"] = __version__


def page(request: Request, name: str, caller: Caller | None, status: int = 200, **context: Any) -> HTMLResponse:
    """Render template `name` with what every page shows: who is signed in, their projects, the CSRF token."""
    db = request.app.state.runtime.db
    projects = dashboard.visible_projects(db, caller) if caller else []
    context.setdefault("user_name", dashboard.user_name(db, caller.user_id) if caller else "")
    names = {p.id: p.name for p in projects}
    context.setdefault("project", None)
    return templates.TemplateResponse(
        request, name, status_code=status,
        context={
            "caller": caller, "projects": projects, "project_names": names, "csrf": session.csrf_token(request),
            "csrf_field": session.CSRF_FIELD, "all_projects": ALL_PROJECTS, **context,
        },
        headers={"Cache-Control": "no-store"},
    )


def error_page(request: Request, caller: Caller | None, status: int, message: str) -> HTMLResponse:
    titles = {400: "Bad request", 403: "Not allowed", 404: "Not found", 409: "Conflict"}
    return page(request, "error.html", caller, status=status, title=titles.get(status, "Error"), message=message)

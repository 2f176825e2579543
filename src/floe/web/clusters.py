"""The dashboard's cluster pages: the list, one cluster, create, resize, delete, credentials.

Each route parses its form and calls the same service the API calls, acting in the cluster's
project (`dashboard.acting_in` / `cluster_owner`), so quotas, validation and tenancy apply as
they do to the API; a service's refusal is shown on the page with its message.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from floe.errors import InvalidInput, ServiceError
from floe.services import bundles, clusters, dashboard, events, jobs, nodegroups, templates
from floe.services.identity import Caller
from floe.services.templates import ascii_int, describe_validation_errors
from floe.web import session
from floe.web.render import ALL_PROJECTS, error_page, page

router = APIRouter(prefix="/dashboard")


def _project_param(request: Request) -> str | None:
    """The project a list page shows: ?project=ID, or every visible one (None)."""
    value = request.query_params.get("project") or ALL_PROJECTS
    return None if value == ALL_PROJECTS else value


# "/dashboard/": floe's outer middleware takes trailing slashes off every path.
@router.get("", include_in_schema=False)
def cluster_list(request: Request) -> Response:
    caller = session.caller_of(request)
    db = request.app.state.runtime.db
    project = _project_param(request)
    try:
        rows = dashboard.cluster_rows(db, caller, project)
    except ServiceError as exc:
        return error_page(request, caller, exc.status, exc.detail)
    return page(request, "clusters.html", caller, rows=rows, project=project or ALL_PROJECTS,
                events=_recent_events(request, caller, project),
                notice=request.query_params.get("notice", ""))


def _recent_events(request: Request, caller: Caller, project: str | None) -> list[dict]:
    """The newest events of the project shown (every project's for an admin's "all", else the
    session's project's): what the page starts with before its live stream adds more."""
    runtime = request.app.state.runtime
    try:
        if project is None and caller.is_admin:
            return events.list_events(runtime, caller, limit=20, all_projects=True)
        acting = dashboard.acting_in(runtime.db, caller, project or caller.project_id)
        return events.list_events(runtime, acting, limit=20)
    except ServiceError:
        return []


def _template_choices(request: Request, acting: Caller) -> list:
    return templates.list_templates(request.app.state.runtime.db, acting).items


def _new_form(request: Request, caller: Caller, project: str, status: int = 200, message: str = "",
              **values: str) -> Response:
    try:
        acting = dashboard.acting_in(request.app.state.runtime.db, caller, project)
    except ServiceError as exc:
        return error_page(request, caller, exc.status, exc.detail)
    return page(request, "cluster_new.html", caller, status=status, message=message, project=project,
                choices=_template_choices(request, acting), values=values)


@router.get("/clusters/new", include_in_schema=False)
def new_cluster_form(request: Request) -> Response:
    caller = session.caller_of(request)
    project = request.query_params.get("project") or caller.project_id
    return _new_form(request, caller, project)


def _count(value: str, what: str, lowest: int) -> int:
    number = ascii_int(value.strip())
    if number is None or number < lowest:
        raise InvalidInput(f"The {what} must be a whole number, {lowest} or more (not {value[:32]!r}).")
    return number


@router.post("/clusters", include_in_schema=False)
def create_cluster(
    request: Request,
    project: str = Form(""),
    cluster_template_id: str = Form(""),
    name: str = Form(""),
    master_count: str = Form("1"),
    node_count: str = Form("1"),
    csrf_token: str = Form(""),
) -> Response:
    caller = session.caller_of(request)
    session.check_csrf(request, csrf_token)
    runtime = request.app.state.runtime
    values = {"cluster_template_id": cluster_template_id, "name": name, "master_count": master_count,
              "node_count": node_count}
    project = project or caller.project_id
    try:
        acting = dashboard.check_can_write(dashboard.acting_in(runtime.db, caller, project))
        if not cluster_template_id:
            raise InvalidInput("Choose a cluster template.")
        fields = {"cluster_template_id": cluster_template_id, "name": name.strip() or None,
                  "master_count": _count(master_count, "master count", 1),
                  "node_count": _count(node_count, "node count", 0)}
        try:
            spec = clusters.ClusterSpec(**fields)
        except ValidationError as exc:
            raise InvalidInput(describe_validation_errors(exc.errors())) from None
        cluster = clusters.create_cluster(runtime, acting, spec)
    except ServiceError as exc:
        return _new_form(request, caller, project, exc.status, exc.detail, **values)
    return RedirectResponse(f"/dashboard/clusters/{cluster.uuid}", status_code=303)


@router.get("/clusters/{ident}", include_in_schema=False)
def cluster_detail(request: Request, ident: str) -> Response:
    caller = session.caller_of(request)
    runtime = request.app.state.runtime
    try:
        acting = dashboard.cluster_owner(runtime.db, caller, ident)
        view = clusters.get_cluster(runtime.db, acting, ident)
        nodes = clusters.list_nodes(runtime.db, acting, ident)
        groups = nodegroups.list_nodegroups(runtime.db, acting, ident)[1].items
    except ServiceError as exc:
        return error_page(request, caller, exc.status, exc.detail)
    try:
        recent = events.list_events(runtime, acting, view.cluster.uuid, limit=50)
    except ServiceError:
        recent = []
    slurm_jobs, jobs_message = [], ""
    if view.cluster.coe == "slurm":
        try:
            slurm_jobs = jobs.list_jobs(runtime, acting, ident)
        except ServiceError as exc:
            jobs_message = exc.detail
    return page(request, "cluster.html", caller, cluster=view.cluster, nodes=nodes, groups=groups,
                jobs=slurm_jobs, jobs_message=jobs_message, events=recent, acting=acting, project=acting.project_id,
                message=request.query_params.get("error", ""), notice=request.query_params.get("notice", ""))


def _back(ident: str, **query: str) -> RedirectResponse:
    suffix = f"?{urlencode(query)}" if query else ""
    return RedirectResponse(f"/dashboard/clusters/{ident}{suffix}", status_code=303)


@router.post("/clusters/{ident}/resize", include_in_schema=False)
def resize_cluster(request: Request, ident: str, node_count: str = Form(""), csrf_token: str = Form("")) -> Response:
    caller = session.caller_of(request)
    session.check_csrf(request, csrf_token)
    runtime = request.app.state.runtime
    try:
        acting = dashboard.check_can_write(dashboard.cluster_owner(runtime.db, caller, ident))
        count = _count(node_count, "node count", 0)
        clusters.resize_cluster(runtime, acting, ident, count)
    except ServiceError as exc:
        if exc.status == 404:
            return error_page(request, caller, 404, exc.detail)
        return _back(ident, error=exc.detail)
    return _back(ident, notice=f"Resizing to {count} worker node(s).")


@router.post("/clusters/{ident}/delete", include_in_schema=False)
def delete_cluster(request: Request, ident: str, csrf_token: str = Form("")) -> Response:
    caller = session.caller_of(request)
    session.check_csrf(request, csrf_token)
    runtime = request.app.state.runtime
    try:
        acting = dashboard.check_can_write(dashboard.cluster_owner(runtime.db, caller, ident))
        name = clusters.get_cluster(runtime.db, acting, ident).cluster.name
        clusters.delete_cluster(runtime, acting, ident)
    except ServiceError as exc:
        if exc.status == 404:
            return error_page(request, caller, 404, exc.detail)
        return _back(ident, error=exc.detail)
    return _back(ident, notice=f"Deleting cluster {name}.")


@router.post("/clusters/{ident}/credentials", include_in_schema=False)
def download_credentials(request: Request, ident: str, csrf_token: str = Form("")) -> Response:
    caller = session.caller_of(request)
    session.check_csrf(request, csrf_token)
    runtime = request.app.state.runtime
    try:
        acting = dashboard.check_can_write(dashboard.cluster_owner(runtime.db, caller, ident))
        bundle = bundles.cluster_bundle(runtime, acting, ident)
    except ServiceError as exc:
        if exc.status == 404:
            return error_page(request, caller, 404, exc.detail)
        return _back(ident, error=exc.detail)
    return Response(bundle.data, media_type="application/gzip", headers={
        "Content-Disposition": f'attachment; filename="{bundle.filename}"', "Cache-Control": "no-store"})

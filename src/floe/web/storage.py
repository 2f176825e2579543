"""The dashboard's shares (with their usage; create, delete) and quotas pages."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from floe.errors import InvalidInput, NotFound, ServiceError
from floe.services import dashboard, quotas, shares
from floe.services.identity import Caller
from floe.web import session
from floe.web.render import error_page, page

router = APIRouter(prefix="/dashboard")

QUOTA_LABELS = {
    quotas.CLUSTERS: "Clusters", quotas.NODES: "Nodes", quotas.CORES: "vCPUs", quotas.RAM: "RAM (MiB)",
    quotas.SHARES: "Shares", quotas.GIGABYTES: "Share space (GiB)",
}


def _acting(request: Request, caller: Caller) -> Caller:
    """The caller in the page's ?project= (its session's project by default)."""
    project = request.query_params.get("project") or caller.project_id
    return dashboard.acting_in(request.app.state.runtime.db, caller, project)


def _shares_page(request: Request, caller: Caller, acting: Caller, status: int = 200, message: str = "",
                 **values: str) -> Response:
    runtime = request.app.state.runtime
    try:
        listed = shares.list_shares(runtime, acting)
        types = [t.name for t in shares.share_types(runtime)]
        default = shares.default_type(runtime)
    except ServiceError as exc:
        return error_page(request, caller, exc.status, exc.detail)
    rows = [(s, dashboard.share_usage(runtime, s)) for s in listed]
    return page(request, "shares.html", caller, status=status, message=message, rows=rows, types=types,
                default_type=default, project=acting.project_id, values=values,
                notice=request.query_params.get("notice", ""))


@router.get("/shares", include_in_schema=False)
def share_list(request: Request) -> Response:
    caller = session.caller_of(request)
    try:
        acting = _acting(request, caller)
    except ServiceError as exc:
        return error_page(request, caller, exc.status, exc.detail)
    return _shares_page(request, caller, acting)


def _back(project: str, notice: str) -> RedirectResponse:
    return RedirectResponse(f"/dashboard/shares?{urlencode({'project': project, 'notice': notice})}", status_code=303)


@router.post("/shares", include_in_schema=False)
def create_share(request: Request, project: str = Form(""), name: str = Form(""), size: str = Form(""),
                 share_type: str = Form(""), csrf_token: str = Form("")) -> Response:
    caller = session.caller_of(request)
    session.check_csrf(request, csrf_token)
    runtime = request.app.state.runtime
    values = {"name": name, "size": size, "share_type": share_type}
    try:
        acting = dashboard.acting_in(runtime.db, caller, project or caller.project_id)
    except ServiceError as exc:
        return error_page(request, caller, exc.status, exc.detail)
    try:
        dashboard.check_can_write(acting)
        if not size.strip():
            raise InvalidInput("Give the share's size in GiB.")
        try:
            stype = shares.find_type(runtime, share_type or None)
        except NotFound as exc:
            raise InvalidInput(exc.detail) from None
        share = shares.create_share(runtime, acting, shares.ShareSpec(
            share_proto=stype.info.share_proto, size=size.strip(), name=name.strip() or None,
            share_type=stype.name))
    except ServiceError as exc:
        return _shares_page(request, caller, acting, exc.status, exc.detail, **values)
    return _back(acting.project_id, f"Creating share {share.name or share.uuid}.")


@router.post("/shares/{ident}/delete", include_in_schema=False)
def delete_share(request: Request, ident: str, project: str = Form(""), csrf_token: str = Form("")) -> Response:
    caller = session.caller_of(request)
    session.check_csrf(request, csrf_token)
    runtime = request.app.state.runtime
    try:
        acting = dashboard.acting_in(runtime.db, caller, project or caller.project_id)
    except ServiceError as exc:
        return error_page(request, caller, exc.status, exc.detail)
    try:
        shares.delete_share(runtime, dashboard.check_can_write(acting), ident)
    except ServiceError as exc:
        return _shares_page(request, caller, acting, exc.status, exc.detail)
    return _back(acting.project_id, f"Deleting share {ident}.")


@router.get("/quotas", include_in_schema=False)
def quota_page(request: Request) -> Response:
    caller = session.caller_of(request)
    runtime = request.app.state.runtime
    try:
        acting = _acting(request, caller)
        resources = quotas.CLUSTER_RESOURCES + quotas.SHARE_RESOURCES
        got = quotas.quota_set(runtime.db, runtime.settings, acting, acting.project_id, resources=resources)
    except ServiceError as exc:
        return error_page(request, caller, exc.status, exc.detail)
    rows = [(QUOTA_LABELS[r], got.in_use[r], got.limits[r]) for r in resources]
    return page(request, "quotas.html", caller, rows=rows, project=acting.project_id)

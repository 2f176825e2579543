"""/v1/clustertemplates: Magnum's cluster-template API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request, Response

from floe.api.auth import CallerDep, RuntimeDep
from floe.api.http import host_url
from floe.api.magnum.schemas import (
    ClusterTemplateCollection,
    ClusterTemplateCreate,
    ClusterTemplateOut,
    PatchOp,
    patch_ops,
)
from floe.api.magnum.views import next_link, template_out
from floe.services import templates

router = APIRouter(prefix="/v1/clustertemplates", tags=["clustertemplates"])


def _list(
    request: Request, runtime, caller, resource: str, marker, limit, sort_key, sort_dir
) -> ClusterTemplateCollection:
    page = templates.list_templates(
        runtime.db, caller, limit=limit, marker=marker, sort_key=sort_key, sort_dir=sort_dir
    )
    base = host_url(request)
    out = ClusterTemplateCollection(clustertemplates=[template_out(ct, base) for ct in page.items])
    nxt = next_link(base, resource, page.limit, page.next_marker, sort_key, sort_dir)
    if nxt:
        out.next = nxt
    return out


@router.get("", response_model=ClusterTemplateCollection, response_model_exclude_unset=True)
def list_templates(
    request: Request,
    runtime: RuntimeDep,
    caller: CallerDep,
    marker: str | None = None,
    limit: int | None = None,
    sort_key: str = "id",
    sort_dir: str = "asc",
) -> ClusterTemplateCollection:
    """The project's cluster templates and the public ones."""
    return _list(request, runtime, caller, "clustertemplates", marker, limit, sort_key, sort_dir)


@router.get("/detail", response_model=ClusterTemplateCollection, response_model_exclude_unset=True)
def list_templates_detail(
    request: Request,
    runtime: RuntimeDep,
    caller: CallerDep,
    marker: str | None = None,
    limit: int | None = None,
    sort_key: str = "id",
    sort_dir: str = "asc",
) -> ClusterTemplateCollection:
    """Same as the list (Magnum lists templates in full either way)."""
    return _list(request, runtime, caller, "clustertemplates/detail", marker, limit, sort_key, sort_dir)


@router.get("/{ident}", response_model=ClusterTemplateOut)
def show_template(request: Request, runtime: RuntimeDep, caller: CallerDep, ident: str) -> ClusterTemplateOut:
    """One template by uuid or name."""
    return template_out(templates.get_template(runtime.db, caller, ident), host_url(request))


@router.post("", status_code=201, response_model=ClusterTemplateOut)
def create_template(
    request: Request, response: Response, runtime: RuntimeDep, caller: CallerDep, spec: ClusterTemplateCreate
) -> ClusterTemplateOut:
    """Create a template (201 with the full object and a Location header)."""
    ct = templates.create_template(runtime.db, caller, spec)
    out = template_out(ct, host_url(request))
    response.headers["Location"] = out.links[0].href
    return out


@router.patch("/{ident}", response_model=ClusterTemplateOut)
def update_template(
    request: Request,
    runtime: RuntimeDep,
    caller: CallerDep,
    ident: str,
    patch: Annotated[list[PatchOp], Body()],
) -> ClusterTemplateOut:
    """Apply a JSON patch (add, replace, remove)."""
    ct = templates.update_template(runtime.db, caller, ident, patch_ops(patch))
    return template_out(ct, host_url(request))


@router.delete("/{ident}", status_code=204, response_class=Response)
def delete_template(runtime: RuntimeDep, caller: CallerDep, ident: str) -> Response:
    """Delete a template that no cluster uses."""
    templates.delete_template(runtime.db, caller, ident)
    return Response(status_code=204)

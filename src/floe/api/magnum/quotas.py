"""/v1/quotas and /v1/stats: Magnum's quota and stats APIs (`openstack coe quotas …`, `coe stats list`).

Magnum's one quota resource is "Cluster"; floe also limits "Node" (managers and workers), "Cores"
(vCPUs) and "RAM" (MiB), counted from the clusters' flavors. A quota is one project's limit for
one resource; a project without one has the server's default (GET shows it, with id null).
Listing, creating, changing and deleting quotas are for admins, as in Magnum; anyone may read
their own project's quotas and stats.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from floe.api.auth import CallerDep, RuntimeDep
from floe.api.http import host_url
from floe.api.magnum.schemas import Timestamp
from floe.api.magnum.views import json_response, next_link
from floe.config import MAX_QUOTA
from floe.errors import InvalidInput
from floe.services import quotas
from floe.services.quotas import QuotaView

router = APIRouter(tags=["quotas"])


class QuotaIn(BaseModel):
    """Magnum's quota body (POST; PATCH takes the same, its path naming the project and resource)."""

    model_config = ConfigDict(extra="forbid")

    project_id: str | None = Field(default=None, min_length=1, max_length=255)
    resource: str | None = Field(default=None, min_length=1, max_length=32,
                                 description="Cluster, Node, Cores or RAM (MiB)")
    hard_limit: int = Field(ge=-1, le=MAX_QUOTA, strict=True, description="-1 is unlimited")


class QuotaOut(BaseModel):
    id: int | None = None
    project_id: str
    resource: str
    hard_limit: int
    created_at: Timestamp = None
    updated_at: Timestamp = None


class QuotaCollection(BaseModel):
    quotas: list[QuotaOut]
    next: str | None = None


class StatsOut(BaseModel):
    clusters: int
    nodes: int


def _out(view: QuotaView) -> QuotaOut:
    return QuotaOut(id=view.id, project_id=view.project_id, resource=quotas.MAGNUM_NAMES[view.resource],
                    hard_limit=view.hard_limit, created_at=view.created_at, updated_at=view.updated_at)


@router.get("/v1/quotas", response_model=QuotaCollection, response_model_exclude_unset=True)
def list_quotas(
    request: Request,
    runtime: RuntimeDep,
    caller: CallerDep,
    marker: str | None = None,
    limit: int | None = None,
    sort_key: str = "id",
    sort_dir: str = "asc",
    all_tenants: bool = False,
) -> Response:
    """The quotas set for the admin's project, or for every project with `all_tenants` (admin only)."""
    page = quotas.list_quotas(runtime.db, caller, all_projects=all_tenants, limit=limit, marker=marker,
                              sort_key=sort_key, sort_dir=sort_dir)
    out = QuotaCollection(quotas=[_out(v) for v in page.items])
    nxt = next_link(host_url(request), "quotas", page.limit, page.next_marker, sort_key, sort_dir)
    if nxt:
        out.next = nxt + ("&all_tenants=True" if all_tenants else "")
    return json_response(out, exclude_unset=True)


@router.get("/v1/quotas/{project_id}/{resource}", response_model=QuotaOut)
def show_quota(runtime: RuntimeDep, caller: CallerDep, project_id: str, resource: str) -> Response:
    """A project's limit for one resource: the one an admin set, else the default (id null)."""
    view = quotas.get_quota(runtime.db, runtime.settings, caller, project_id, quotas.magnum_resource(resource))
    return json_response(_out(view), exclude_unset=True)


@router.post("/v1/quotas", status_code=201, response_model=QuotaOut)
def create_quota(runtime: RuntimeDep, caller: CallerDep, body: QuotaIn) -> Response:
    """Set a project's limit for a resource (admin only; 409 if one is set: PATCH it)."""
    if body.project_id is None:
        raise InvalidInput("Must provide a valid project ID.")
    if body.resource is None:
        raise InvalidInput(f"Must provide a resource: {', '.join(quotas.MAGNUM_NAMES.values())}.")
    view = quotas.create_quota(runtime.db, caller, body.project_id, quotas.magnum_resource(body.resource),
                               body.hard_limit)
    return json_response(_out(view), 201, exclude_unset=True)


@router.patch("/v1/quotas/{project_id}/{resource}", status_code=202, response_model=QuotaOut)
def update_quota(runtime: RuntimeDep, caller: CallerDep, project_id: str, resource: str,
                 body: Annotated[QuotaIn, Body()]) -> Response:
    """Change a project's limit for a resource (admin only; 404 if none is set: create it)."""
    view = quotas.update_quota(runtime.db, caller, project_id, quotas.magnum_resource(resource), body.hard_limit)
    return json_response(_out(view), 202, exclude_unset=True)


@router.delete("/v1/quotas/{project_id}/{resource}", status_code=204, response_class=Response)
def delete_quota(runtime: RuntimeDep, caller: CallerDep, project_id: str, resource: str) -> Response:
    """Remove a project's limit for a resource: the default applies again (admin only)."""
    quotas.delete_quota(runtime.db, caller, project_id, quotas.magnum_resource(resource))
    return Response(status_code=204)


@router.get("/v1/stats", response_model=StatsOut)
def stats(runtime: RuntimeDep, caller: CallerDep, project_id: str | None = None, type: str = "cluster") -> StatsOut:
    """Clusters and nodes of a project (the caller's by default); an admin may name any project, or
    none for every project's."""
    if type.lower() != "cluster":
        raise InvalidInput("Invalid stats type. Allowed values are 'cluster'")
    clusters, nodes = quotas.stats(runtime.db, caller, project_id or None)
    return StatsOut(clusters=clusters, nodes=nodes)

"""/v1/clusters: Magnum's cluster API; every change is queued for the engine (202)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request, Response

from floe.api.auth import CallerDep, RuntimeDep
from floe.api.http import host_url
from floe.api.magnum.schemas import (
    ClusterCollection,
    ClusterCreate,
    ClusterDetailCollection,
    ClusterOut,
    PatchOp,
    ResizeRequest,
    UUIDResponse,
    patch_ops,
)
from floe.api.magnum.versions import request_version
from floe.api.magnum.views import cluster_out, cluster_summary, json_response, next_link
from floe.services import clusters

router = APIRouter(prefix="/v1/clusters", tags=["clusters"])


@router.get("", response_model=ClusterCollection, response_model_exclude_unset=True)
def list_clusters(
    request: Request,
    runtime: RuntimeDep,
    caller: CallerDep,
    marker: str | None = None,
    limit: int | None = None,
    sort_key: str = "id",
    sort_dir: str = "asc",
) -> Response:
    """The project's clusters, summary fields only."""
    page = clusters.list_clusters(runtime.db, caller, limit=limit, marker=marker, sort_key=sort_key, sort_dir=sort_dir)
    base = host_url(request)
    version = request_version(request)
    out = ClusterCollection(clusters=[cluster_summary(v, base, version) for v in page.items])
    nxt = next_link(base, "clusters", page.limit, page.next_marker, sort_key, sort_dir)
    if nxt:
        out.next = nxt
    return json_response(out, exclude_unset=True)


@router.get("/detail", response_model=ClusterDetailCollection, response_model_exclude_unset=True)
def list_clusters_detail(
    request: Request,
    runtime: RuntimeDep,
    caller: CallerDep,
    marker: str | None = None,
    limit: int | None = None,
    sort_key: str = "id",
    sort_dir: str = "asc",
) -> Response:
    """The project's clusters with every field."""
    page = clusters.list_clusters(runtime.db, caller, limit=limit, marker=marker, sort_key=sort_key, sort_dir=sort_dir)
    base = host_url(request)
    version = request_version(request)
    out = ClusterDetailCollection(clusters=[cluster_out(v, base, version) for v in page.items])
    nxt = next_link(base, "clusters/detail", page.limit, page.next_marker, sort_key, sort_dir)
    if nxt:
        out.next = nxt
    return json_response(out, exclude_unset=True)


@router.get("/{ident}", response_model=ClusterOut)
def show_cluster(request: Request, runtime: RuntimeDep, caller: CallerDep, ident: str) -> Response:
    """One cluster by uuid or name."""
    view = clusters.get_cluster(runtime.db, caller, ident)
    # exclude_unset: every field is set but those of a later microversion than the request's.
    return json_response(cluster_out(view, host_url(request), request_version(request)), exclude_unset=True)


@router.post("", status_code=202, response_model=UUIDResponse)
def create_cluster(runtime: RuntimeDep, caller: CallerDep, spec: ClusterCreate) -> UUIDResponse:
    """Queue the creation of a cluster; answers at once with its uuid."""
    return UUIDResponse(uuid=clusters.create_cluster(runtime, caller, spec).uuid)


@router.patch("/{ident}", status_code=202, response_model=UUIDResponse)
def update_cluster(
    runtime: RuntimeDep, caller: CallerDep, ident: str, patch: Annotated[list[PatchOp], Body()]
) -> UUIDResponse:
    """Change node_count (the only attribute that may change) and queue the update."""
    return UUIDResponse(uuid=clusters.update_cluster(runtime, caller, ident, patch_ops(patch)).uuid)


@router.post("/{ident}/actions/resize", status_code=202, response_model=UUIDResponse)
def resize_cluster(runtime: RuntimeDep, caller: CallerDep, ident: str, body: ResizeRequest) -> UUIDResponse:
    """Resize the workers, optionally naming which ones go."""
    cluster = clusters.resize_cluster(
        runtime, caller, ident, body.node_count, body.nodes_to_remove, body.nodegroup, body.requeue_jobs
    )
    return UUIDResponse(uuid=cluster.uuid)


@router.delete("/{ident}", status_code=204, response_class=Response)
def delete_cluster(runtime: RuntimeDep, caller: CallerDep, ident: str) -> Response:
    """Queue the deletion of a cluster."""
    clusters.delete_cluster(runtime, caller, ident)
    return Response(status_code=204)

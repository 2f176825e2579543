"""/v1/clusters/{cluster_ident}/nodegroups: Magnum's nodegroup API (microversion 1.9 on).

Adding, resizing and deleting a group are queued for the engine (202); the answer of a create
or patch is the nodegroup as recorded. Which fields a request may send and an answer shows
depends on the microversion (versions.py): older requests get the older shapes.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, HTTPException, Request, Response
from pydantic import BaseModel

from floe.api.auth import CallerDep, RuntimeDep
from floe.api.http import host_url, link
from floe.api.magnum.schemas import Labels, Link, PatchOp, Timestamp, patch_ops
from floe.api.magnum.versions import (
    EMPTY_NODEGROUPS,
    NODE_METADATA,
    NODEGROUP_LABELS,
    NODEGROUPS,
    request_version,
)
from floe.api.magnum.views import json_response, next_link
from floe.api.microversions import fmt
from floe.errors import InvalidInput
from floe.services import nodegroups
from floe.services.nodegroup_input import PATCHABLE, NodeGroupSpec, taint_parts
from floe.services.nodegroups import NodeGroupView


def _since_nodegroups(request: Request) -> None:
    """406 before 1.9, as Magnum answers a versioned method asked for at an older version."""
    version = request_version(request)
    if version < NODEGROUPS:
        raise HTTPException(
            406,
            f"Version {fmt(version)} was requested but the requested API nodegroups is not supported for this "
            f"version: nodegroups need container-infra {fmt(NODEGROUPS)} or later (OpenStack-API-Version header).",
        )


router = APIRouter(
    prefix="/v1/clusters/{cluster_ident}/nodegroups", tags=["nodegroups"], dependencies=[Depends(_since_nodegroups)]
)


# ---------------------------------------------------------------------------
# Bodies


class Taint(BaseModel):
    key: str
    value: str
    effect: str


class NodeGroupSummary(BaseModel):
    """The fields Magnum lists for a nodegroup."""

    uuid: str
    name: str
    flavor_id: str | None
    image_id: str | None
    node_count: int
    role: str
    is_default: bool
    status: str
    stack_id: str | None


class NodeGroupOut(NodeGroupSummary):
    """Every field Magnum shows for a nodegroup; the optional ones only from their microversion."""

    cluster_id: str
    project_id: str
    docker_volume_size: int | None
    labels: Labels
    node_addresses: list[str]
    min_node_count: int
    max_node_count: int | None
    status_reason: str | None
    version: str | None
    links: list[Link]
    created_at: Timestamp
    updated_at: Timestamp
    labels_overridden: Labels | None = None  # 1.12
    labels_added: Labels | None = None  # 1.12
    labels_skipped: Labels | None = None  # 1.12
    node_labels: dict[str, str] | None = None  # 1.14
    node_taints: list[Taint] | None = None  # 1.14


class NodeGroupCollection(BaseModel):
    nodegroups: list[NodeGroupSummary]
    next: str | None = None


def _links(base: str, v: NodeGroupView) -> list[dict[str, str]]:
    path = f"clusters/{v.cluster_uuid}/nodegroups/{v.nodegroup.uuid}"
    return [link("self", f"{base}/v1/{path}"), link("bookmark", f"{base}/{path}")]


def _summary_fields(v: NodeGroupView) -> dict[str, Any]:
    g = v.nodegroup
    return {
        "uuid": g.uuid, "name": g.name, "flavor_id": g.flavor_id, "image_id": g.image_id,
        "node_count": g.node_count, "role": g.role, "is_default": g.is_default, "status": g.status,
        "stack_id": None,  # no Heat stack behind a floe nodegroup
    }


def nodegroup_out(v: NodeGroupView, base: str, version: tuple[int, int]) -> NodeGroupOut:
    g = v.nodegroup
    out = NodeGroupOut(
        **_summary_fields(v),
        cluster_id=v.cluster_uuid,
        project_id=g.project_id,
        docker_volume_size=g.docker_volume_size,
        labels=dict(g.labels or {}),
        node_addresses=v.node_addresses,
        min_node_count=g.min_node_count,
        max_node_count=g.max_node_count,
        status_reason=g.status_reason,
        version=None,  # Magnum's upgrade version of a group; floe nodes run the host's Docker
        links=_links(base, v),
        created_at=g.created_at,
        updated_at=g.updated_at,
    )
    if version >= NODEGROUP_LABELS:
        out.labels_overridden, out.labels_added, out.labels_skipped = v.labels_diff()
    if version >= NODE_METADATA:
        out.node_labels = dict(g.node_labels or {})
        out.node_taints = [Taint(**taint_parts(t)) for t in g.node_taints or []]
    return out


def _since(field: str, need: tuple[int, int], version: tuple[int, int]) -> None:
    if version < need:
        raise InvalidInput(
            f"Unknown attribute '{field}': it needs container-infra {fmt(need)} or later (this request asked "
            f"for {fmt(version)})"
        )


# ---------------------------------------------------------------------------
# Routes


@router.get("", response_model=NodeGroupCollection, response_model_exclude_unset=True)
def list_nodegroups(
    request: Request,
    runtime: RuntimeDep,
    caller: CallerDep,
    cluster_ident: str,
    marker: str | None = None,
    limit: int | None = None,
    sort_key: str = "id",
    sort_dir: str = "asc",
    role: str | None = None,
) -> Response:
    """A cluster's nodegroups (summary fields), optionally only those of one role."""
    cluster_uuid, page = nodegroups.list_nodegroups(
        runtime.db, caller, cluster_ident, role=role, limit=limit, marker=marker, sort_key=sort_key, sort_dir=sort_dir
    )
    base = host_url(request)
    out = NodeGroupCollection(nodegroups=[NodeGroupSummary(**_summary_fields(v)) for v in page.items])
    nxt = next_link(base, f"clusters/{cluster_uuid}/nodegroups", page.limit, page.next_marker, sort_key, sort_dir)
    if nxt:
        # Magnum's next link forgets the filter; floe's keeps it, so the next page is of the same list.
        out.next = nxt + (f"&role={quote(role, safe='')}" if role is not None else "")
    return json_response(out, exclude_unset=True)


@router.get("/{ng_ident}", response_model=NodeGroupOut, response_model_exclude_unset=True)
def show_nodegroup(request: Request, runtime: RuntimeDep, caller: CallerDep, cluster_ident: str,
                   ng_ident: str) -> Response:
    """One nodegroup by uuid or name."""
    view = nodegroups.get_nodegroup(runtime.db, caller, cluster_ident, ng_ident)
    return json_response(nodegroup_out(view, host_url(request), request_version(request)), exclude_unset=True)


@router.post("", status_code=202, response_model=NodeGroupOut, response_model_exclude_unset=True)
def create_nodegroup(request: Request, runtime: RuntimeDep, caller: CallerDep, cluster_ident: str,
                     spec: NodeGroupSpec) -> Response:
    """Add a worker nodegroup; its nodes are built in the background (CREATE_IN_PROGRESS)."""
    version = request_version(request)
    for field, need in (("merge_labels", NODEGROUP_LABELS), ("node_labels", NODE_METADATA),
                        ("node_taints", NODE_METADATA)):
        if field in spec.model_fields_set:
            _since(field, need, version)
    if spec.node_count == 0 and version < EMPTY_NODEGROUPS:
        raise InvalidInput(f"node_count 0 needs container-infra {fmt(EMPTY_NODEGROUPS)} or later")
    view = nodegroups.create_nodegroup(runtime, caller, cluster_ident, spec)
    return json_response(nodegroup_out(view, host_url(request), version), status=202, exclude_unset=True)


@router.patch("/{ng_ident}", status_code=202, response_model=NodeGroupOut, response_model_exclude_unset=True)
def update_nodegroup(request: Request, runtime: RuntimeDep, caller: CallerDep, cluster_ident: str, ng_ident: str,
                     patch: Annotated[list[PatchOp], Body()]) -> Response:
    """Change min/max_node_count (at once), node_count (a resize) or node labels and taints (1.14)."""
    version = request_version(request)
    allowed = PATCHABLE if version >= NODE_METADATA else tuple(
        a for a in PATCHABLE if a not in ("node_labels", "node_taints"))
    ops = patch_ops(patch)
    if version < EMPTY_NODEGROUPS and any(
        op["path"] == "/node_count" and op.get("value") in (0, "0") for op in ops
    ):
        raise InvalidInput(f"node_count 0 needs container-infra {fmt(EMPTY_NODEGROUPS)} or later")
    view = nodegroups.update_nodegroup(runtime, caller, cluster_ident, ng_ident, ops, allowed)
    return json_response(nodegroup_out(view, host_url(request), version), status=202, exclude_unset=True)


@router.delete("/{ng_ident}", status_code=204, response_class=Response)
def delete_nodegroup(runtime: RuntimeDep, caller: CallerDep, cluster_ident: str, ng_ident: str) -> Response:
    """Queue the removal of a nodegroup and its nodes; default-master and default-worker stay."""
    nodegroups.delete_nodegroup(runtime, caller, cluster_ident, ng_ident)
    return Response(status_code=204)

"""Nodegroups: a cluster's sets of alike nodes (Magnum's nodegroup API), with floe's rules (no HTTP here).

Every cluster has `default-master` (its Swarm managers) and `default-worker`; users add worker
groups of their own, each with its flavor, image, labels, Swarm node labels and taints, and
bounds `min_node_count <= node_count <= max_node_count` that every change must keep.

As for clusters, changes only record intent: adding, resizing and deleting a group each queue
an `update` operation of the cluster (`start_operation`, in the same transaction), which the
engine carries out; a cluster runs one operation at a time, so a second change waits (409).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from floe.db.models import Cluster, ClusterTemplate, Flavor, Node, NodeGroup
from floe.db.session import Database
from floe.engine.operations import active_operation, cluster_deleting, start_operation
from floe.errors import Conflict, InvalidInput, NotFound
from floe.runtime import Runtime
from floe.services import quotas
from floe.services.clusters import (
    MASTER_NODEGROUP,
    WORKER_NODEGROUP,
    check_capacity,
    find_cluster,
    labels_diff,
)
from floe.services.flavors import check_flavor
from floe.services.identity import Caller
from floe.services.nodegroup_input import (
    MASTER,
    PATCHABLE,
    NodeGroupSpec,
    check_bounds,
    parse_patch,
)
from floe.services.templates import (
    Page,
    is_uuid_like,
    page_of,
    paginate,
    validate_paging,
)

SORT_KEYS = (
    "id", "uuid", "name", "role", "is_default", "flavor_id", "image_id", "docker_volume_size", "node_count",
    "min_node_count", "max_node_count", "status", "created_at", "updated_at",
)
@dataclass(frozen=True)
class NodeGroupView:
    """A nodegroup with what its answer shows beside the row: its cluster's uuid and labels
    (for labels_overridden/added/skipped) and its nodes' addresses."""

    nodegroup: NodeGroup
    cluster_uuid: str
    cluster_labels: dict
    node_addresses: list[str]

    def labels_diff(self) -> tuple[dict, dict, dict]:
        return labels_diff(self.cluster_labels, dict(self.nodegroup.labels or {}))


def find_nodegroup(session: Session, cluster: Cluster, ident: str) -> NodeGroup:
    """A nodegroup of `cluster` by uuid or name; NotFound otherwise."""
    base = select(NodeGroup).where(NodeGroup.cluster_id == cluster.id)
    if is_uuid_like(ident):
        found = session.scalars(base.where(NodeGroup.uuid == ident.lower())).first()
        if found is not None:
            return found
    found = session.scalars(base.where(NodeGroup.name == ident)).first()
    if found is None:
        raise NotFound(f"Nodegroup {ident} could not be found in cluster {cluster.name}.")
    return found


def _addresses(session: Session, groups: list[NodeGroup]) -> dict[int, list[str]]:
    if not groups:
        return {}
    out: dict[int, list[str]] = {g.id: [] for g in groups}
    rows = session.execute(
        select(Node.nodegroup_id, Node.address).where(Node.nodegroup_id.in_(list(out)), Node.address.is_not(None))
        .order_by(Node.nodegroup_id, Node.index)
    )
    for gid, address in rows:
        out[gid].append(address)
    return out


def _views(session: Session, cluster: Cluster, groups: list[NodeGroup]) -> list[NodeGroupView]:
    addresses = _addresses(session, groups)
    labels = dict(cluster.labels or {})
    return [NodeGroupView(g, cluster.uuid, labels, addresses.get(g.id, [])) for g in groups]


def get_nodegroup(db: Database, caller: Caller, cluster_ident: str, ident: str) -> NodeGroupView:
    """One nodegroup of one of the caller's clusters, by uuid or name."""
    with db.session() as session:
        cluster = find_cluster(session, caller, cluster_ident, for_display=True)
        return _views(session, cluster, [find_nodegroup(session, cluster, ident)])[0]


def list_nodegroups(
    db: Database,
    caller: Caller,
    cluster_ident: str,
    *,
    role: str | None = None,
    limit: int | None = None,
    marker: str | None = None,
    sort_key: str = "id",
    sort_dir: str = "asc",
) -> tuple[str, Page[NodeGroupView]]:
    """(the cluster's uuid, a page of its nodegroups), Magnum-style: `role` filters, marker is a uuid."""
    limit = validate_paging(limit, sort_key, sort_dir, SORT_KEYS)
    with db.session() as session:
        cluster = find_cluster(session, caller, cluster_ident, for_display=True)
        stmt = select(NodeGroup).where(NodeGroup.cluster_id == cluster.id)
        if role is not None:
            stmt = stmt.where(NodeGroup.role == role)
        marker_row = None
        if marker is not None:
            marker_row = session.scalars(stmt.where(NodeGroup.uuid == marker.lower())).first()
            if marker_row is None:
                raise InvalidInput(f"marker {marker[:64]} is not a nodegroup in this list")
        groups = paginate(session, stmt, NodeGroup, limit=limit, marker=marker_row, sort_key=sort_key,
                          sort_dir=sort_dir)
        views = _views(session, cluster, groups)
        return cluster.uuid, page_of(views, limit, lambda v: v.nodegroup.uuid)


# ---------------------------------------------------------------------------
# Sizes: flavors, capacity and quotas


def resolve_flavor(session: Session, ref: str, caller: Caller) -> Flavor:
    """The flavor `ref` (id or name) names, visible to `caller`; InvalidInput when there is none."""
    found = check_flavor(session, ref, caller)
    if found is None:  # an empty ref: what the spec's min_length already refuses
        raise InvalidInput("flavor_id must name a flavor")
    return found


def _pending_target(session: Session, cluster: Cluster, group: NodeGroup) -> int | None:
    """The node count an active operation takes `group` to, if one does."""
    op = active_operation(session, cluster)
    params = (op.params or {}) if op is not None else {}
    target = params.get("node_count")
    return target if params.get("nodegroup") == group.uuid and isinstance(target, int) else None


def _enforce_growth(session: Session, runtime: Runtime, cluster: Cluster, group: NodeGroup | None,
                    flavor_ref: str | None, target: int) -> None:
    """QuotaExceeded unless the project may have `target` nodes in `group` (None: a new group); the
    caller holds the quota lock. Only growth is checked, each new node at the group's flavor."""
    now = 0
    if group is not None:
        pending = _pending_target(session, cluster, group)
        now = max(group.node_count, pending or 0)
    if target <= now:
        return
    quotas.enforce(session, runtime.settings, cluster.project_id,
                   quotas.nodegroup_size(session, flavor_ref, target - now))


def _check_capacity(session: Session, runtime: Runtime, cluster: Cluster, group: NodeGroup | None,
                    target: int) -> None:
    """InvalidInput unless the cluster, with `target` nodes in `group`, fits floe's address range."""
    rows = session.execute(
        select(NodeGroup.id, NodeGroup.role, NodeGroup.node_count).where(NodeGroup.cluster_id == cluster.id)
    ).all()
    if not rows:  # a cluster from before nodegroups, not yet planned by the engine
        masters, workers = cluster.master_count, cluster.node_count
    else:
        masters = sum(n for gid, role, n in rows if role == MASTER and (group is None or gid != group.id))
        workers = sum(n for gid, role, n in rows if role != MASTER and (group is None or gid != group.id))
    check_capacity(runtime, masters, workers + target)


def _check_gpus(runtime: Runtime, flavor: Flavor) -> None:
    """Refused early: a GPU flavor on a provider that cannot give nodes GPUs."""
    from floe.providers.base import ProviderWithGPUs

    if flavor.gpus and runtime.provider is not None and not isinstance(runtime.provider, ProviderWithGPUs):
        raise InvalidInput(
            f"flavor {flavor.name} has {flavor.gpus} GPU(s) but this floe's provider "
            f"({getattr(runtime.provider, 'name', type(runtime.provider).__name__)}) cannot give nodes GPUs"
        )


def _refuse_if_deleting(cluster: Cluster) -> None:
    if cluster_deleting(cluster.status):
        raise Conflict(f"cluster {cluster.name} is being deleted ({cluster.status}): its nodegroups cannot change")


# ---------------------------------------------------------------------------
# Changes


def create_nodegroup(runtime: Runtime, caller: Caller, cluster_ident: str, spec: NodeGroupSpec) -> NodeGroupView:
    """Record a new worker nodegroup and queue the update that builds its nodes (CREATE_IN_PROGRESS).

    What the request leaves out comes from the cluster (flavor, docker volume, labels; with
    `merge_labels` the request's labels are laid over the cluster's) and its template (image).
    """
    if spec.role == MASTER:
        raise InvalidInput(
            "Creating master nodegroups is not supported: a cluster has only one master nodegroup "
            f"({MASTER_NODEGROUP}, its Swarm managers)"
        )
    if spec.project_id is not None and spec.project_id != caller.project_id:
        raise InvalidInput("project_id is read-only: a nodegroup belongs to its cluster's project")
    check_bounds(spec.name, spec.node_count, spec.min_node_count, spec.max_node_count)
    with runtime.db.session() as session:
        quotas.lock(session, caller.project_id)  # before anything is read (services/quotas.py)
        cluster = find_cluster(session, caller, cluster_ident)
        _refuse_if_deleting(cluster)
        taken = select(NodeGroup.id).where(NodeGroup.cluster_id == cluster.id, NodeGroup.name == spec.name)
        if session.scalars(taken).first() is not None:
            raise Conflict(f"A nodegroup named {spec.name} already exists in cluster {cluster.name}.")
        if spec.flavor_id is not None:
            _check_gpus(runtime, resolve_flavor(session, spec.flavor_id, caller))
        # Left out, the cluster's (accepted when the cluster was made, even outside the catalog).
        flavor_ref = spec.flavor_id or cluster.flavor_id
        image = spec.image_id
        if image is None:
            image = session.scalars(
                select(ClusterTemplate.image_id).where(ClusterTemplate.uuid == cluster.cluster_template_id)
            ).first()
        cluster_labels = dict(cluster.labels or {})
        if spec.labels is None:
            labels = cluster_labels
        elif spec.merge_labels:
            labels = {**cluster_labels, **spec.labels}
        else:
            labels = dict(spec.labels)
        _check_capacity(session, runtime, cluster, None, spec.node_count)
        _enforce_growth(session, runtime, cluster, None, flavor_ref, spec.node_count)
        group = NodeGroup(
            cluster_id=cluster.id, project_id=cluster.project_id, name=spec.name, role=spec.role,
            is_default=False, flavor_id=flavor_ref, image_id=image,
            docker_volume_size=spec.docker_volume_size or cluster.docker_volume_size,
            node_count=spec.node_count, min_node_count=spec.min_node_count, max_node_count=spec.max_node_count,
            labels=labels, node_labels=spec.node_labels or {}, node_taints=spec.node_taints or [],
            status="CREATE_IN_PROGRESS", status_reason="create queued",
        )
        session.add(group)
        try:
            session.flush()
        except IntegrityError:  # a concurrent create of the same name won
            raise Conflict(f"A nodegroup named {spec.name} already exists in cluster {cluster.name}.") from None
        start_operation(session, cluster, "update", {"nodegroup": group.uuid, "node_count": group.node_count})
        view = _views(session, cluster, [group])[0]
    runtime.wake_engine("operation")
    return view


def update_nodegroup(runtime: Runtime, caller: Caller, cluster_ident: str, ident: str,
                     patch: list[dict[str, Any]], allowed: tuple[str, ...] = PATCHABLE) -> NodeGroupView:
    """Apply a JSON patch to a nodegroup (see `parse_patch`).

    Bounds alone change at once. A new node_count queues a resize of the group; new node labels
    or taints queue an update that relabels its nodes (both UPDATE_IN_PROGRESS).
    """
    changes = parse_patch(patch, allowed)
    with runtime.db.session() as session:
        quotas.lock(session, caller.project_id)  # before anything is read (services/quotas.py)
        cluster = find_cluster(session, caller, cluster_ident)
        group = find_nodegroup(session, cluster, ident)
        _refuse_if_deleting(cluster)
        if group.status == "DELETE_IN_PROGRESS":
            raise Conflict(f"nodegroup {group.name} is being deleted")
        current = active_operation(session, cluster)
        if current is not None:
            raise Conflict(
                f"cluster {cluster.name} has an operation in progress ({current.kind}, step "
                f"{current.step or 'queued'}); try again when it has finished"
            )
        target = changes.get("node_count", group.node_count)
        lo = changes.get("min_node_count", group.min_node_count)
        hi = changes.get("max_node_count", group.max_node_count)
        check_bounds(group.name, target, lo, hi)
        resize = target != group.node_count
        relabel = ("node_labels" in changes and changes["node_labels"] != dict(group.node_labels or {})) or (
            "node_taints" in changes and changes["node_taints"] != list(group.node_taints or []))
        if resize and group.role == MASTER:
            raise InvalidInput(
                f"Resizing a master nodegroup is not supported: {group.name} holds the cluster's Swarm managers"
            )
        if resize:
            _check_capacity(session, runtime, cluster, group, target)
            _enforce_growth(session, runtime, cluster, group, group.flavor_id, target)
        group.min_node_count, group.max_node_count = lo, hi
        if "node_labels" in changes:
            group.node_labels = changes["node_labels"]
        if "node_taints" in changes:
            group.node_taints = changes["node_taints"]
        if resize or relabel:
            group.status, group.status_reason = "UPDATE_IN_PROGRESS", "update queued"
            start_operation(session, cluster, "update",
                            {"nodegroup": group.uuid, "node_count": target, "nodes_to_remove": []})
        session.flush()
        view = _views(session, cluster, [group])[0]
    if resize or relabel:
        runtime.wake_engine("operation")
    return view


def resize_nodegroup(
    runtime: Runtime,
    caller: Caller,
    cluster_ident: str,
    ident: str,
    node_count: int,
    nodes_to_remove: list[str] | None = None,
) -> Cluster:
    """Queue a resize of a worker nodegroup to `node_count`, removing the named nodes first
    (`POST /v1/clusters/{id}/actions/resize` with `nodegroup`); returns the cluster.

    The group's bounds hold (400 outside them), as do the project's quotas. The default
    worker group goes the cluster's own way (`clusters.resize_cluster`).
    """
    from floe.services import clusters  # resize_cluster calls back here: imported late

    with runtime.db.session() as session:
        cluster = find_cluster(session, caller, cluster_ident)
        group = find_nodegroup(session, cluster, ident)
        is_default_worker = group.is_default and group.name == WORKER_NODEGROUP
        role = group.role
    if role == MASTER:
        raise InvalidInput("Resizing a master nodegroup is not supported: resize the workers")
    if is_default_worker:
        return clusters.resize_cluster(runtime, caller, cluster_ident, node_count, nodes_to_remove, None)
    wanted = list(dict.fromkeys(nodes_to_remove or []))
    with runtime.db.session() as session:
        quotas.lock(session, caller.project_id)  # before anything is read (services/quotas.py)
        cluster = find_cluster(session, caller, cluster_ident)
        group = find_nodegroup(session, cluster, ident)
        _refuse_if_deleting(cluster)
        if group.status == "DELETE_IN_PROGRESS":
            raise Conflict(f"nodegroup {group.name} is being deleted")
        hi = group.max_node_count
        if node_count < group.min_node_count or (hi is not None and node_count > hi):
            raise InvalidInput(
                f"Resizing {group.name} outside the allowed range: min_node_count = {group.min_node_count}, "
                f"max_node_count = {group.max_node_count if group.max_node_count is not None else 'unbounded'}"
            )
        remove: list[str] = []
        if wanted:
            nodes = list(session.scalars(select(Node).where(Node.nodegroup_id == group.id)))
            by_key = {n.name: n for n in nodes} | {n.uuid: n for n in nodes}
            for key in wanted:
                node = by_key.get(key) or by_key.get(key.lower())
                if node is None:
                    raise InvalidInput(f"node {key} is not a node of nodegroup {group.name}")
                if node.uuid not in remove:
                    remove.append(node.uuid)
            if len(remove) > group.node_count - node_count:
                raise InvalidInput(
                    f"nodes_to_remove names {len(remove)} node(s) but resizing {group.name} from "
                    f"{group.node_count} to {node_count} removes {max(group.node_count - node_count, 0)}"
                )
        _check_capacity(session, runtime, cluster, group, node_count)
        _enforce_growth(session, runtime, cluster, group, group.flavor_id, node_count)
        start_operation(session, cluster, "update",
                        {"nodegroup": group.uuid, "node_count": node_count, "nodes_to_remove": remove})
        group.status, group.status_reason = "UPDATE_IN_PROGRESS", "update queued"
    runtime.wake_engine("operation")
    return cluster


def delete_nodegroup(runtime: Runtime, caller: Caller, cluster_ident: str, ident: str) -> None:
    """Queue the removal of a nodegroup and its nodes (DELETE_IN_PROGRESS); the default groups stay."""
    with runtime.db.session() as session:
        cluster = find_cluster(session, caller, cluster_ident)
        group = find_nodegroup(session, cluster, ident)
        if group.is_default:
            raise InvalidInput(
                f"Deleting a default nodegroup is not supported: {group.name} lives as long as its cluster"
            )
        _refuse_if_deleting(cluster)
        if group.status == "DELETE_IN_PROGRESS":
            return  # already queued: a client repeating its delete
        if group.status.endswith("_IN_PROGRESS"):
            raise Conflict(
                f"nodegroup {group.name} is {group.status}: delete it when that has finished"
            )
        start_operation(session, cluster, "update",
                        {"nodegroup": group.uuid, "node_count": 0, "delete_nodegroup": True})
        group.status, group.status_reason = "DELETE_IN_PROGRESS", "delete queued"
    runtime.wake_engine("operation")


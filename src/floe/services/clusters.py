"""Clusters: validate requests, record them and queue operations for the engine (no HTTP here).

Creating, resizing and deleting only record intent: each queues an operation with
`start_operation` in the same transaction, then wakes the engine after commit.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from floe import ipam
from floe.db.flavors import node_flavor
from floe.db.models import (
    Cluster,
    ClusterNetwork,
    ClusterTemplate,
    GPUAllocation,
    Network,
    Node,
    NodeGroup,
    NodeInterface,
)
from floe.db.nodegroups import MASTER_NODEGROUP, WORKER_NODEGROUP, default_nodegroups, flavor_ref
from floe.db.session import Database
from floe.engine.operations import start_operation
from floe.errors import Conflict, InvalidInput, NotFound
from floe.runtime import Runtime
from floe.services import quotas
from floe.services.flavors import check_flavor
from floe.services.identity import Caller
from floe.services.templates import (
    MAX_DOCKER_VOLUME_GB,
    LabelValue,
    MagnumSpec,
    Page,
    ascii_int,
    check_labels,
    find_template,
    generate_name,
    is_uuid_like,
    page_of,
    paginate,
    validate_paging,
)

SORT_KEYS = (
    "id", "uuid", "name", "cluster_template_id", "keypair", "node_count", "master_count",
    "docker_volume_size", "flavor_id", "master_flavor_id", "create_timeout", "status", "health_status",
    "stack_id", "api_address", "coe", "coe_version", "container_version", "created_at", "updated_at",
)
# Attributes the engine maintains; a patch naming them is refused as Magnum does.
INTERNAL_ATTRS = frozenset(
    {"id", "uuid", "links", "created_at", "updated_at", "project_id", "user_id", "api_address",
     "node_addresses", "master_addresses", "stack_id", "status", "status_reason", "coe_version",
     "container_version", "faults"}
)
# Minutes a create may take before it fails: 30 days at most (Magnum sets no bound; a
# deadline must fit the database and Python's datetime).
MAX_CREATE_TIMEOUT = 30 * 24 * 60
# No address range floe accepts holds more nodes in one cluster than this (a /8 holds 32,695):
# a static bound, so that no number too large for the database gets past the request body.
MAX_NODES = 1 << 16


def check_master_count(coe: str, count: int) -> None:
    """Swarm managers keep a raft quorum (an odd count); Slurm has a controller and one backup."""
    if coe == "slurm":
        if count > 2:
            raise InvalidInput(
                f"Invalid value for 'master_count': {count}: a Slurm cluster has a controller and at most "
                "one backup (master_count 1 or 2)"
            )
    elif count % 2 == 0:
        raise InvalidInput(
            f"Invalid value for 'master_count': master_count {count} is even: use an odd number (1, 3, 5…) "
            "so the Swarm managers keep a quorum"
        )


class ClusterSpec(MagnumSpec):
    """A cluster-create request with Magnum's field names; unknown fields are refused."""

    cluster_template_id: str = Field(min_length=1, max_length=255)
    keypair: str | None = Field(default=None, min_length=1, max_length=255)
    node_count: int = Field(default=1, ge=0, le=MAX_NODES, strict=True)
    master_count: int = Field(default=1, ge=1, le=MAX_NODES, strict=True)
    docker_volume_size: int | None = Field(default=None, ge=1, le=MAX_DOCKER_VOLUME_GB, strict=True)
    labels: dict[str, LabelValue] | None = None
    master_flavor_id: str | None = Field(default=None, min_length=1, max_length=255)
    flavor_id: str | None = Field(default=None, min_length=1, max_length=255)
    create_timeout: int = Field(default=60, ge=0, le=MAX_CREATE_TIMEOUT, strict=True)
    discovery_url: str | None = Field(default=None, max_length=255)
    fixed_network: str | None = Field(default=None, min_length=1, max_length=255)
    fixed_subnet: str | None = Field(default=None, min_length=1, max_length=255)
    floating_ip_enabled: bool | None = None
    master_lb_enabled: bool | None = None
    merge_labels: bool = False

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, LabelValue] | None) -> dict[str, LabelValue] | None:
        return check_labels(v)



@dataclass(frozen=True)
class ClusterView:
    """A cluster plus its template's labels (for Magnum's labels_added/overridden/skipped)."""

    cluster: Cluster
    template_labels: dict


def labels_diff(parent: dict, labels: dict) -> tuple[dict, dict, dict]:
    """Magnum's (overridden, added, skipped) labels of a cluster relative to its template.

    overridden maps each key whose value differs to the template's value.
    """
    overridden = {k: parent[k] for k, v in labels.items() if k in parent and parent[k] != v}
    added = {k: v for k, v in labels.items() if k not in parent}
    skipped = {k: v for k, v in parent.items() if k not in labels}
    return overridden, added, skipped


def merge_labels(template_labels: dict, labels: dict | None, merge: bool) -> dict:
    """Magnum's rule: no labels → the template's; with merge_labels → template's updated by the
    request's; otherwise the request's alone."""
    if not labels:
        return dict(template_labels)
    if merge:
        return {**template_labels, **labels}
    return dict(labels)


# ---------------------------------------------------------------------------
# Queries


# What no answer shows (the CA, swarm join tokens, host bookkeeping): reads for the API skip
# these columns, the CA key being the bulk of a row.
_NOT_SHOWN = (
    defer(Cluster.ca_cert_pem), defer(Cluster.ca_key_pem), defer(Cluster.ca_next_cert_pem),
    defer(Cluster.ca_next_key_pem), defer(Cluster.coe_state),
    defer(Cluster.subnet), defer(Cluster.swarm_pool), defer(Cluster.host_tag),
)


def find_cluster(session: Session, caller: Caller, ident: str, *, for_display: bool = False) -> Cluster:
    """A cluster of the caller's project by uuid or name; NotFound otherwise (other projects' too).

    `for_display` leaves out the columns no answer shows (they cannot be read afterwards).
    """
    base = select(Cluster).where(Cluster.project_id == caller.project_id)
    if for_display:
        base = base.options(*_NOT_SHOWN)
    if is_uuid_like(ident):
        cluster = session.scalars(base.where(Cluster.uuid == ident.lower())).first()
        if cluster is not None:
            return cluster
    matches = list(session.scalars(base.where(Cluster.name == ident).limit(2)))
    if not matches:
        raise NotFound(f"Cluster {ident} could not be found.")
    if len(matches) > 1:
        raise Conflict(f"Multiple clusters exist with same name {ident}. Please use the cluster uuid instead.")
    return matches[0]


def _template_labels(session: Session, uuids: set[str]) -> dict[str, dict]:
    if not uuids:
        return {}
    rows = session.execute(
        select(ClusterTemplate.uuid, ClusterTemplate.labels).where(ClusterTemplate.uuid.in_(uuids))
    )
    return {u: dict(labels or {}) for u, labels in rows}


def get_cluster(db: Database, caller: Caller, ident: str) -> ClusterView:
    """One cluster of the caller's project by uuid or name, for display (see find_cluster)."""
    with db.session() as session:
        cluster = find_cluster(session, caller, ident, for_display=True)
        labels = _template_labels(session, {cluster.cluster_template_id})
        return ClusterView(cluster, labels.get(cluster.cluster_template_id, {}))


def list_clusters(
    db: Database,
    caller: Caller,
    *,
    limit: int | None = None,
    marker: str | None = None,
    sort_key: str = "id",
    sort_dir: str = "asc",
) -> Page[ClusterView]:
    """A page of the caller's clusters, Magnum-style (limit, marker uuid, sort_key, sort_dir), for display."""
    limit = validate_paging(limit, sort_key, sort_dir, SORT_KEYS)
    with db.session() as session:
        stmt = select(Cluster).where(Cluster.project_id == caller.project_id).options(*_NOT_SHOWN)
        marker_row = None
        if marker is not None:
            marker_row = session.scalars(stmt.where(Cluster.uuid == marker)).first()
            if marker_row is None:
                raise InvalidInput(f"marker {marker} is not a cluster in this list")
        clusters = paginate(
            session, stmt, Cluster, limit=limit, marker=marker_row, sort_key=sort_key, sort_dir=sort_dir
        )
        labels = _template_labels(session, {c.cluster_template_id for c in clusters})
        views = [ClusterView(c, labels.get(c.cluster_template_id, {})) for c in clusters]
        return page_of(views, limit, lambda v: v.cluster.uuid)


@dataclass(frozen=True)
class NodeView:
    """A node with what it is made of: its nodegroup, flavor, interfaces and GPUs."""

    node: Node
    nodegroup: str
    flavor: str
    interfaces: list[tuple[str, str, str]]  # (ifname, network name, address), eth0 first
    gpus: list[str]


def list_nodes(db: Database, caller: Caller, ident: str) -> list[NodeView]:
    """The nodes of one cluster, managers first, each role by index, then by nodegroup."""
    with db.session() as session:
        cluster = find_cluster(session, caller, ident)
        stmt = select(Node).where(Node.cluster_id == cluster.id).order_by(Node.role, Node.nodegroup_id, Node.index)
        nodes = list(session.scalars(stmt))
        groups = {g.id: g for g in session.scalars(select(NodeGroup).where(NodeGroup.cluster_id == cluster.id))}
        flavors = {}
        for gid, g in groups.items():
            f = node_flavor(session, flavor_ref(cluster, g))
            flavors[gid] = f.name if f else ""
        ids = [n.id for n in nodes]
        interfaces: dict[int, list[tuple[str, str, str]]] = {}
        rows = session.execute(
            select(NodeInterface.node_id, NodeInterface.ifname, Network.name, NodeInterface.address)
            .join(Network, Network.id == NodeInterface.network_id)
            .where(NodeInterface.node_id.in_(ids)).order_by(NodeInterface.ifname)
        )
        for node_id, ifname, net, address in rows:
            interfaces.setdefault(node_id, []).append((ifname, net, address))
        gpus: dict[int, list[str]] = {}
        for node_id, gpu in session.execute(
            select(GPUAllocation.node_id, GPUAllocation.gpu_uuid).where(GPUAllocation.node_id.in_(ids))
            .order_by(GPUAllocation.id)
        ):
            gpus.setdefault(node_id, []).append(gpu)
        return [
            NodeView(
                n, groups[n.nodegroup_id].name if n.nodegroup_id in groups else "",
                flavors.get(n.nodegroup_id, ""),
                [("eth0", "management", n.address or ""), *interfaces.get(n.id, [])], gpus.get(n.id, []),
            )
            for n in nodes
        ]


# ---------------------------------------------------------------------------
# Changes


def _new_host_tag(session: Session) -> str:
    while True:
        tag = secrets.token_hex(4)
        if session.scalars(select(Cluster.id).where(Cluster.host_tag == tag)).first() is None:
            return tag


def _name_taken(session: Session, project_id: str, name: str) -> bool:
    stmt = select(Cluster.id).where(Cluster.project_id == project_id, Cluster.name == name)
    return session.scalars(stmt).first() is not None


def create_cluster(runtime: Runtime, caller: Caller, spec: ClusterSpec) -> Cluster:
    """Record a new cluster and queue its create operation; returns it (CREATE_IN_PROGRESS).

    The template must be visible to the caller (400 otherwise); fields the request
    leaves out are inherited from it. Nodes are not planned here: the engine does it.
    """
    check_capacity(runtime, spec.master_count, spec.node_count)
    with runtime.db.session() as session:
        # Before anything is read: the quota check and the insert are one step (services/quotas.py).
        quotas.lock(session, caller.project_id)
        try:
            ct = find_template(session, caller, spec.cluster_template_id)
        except NotFound as exc:
            # 404 would say the URL is wrong; the request body is (Magnum answers 400 too).
            raise InvalidInput(exc.detail) from None
        check_master_count(ct.coe, spec.master_count)
        # Both flavors must be in the catalog (400 in Magnum's words otherwise), the template's too.
        check_flavor(session, spec.flavor_id or ct.flavor_id, caller)
        check_flavor(session, spec.master_flavor_id or ct.master_flavor_id, caller)
        name = spec.name
        if name is None:
            name = generate_name("cluster")
            while _name_taken(session, caller.project_id, name):
                name = generate_name("cluster")
        elif _name_taken(session, caller.project_id, name):
            raise Conflict(f"A cluster named {name} already exists in this project.")
        cluster = Cluster(
            project_id=caller.project_id,
            user_id=caller.user_id,
            name=name,
            cluster_template_id=ct.uuid,
            coe=ct.coe,
            host_tag=_new_host_tag(session),
            keypair=spec.keypair if spec.keypair is not None else ct.keypair_id,
            node_count=spec.node_count,
            master_count=spec.master_count,
            docker_volume_size=spec.docker_volume_size or ct.docker_volume_size,
            labels=merge_labels(ct.labels or {}, spec.labels, spec.merge_labels),
            master_flavor_id=spec.master_flavor_id or ct.master_flavor_id,
            flavor_id=spec.flavor_id or ct.flavor_id,
            create_timeout=spec.create_timeout,
            discovery_url=spec.discovery_url,
            fixed_network=spec.fixed_network or ct.fixed_network,
            fixed_subnet=spec.fixed_subnet or ct.fixed_subnet,
            floating_ip_enabled=(
                ct.floating_ip_enabled if spec.floating_ip_enabled is None else spec.floating_ip_enabled
            ),
            master_lb_enabled=ct.master_lb_enabled if spec.master_lb_enabled is None else spec.master_lb_enabled,
        )
        networks = cluster_networks(session, caller, cluster.fixed_network, cluster.labels)
        quotas.enforce(session, runtime.settings, caller.project_id,
                       {quotas.CLUSTERS: 1, **quotas.cluster_size(session, cluster)})
        session.add(cluster)
        try:
            session.flush()
        except IntegrityError:
            raise Conflict(f"A cluster named {name} already exists in this project.") from None
        add_default_nodegroups(session, cluster, ct)
        for position, net in enumerate(networks, start=1):
            session.add(ClusterNetwork(cluster_id=cluster.id, network_id=net.id, position=position))
        start_operation(session, cluster, "create")
    runtime.wake_engine("operation")
    return cluster


# Magnum's Cluster API driver spells the networks after the first this way: "net-a,net-b".
EXTRA_NETWORKS_LABEL = "extra_network_names"
# floe's: the network (one of the cluster's) that carries Swarm's data path (VXLAN).
DATA_PATH_LABEL = "data_path_network"


def network_names(fixed_network: str | None, labels: dict | None) -> list[str]:
    """The project networks a cluster's nodes attach to, in interface order (eth1, eth2, …)."""
    names = [fixed_network] if fixed_network else []
    extra = str((labels or {}).get(EXTRA_NETWORKS_LABEL) or "")
    names += [n.strip() for n in extra.split(",") if n.strip()]
    return list(dict.fromkeys(names))


def cluster_networks(session: Session, caller: Caller, fixed_network: str | None, labels: dict | None) -> list[Network]:
    """The caller's networks a cluster names (fixed_network, then the extra_network_names label);
    InvalidInput for a name that is not one of the project's networks, or a data path elsewhere."""
    found: list[Network] = []
    for ident in network_names(fixed_network, labels):
        stmt = select(Network).where(Network.project_id == caller.project_id)
        net = session.scalars(stmt.where(Network.uuid == ident.lower())).first() if is_uuid_like(ident) else None
        net = net or session.scalars(stmt.where(Network.name == ident)).first()
        if net is None:
            raise InvalidInput(
                f"Network {ident} could not be found: create it first (floe network create {ident})"
            )
        found.append(net)
    data = (labels or {}).get(DATA_PATH_LABEL)
    if data and str(data) not in {n.name for n in found} | {n.uuid for n in found}:
        raise InvalidInput(
            f"label {DATA_PATH_LABEL}={data} must name one of the cluster's networks "
            f"(fixed_network or {EXTRA_NETWORKS_LABEL}): {', '.join(n.name for n in found) or 'none'}"
        )
    return found


def add_default_nodegroups(session: Session, cluster: Cluster, template: ClusterTemplate) -> None:
    """A new cluster's default-master and default-worker nodegroups (Magnum's)."""
    session.add_all(default_nodegroups(cluster, template.image_id))


def _node_count(value: Any) -> int:
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "…"
    if isinstance(value, bool):
        raise InvalidInput(f"node_count must be a whole number >= 0, not {shown}")
    if isinstance(value, str) and ascii_int(value) is not None:
        value = ascii_int(value)
    if not isinstance(value, int) or value < 0:
        raise InvalidInput(f"node_count must be a whole number >= 0, not {shown}")
    if value > MAX_NODES:
        raise InvalidInput(f"node_count {shown} is too large: a cluster has at most {MAX_NODES} nodes")
    return value


def check_capacity(runtime: Runtime, masters: int, workers: int) -> None:
    """InvalidInput unless a cluster of `masters` + `workers` nodes can fit in floe's address range.

    The bound a request can be refused with before anything is built (a project's quotas are a
    second one, checked under the quota lock: `_enforce_growth`); what is free right now is
    checked by the engine's plan step.
    """
    rng = runtime.settings.network
    most = ipam.max_cluster_nodes(rng)
    if masters + workers > most:
        raise InvalidInput(
            f"a cluster of {masters} manager(s) and {workers} worker(s) cannot fit: the address range {rng} "
            f"holds at most {most} nodes in one cluster (each node takes a /{ipam.NODE_POOL_PREFIX} for its "
            "dockerd); ask for fewer nodes, or set a larger FLOE_ADDRESS_RANGE"
        )


def _enforce_growth(session: Session, runtime: Runtime, cluster: Cluster, node_count: int) -> None:
    """QuotaExceeded unless the project may grow `cluster` to `node_count` workers (the caller
    holds the quota lock); shrinking is always allowed."""
    now = quotas.counted_workers(session, cluster)
    if node_count <= now:
        return
    before, after = quotas.cluster_size(session, cluster, now), quotas.cluster_size(session, cluster, node_count)
    quotas.enforce(session, runtime.settings, cluster.project_id, {k: after[k] - before[k] for k in after})


def _check_worker_bounds(session: Session, cluster: Cluster, node_count: int) -> NodeGroup | None:
    """default-worker; InvalidInput unless `node_count` lies within its min_node_count..max_node_count."""
    workers = session.scalars(select(NodeGroup).where(
        NodeGroup.cluster_id == cluster.id, NodeGroup.name == WORKER_NODEGROUP)).first()
    if workers is not None and (node_count < workers.min_node_count or (
            workers.max_node_count is not None and node_count > workers.max_node_count)):
        hi = workers.max_node_count if workers.max_node_count is not None else "unbounded"
        raise InvalidInput(f"Resizing {WORKER_NODEGROUP} outside the allowed range: "
                           f"min_node_count = {workers.min_node_count}, max_node_count = {hi}")
    return workers


def update_cluster(runtime: Runtime, caller: Caller, ident: str, patch: list[dict[str, Any]]) -> Cluster:
    """Apply a JSON patch to a cluster: only `replace /node_count` is allowed; queues an update."""
    if not patch:
        raise InvalidInput("the patch is empty: send [{\"op\": \"replace\", \"path\": \"/node_count\", \"value\": N}]")
    node_count: int | None = None
    for p in patch:
        path = str(p.get("path", ""))
        attr = path.lstrip("/")
        if attr in INTERNAL_ATTRS:
            raise InvalidInput(f"'{path}' is an internal attribute and can not be updated")
        if attr != "node_count":
            raise InvalidInput(
                f"cannot change cluster property(ies) {attr}: only node_count can be changed "
                "(use the resize action to choose which nodes go)"
            )
        if p.get("op") == "remove":
            raise InvalidInput(f"'{path}' is a mandatory attribute and can not be removed")
        if p.get("op") not in ("add", "replace"):
            raise InvalidInput(f"patch operation {p.get('op')!r} is not supported; use replace")
        if "value" not in p:
            raise InvalidInput("'add' and 'replace' operations need a value")
        node_count = _node_count(p["value"])
    assert node_count is not None
    with runtime.db.session() as session:
        quotas.lock(session, caller.project_id)  # before anything is read (services/quotas.py)
        cluster = find_cluster(session, caller, ident)
        check_capacity(runtime, cluster.master_count, node_count)
        _check_worker_bounds(session, cluster, node_count)
        _enforce_growth(session, runtime, cluster, node_count)
        start_operation(session, cluster, "update", {"node_count": node_count})
    runtime.wake_engine("operation")
    return cluster


def resize_cluster(
    runtime: Runtime,
    caller: Caller,
    ident: str,
    node_count: int,
    nodes_to_remove: list[str] | None = None,
    nodegroup: str | None = None,
    requeue_jobs: bool = False,
) -> Cluster:
    """Queue a resize to `node_count` workers, removing the named workers first.

    `nodes_to_remove` holds node names or uuids; each must be a worker of this
    cluster. The operation's params carry them as node uuids. `requeue_jobs`: a Slurm cluster
    requeues the jobs running on the nodes that go rather than waiting for them.
    """
    node_count = _node_count(node_count)
    if nodegroup == MASTER_NODEGROUP:
        raise InvalidInput("resizing the managers (default-master) is not supported; resize the workers")
    if nodegroup not in (None, "", WORKER_NODEGROUP):
        # Another group, by name or uuid (the default worker's uuid comes back here with None).
        from floe.services import nodegroups  # it builds on this module: imported when used

        return nodegroups.resize_nodegroup(runtime, caller, ident, nodegroup, node_count, nodes_to_remove)
    wanted = list(dict.fromkeys(nodes_to_remove or []))
    with runtime.db.session() as session:
        quotas.lock(session, caller.project_id)  # before anything is read (services/quotas.py)
        cluster = find_cluster(session, caller, ident)
        check_capacity(runtime, cluster.master_count, node_count)
        workers = _check_worker_bounds(session, cluster, node_count)
        remove: list[str] = []
        if wanted:
            nodes = list(session.scalars(select(Node).where(Node.cluster_id == cluster.id)))
            by_key = {n.name: n for n in nodes} | {n.uuid: n for n in nodes}
            for key in wanted:
                node = by_key.get(key) or by_key.get(key.lower())
                if node is None:
                    raise InvalidInput(f"node {key} is not a node of cluster {cluster.name}")
                if node.role != "worker":
                    raise InvalidInput(f"node {key} is a {node.role}; only workers can be removed")
                if workers is not None and node.nodegroup_id not in (None, workers.id):
                    raise InvalidInput(f"node {key} is not in {WORKER_NODEGROUP}: name its nodegroup to remove it")
                if node.uuid not in remove:
                    remove.append(node.uuid)
            if len(remove) > cluster.node_count - node_count:
                raise InvalidInput(
                    f"nodes_to_remove names {len(remove)} node(s) but resizing from {cluster.node_count} "
                    f"to {node_count} removes {max(cluster.node_count - node_count, 0)}"
                )
        _enforce_growth(session, runtime, cluster, node_count)
        params: dict = {"node_count": node_count, "nodes_to_remove": remove}
        if requeue_jobs:
            params["requeue"] = True
        start_operation(session, cluster, "update", params)
    runtime.wake_engine("operation")
    return cluster


def delete_cluster(runtime: Runtime, caller: Caller, ident: str) -> None:
    """Queue the deletion of a cluster (it supersedes whatever operation runs)."""
    with runtime.db.session() as session:
        cluster = find_cluster(session, caller, ident)
        start_operation(session, cluster, "delete")
    runtime.wake_engine("operation")

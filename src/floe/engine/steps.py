"""The steps every cluster pipeline shares: plan, registry, network, nodes, finish, teardown.

Each step is idempotent: run again after a crash, it finishes its work or finds it done.
Slow calls (the provider, the docker SDK) run outside any database transaction.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import delete, select, update

from floe import ipam, pki
from floe.coe.base import ClusterRef, NodeRef, load, node_info
from floe.db import events
from floe.db.models import ClusterNetwork, GPUAllocation, Network, Node, NodeGroup, NodeInterface
from floe.engine import planning
from floe.engine.context import StepContext
from floe.engine.errors import translate
from floe.errors import PermanentError
from floe.providers.base import (
    GPUDevice,
    NodeNetwork,
    NodeSpec,
    ProjectNetworkSpec,
    ProviderError,
    ProviderWithGPUs,
    ProviderWithNetworks,
    RegistryInfo,
    TLSMaterial,
)

# --- plan: see planning.py -------------------------------------------------------------
plan_create, plan_resize, node_name = planning.plan_create, planning.plan_resize, planning.node_name


# --- infrastructure ---------------------------------------------------------------------
def ensure_registry(ctx: StepContext) -> None:
    reg = ctx.provider.ensure_registry()  # a ProviderError is translated by the runner
    ctx.save_params(registry={"address": reg.address, "subnet": reg.subnet})


def ensure_network(ctx: StepContext) -> None:
    cluster, _ = load(ctx, ())
    ctx.provider.ensure_network(cluster.network())


def cluster_project_networks(ctx: StepContext) -> list[tuple[str, str, str]]:
    """(name, host tag, cidr) of each project network the cluster's nodes attach to."""
    with ctx.read() as s:
        c = ctx.cluster(s)
        rows = s.execute(
            select(Network.name, Network.host_tag, Network.cidr)
            .join(ClusterNetwork, ClusterNetwork.network_id == Network.id)
            .where(ClusterNetwork.cluster_id == c.id).order_by(ClusterNetwork.position)
        )
        return [tuple(r) for r in rows]


def ensure_project_networks(ctx: StepContext) -> None:
    """The host side of every project network the cluster uses (a bridge each on the local provider)."""
    nets = cluster_project_networks(ctx)
    if not nets:
        return
    if not isinstance(ctx.provider, ProviderWithNetworks):
        raise PermanentError(f"the {ctx.provider.name} provider cannot attach nodes to project networks")
    for _name, tag, cidr in nets:
        ctx.provider.ensure_project_network(ProjectNetworkSpec(tag, cidr))


@dataclass(frozen=True)
class NodeShape:
    """What a node is made of beyond its addresses: its flavor, GPUs, interfaces and labels."""

    cpus: float | None = None
    memory_mb: int | None = None
    disk_gb: int | None = None
    gpus: tuple[GPUDevice, ...] = ()
    networks: tuple[NodeNetwork, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()


def node_shapes(ctx: StepContext, node_ids: list[int]) -> dict[int, NodeShape]:
    """Each node's shape, read in one go (flavors, GPU allocations, interfaces)."""
    if not node_ids:
        return {}
    host_gpus: dict[str, GPUDevice] | None = None
    with ctx.read() as s:
        c = ctx.cluster(s)
        groups = {g.id: g for g in s.scalars(select(NodeGroup).where(NodeGroup.cluster_id == c.id))}
        flavors = {gid: planning.group_flavor(s, c, g) for gid, g in groups.items()}
        nodes = {n.id: n for n in s.scalars(select(Node).where(Node.id.in_(node_ids)))}
        gpus: dict[int, list[str]] = {}
        for a in s.scalars(select(GPUAllocation).where(GPUAllocation.node_id.in_(node_ids)).order_by(GPUAllocation.id)):
            gpus.setdefault(a.node_id, []).append(a.gpu_uuid)
        nets: dict[int, list[NodeNetwork]] = {}
        rows = s.execute(
            select(NodeInterface, Network).join(Network, Network.id == NodeInterface.network_id)
            .where(NodeInterface.node_id.in_(node_ids)).order_by(NodeInterface.ifname)
        )
        for iface, net in rows:
            nets.setdefault(iface.node_id, []).append(NodeNetwork(net.host_tag, iface.ifname, iface.address, net.cidr))
        if gpus:
            host = ctx.provider.host_gpus() if isinstance(ctx.provider, ProviderWithGPUs) else []
            host_gpus = {g.uuid: g for g in host}
        shapes = {}
        for nid, n in nodes.items():
            g = groups.get(n.nodegroup_id)
            f = flavors.get(n.nodegroup_id)
            devices = []
            for uuid in gpus.get(nid, []):
                if host_gpus is None or uuid not in host_gpus:
                    raise PermanentError(f"GPU {uuid} of node {n.name} is no longer on this host")
                devices.append(host_gpus[uuid])
            labels = {"floe.nodegroup": g.name if g else "", "floe.flavor": f.name if f else ""}
            shapes[nid] = NodeShape(
                cpus=float(f.vcpus) if f else None, memory_mb=f.ram if f else None,
                disk_gb=(f.disk or None) if f else None, gpus=tuple(devices),
                networks=tuple(nets.get(nid, [])), labels=tuple(sorted(labels.items())),
            )
        return shapes


def node_spec(
    ctx: StepContext, cluster: ClusterRef, node: NodeRef, cluster_size: int = 0, ca: tuple[str, str] | None = None,
    shape: NodeShape | None = None,
) -> NodeSpec:
    """What the provider needs to start `node`; its server certificate is signed by `ca` (cert, key
    PEMs: a rotation's new CA) or the cluster's; `shape` sizes it (node_shapes)."""
    shape = shape or NodeShape()
    ca_cert, ca_key = ca or (cluster.ca_cert_pem, cluster.ca_key_pem)
    cert, key = pki.issue_server_cert(
        ca_cert, ca_key, node.name, ips=[node.address, "127.0.0.1"], dns=[node.name, "localhost"],
    )
    reg = ctx.params.get("registry")
    return NodeSpec(
        cluster_tag=cluster.tag,
        name=node.name,
        address=node.address,
        network=cluster.network(),
        docker_pool=node.docker_pool,
        tls=TLSMaterial(ca_cert, cert, key),
        registry=RegistryInfo(reg["address"], reg["subnet"]) if reg else None,
        labels={"floe.cluster": cluster.uuid, "floe.role": node.role, "floe.node": node.name, **dict(shape.labels)},
        cluster_size=cluster_size,
        cpus=shape.cpus,
        memory_mb=shape.memory_mb,
        disk_gb=shape.disk_gb,
        gpus=shape.gpus,
        networks=shape.networks,
    )


class _Progress:
    """Throttled status_reason updates from many threads (one write per 0.5 s at most)."""

    def __init__(self, ctx: StepContext, total: int, text: str):
        self.ctx, self.total, self.text = ctx, total, text
        self.done = 0
        self.last = 0.0
        self.lock = threading.Lock()

    def tick(self) -> None:
        with self.lock:
            self.done += 1
            now = time.monotonic()
            if now - self.last < 0.5 and self.done < self.total:
                return
            self.last = now
            done = self.done
        self.ctx.progress(f"step {self.ctx.step}: {done}/{self.total} {self.text}")


def start_nodes(ctx: StepContext) -> None:
    """Start every node that should run (adopting those already running), in parallel."""
    cluster, nodes = load(ctx)
    todo = [n for n in nodes if n.state != "removing"]
    progress = _Progress(ctx, len(todo), "nodes started")
    shapes = node_shapes(ctx, [n.id for n in todo])

    def one(node: NodeRef) -> str:
        spec = node_spec(ctx, cluster, node, len(todo), shape=shapes.get(node.id))
        ctx.provider.start_node(spec)  # errors: translated by the runner
        progress.tick()
        return node.name

    # Bounded: on 2 CPUs, 32 dockerds booting at once were no faster than waves of 16
    # (bench/create_cluster.py; see docs/benchmarks.md).
    ctx.parallel(one, todo, limit=16)
    with ctx.session() as s:
        s.execute(
            update(Node)
            .where(Node.cluster_id == cluster.id, Node.state == "planned")
            .values(state="started")
        )


def finish(ctx: StepContext, status: str) -> None:
    """Record addresses and versions; the cluster reaches `status`."""
    with ctx.read() as s:  # one read: the nodes, and the version the driver may have recorded
        c = ctx.cluster(s)
        cluster, nodes = ClusterRef.of(c), [NodeRef.of(n) for n in ctx.nodes(s)]
        version = (c.coe_state or {}).get("version")
    managers = [n for n in nodes if n.role == "manager" and n.state != "removing"]
    workers = [n for n in nodes if n.role == "worker" and n.state != "removing"]
    if managers and not version:
        try:
            version = ctx.docker(node_info(ctx, cluster, managers[0])).version().get("Version")
        except Exception:  # noqa: BLE001 - the version is informative only
            version = None
    with ctx.session() as s:
        c = ctx.cluster(s)
        if managers:
            c.api_address = f"tcp://{managers[0].address}:2376"
        c.master_addresses = [n.address for n in managers]
        c.node_addresses = [n.address for n in workers]
        c.node_count = len(workers)
        if version:
            c.coe_version = c.container_version = version
        c.status = status
        # Why an operation floe started itself ran (auto-healing, host restart) stays visible after it.
        why = f" ({ctx.params['reason']})" if ctx.params.get("reason") else ""
        c.status_reason = f"{ctx.kind} complete{why}: {len(managers)} manager(s), {len(workers)} worker(s) ready"
        if c.health_status != "HEALTHY":
            events.record(
                s, project_id=c.project_id, kind="health.changed", cluster_id=c.uuid, cluster_name=c.name,
                message=f"cluster {c.name} is HEALTHY (was {c.health_status}): {ctx.kind} complete",
                operation_id=ctx.op_id, step=ctx.step or "", data={"old": c.health_status, "new": "HEALTHY"},
            )
        c.health_status = "HEALTHY"
        c.health_status_reason = {"api": "ok", **{f"{n.name}.Ready": "True" for n in managers + workers}}
        planning.settle_nodegroups(ctx, s)
        # The nodes agree with the cluster (a repaired node's old "not running" goes).
        s.execute(
            update(Node).where(Node.cluster_id == c.id, Node.state != "removing")
            .values(health_status="HEALTHY", health_reason="")
            .execution_options(synchronize_session=False)
        )


# --- teardown ---------------------------------------------------------------------------
def stop_nodes(ctx: StepContext, nodes: list[NodeRef], tag: str) -> None:
    progress = _Progress(ctx, len(nodes), "nodes stopped")

    def one(node: NodeRef) -> None:
        try:
            ctx.provider.stop_node(tag, node.name)
        except ProviderError as exc:
            raise translate(exc, temporary=True) from exc  # teardown retries whatever the provider says
        progress.tick()

    ctx.parallel(one, nodes, limit=16)


def remove_marked_nodes(ctx: StepContext) -> None:
    """Scale-down: the driver drains and forgets the nodes, then they stop and their addresses go."""
    cluster, nodes = load(ctx, ("removing",))
    if not nodes:
        return
    ctx.progress(f"step {ctx.step}: draining {len(nodes)} node(s)")
    ctx.driver.remove_nodes(ctx, nodes)
    stop_nodes(ctx, nodes, cluster.tag)
    with ctx.session() as s:
        ipam.release(s, [n.docker_pool for n in nodes if n.docker_pool])
        s.execute(delete(Node).where(Node.id.in_([n.id for n in nodes])))


def delete_nodes(ctx: StepContext) -> None:
    cluster, nodes = load(ctx)
    stop_nodes(ctx, nodes, cluster.tag)


def delete_network(ctx: StepContext) -> None:
    cluster, _ = load(ctx, ())
    if cluster.subnet:
        try:
            ctx.provider.delete_network(cluster.network())
        except ProviderError as exc:
            raise translate(exc, temporary=True) from exc  # teardown retries whatever the provider says


def purge_host(ctx: StepContext) -> None:
    """Whatever a crash may have left that no row remembers goes too."""
    cluster, _ = load(ctx, ())
    ctx.provider.purge_cluster(cluster.tag)


def release_cluster(ctx: StepContext) -> None:
    """The last step of a delete: the cluster row (and with it this operation) goes."""
    with ctx.session() as s:  # the lease is checked before the row holding it disappears
        c = ctx.cluster(s)
        ipam.release_owner(s, c.uuid)
        s.delete(c)


# --- a network for a running cluster ------------------------------------------------------
def plan_attached_network(ctx: StepContext) -> None:
    """Every node of the cluster gets its address on the cluster's networks (the new one included)."""
    with ctx.session() as s:
        c = ctx.cluster(s)
        groups = list(s.scalars(select(NodeGroup).where(NodeGroup.cluster_id == c.id)))
        planning.plan_interfaces(s, c.id, [n for n in ctx.nodes(s) if n.state != "removing"], groups)


def attach_interfaces(ctx: StepContext) -> None:
    """Each running node gets its interfaces now, its containers untouched (idempotent)."""
    cluster, nodes = load(ctx)
    todo = [n for n in nodes if n.state != "removing"]
    if not todo:
        return
    if not isinstance(ctx.provider, ProviderWithNetworks):
        raise PermanentError(f"the {ctx.provider.name} provider cannot attach nodes to project networks")
    provider = ctx.provider
    shapes = node_shapes(ctx, [n.id for n in todo])
    # The operation's network only: the others are there already (a node's start makes them all).
    with ctx.read() as s:
        wanted = s.scalars(select(Network.host_tag).where(Network.uuid == ctx.params.get("network"))).first()
    progress = _Progress(ctx, len(todo), "nodes attached")

    def one(node: NodeRef) -> None:
        info = provider.node_info(cluster.tag, node.name)
        if info is not None and info.running:  # one that is not gets them when it starts
            for net in shapes[node.id].networks:
                if wanted is None or net.network_tag == wanted:
                    provider.attach_node_network(cluster.tag, node.name, net)
        progress.tick()

    ctx.parallel(one, todo, limit=16)

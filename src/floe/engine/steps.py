"""The steps every cluster pipeline shares: plan, registry, network, nodes, finish, teardown.

Each step is idempotent: run again after a crash, it finishes its work or finds it done.
Slow calls (the provider, the docker SDK) run outside any database transaction.
"""

from __future__ import annotations

import ipaddress
import threading
import time

from sqlalchemy import delete, update

from floe import ipam, pki
from floe.coe.base import ClusterRef, NodeRef, load, node_info
from floe.db.models import Node
from floe.engine.context import StepContext
from floe.engine.errors import translate
from floe.errors import Conflict, PermanentError
from floe.providers.base import NodeSpec, ProviderError, RegistryInfo, TLSMaterial


def node_name(cluster_name: str, role: str, index: int) -> str:
    """The node's name, hostname and Swarm node name: a DNS label (63 chars at most) for any index."""
    suffix = f"-{'master' if role == 'manager' else 'node'}-{index}"
    base = cluster_name[: min(40, 63 - len(suffix))].rstrip("-")
    return f"{base}{suffix}"


# --- plan ------------------------------------------------------------------------------
# Node rows planned per transaction: the write lock (all of SQLite) is never held for work that
# grows with the request, and each batch is idempotent (a crash between two resumes at the next).
PLAN_BATCH = 256


def plan_nodes(ctx: StepContext, masters: int, workers: int) -> None:
    """Make sure the cluster has its networks, CA and node rows with addresses (idempotent).

    Refuses (PermanentError) before building anything when the range cannot hold the nodes.
    """
    rng = ctx.runtime.settings.network
    with ctx.session() as s:
        c = ctx.cluster(s)
        if c.subnet is None:
            ipam.ensure_infra(s, rng)
            try:
                (net,) = ipam.allocate(s, rng, ipam.cluster_net_prefix(masters + workers), "cluster-net", c.uuid)
                (pool,) = ipam.allocate(s, rng, ipam.SWARM_POOL_PREFIX, "swarm-pool", c.uuid)
            except Conflict as exc:
                raise PermanentError(exc.detail) from None
            c.subnet, c.swarm_pool = str(net), str(pool)
        if c.ca_cert_pem is None:
            # The uuid names the CA: with the cluster's name too, a CN overflows X.509's 64 characters.
            c.ca_cert_pem, c.ca_key_pem = pki.new_ca(f"floe cluster {c.uuid}", unit=c.name)
    while _plan_batch(ctx, rng, masters, workers):
        pass


def _plan_batch(ctx: StepContext, rng: ipaddress.IPv4Network, masters: int, workers: int) -> bool:
    """Add up to PLAN_BATCH missing node rows in one transaction; False when none was missing."""
    with ctx.session() as s:
        c = ctx.cluster(s)
        existing = ctx.nodes(s)
        active = [n for n in existing if n.state != "removing"]
        missing: list[tuple[str, int]] = []
        for role, count in (("manager", masters), ("worker", workers)):
            have = sum(1 for n in active if n.role == role)
            next_index = max((n.index for n in existing if n.role == role), default=-1) + 1
            missing += [(role, next_index + i) for i in range(max(count - have, 0))]
        if not missing:
            return False
        # Capacity first, for everything still missing: a cluster the range cannot hold fails
        # here with nothing built, instead of half-way through.
        subnet = ipaddress.ip_network(c.subnet)
        used = {n.address for n in existing}
        free_addresses = subnet.num_addresses - 3 - len(used)  # network, gateway, broadcast
        if free_addresses < len(missing):
            raise PermanentError(
                f"cluster network {c.subnet} has room for {max(free_addresses, 0)} more node(s), "
                f"not {len(missing)}"
            )
        free_pools = ipam.free_blocks(s, rng, ipam.NODE_POOL_PREFIX, len(missing))
        if free_pools < len(missing):
            raise PermanentError(
                f"address range {rng} has room for {free_pools} more node(s), not {len(missing)}: "
                "delete clusters or set a larger FLOE_ADDRESS_RANGE"
            )
        batch = missing[:PLAN_BATCH]
        new = [Node(cluster_id=c.id, name=node_name(c.name, role, idx), role=role, index=idx) for role, idx in batch]
        free = (str(a) for a in ipam.host_addresses(subnet) if str(a) not in used)
        pools = ipam.allocate(s, rng, ipam.NODE_POOL_PREFIX, "node-pool", c.uuid, count=len(new))
        for node, pool in zip(new, pools, strict=True):
            node.address = next(free)
            node.docker_pool = str(pool)
            s.add(node)
        return True


def plan_create(ctx: StepContext) -> None:
    with ctx.session() as s:
        c = ctx.cluster(s)
        masters, workers = c.master_count, c.node_count
    plan_nodes(ctx, masters, workers)


def plan_resize(ctx: StepContext) -> None:
    """Add node rows for a scale-up, or mark the workers a scale-down removes."""
    target = int(ctx.params["node_count"])
    with ctx.session() as s:
        c = ctx.cluster(s)
        workers = [n for n in ctx.nodes(s) if n.role == "worker"]
        keep = [n for n in workers if n.state != "removing"]
        if len(keep) > target:
            named = set(ctx.params.get("nodes_to_remove") or [])
            chosen = [n for n in keep if {n.name, n.uuid, n.swarm_node_id} & named]
            # Then the newest first, as Magnum does.
            for n in sorted(keep, key=lambda n: -n.index):
                if len(chosen) >= len(keep) - target:
                    break
                if n not in chosen:
                    chosen.append(n)
            for n in chosen[: len(keep) - target]:
                n.state = "removing"
        masters = c.master_count
    plan_nodes(ctx, masters, target)


# --- infrastructure ---------------------------------------------------------------------
def ensure_registry(ctx: StepContext) -> None:
    reg = ctx.provider.ensure_registry()  # a ProviderError is translated by the runner
    ctx.save_params(registry={"address": reg.address, "subnet": reg.subnet})


def ensure_network(ctx: StepContext) -> None:
    cluster, _ = load(ctx, ())
    ctx.provider.ensure_network(cluster.network())


def node_spec(
    ctx: StepContext, cluster: ClusterRef, node: NodeRef, cluster_size: int = 0, ca: tuple[str, str] | None = None
) -> NodeSpec:
    """What the provider needs to start `node`; its server certificate is signed by `ca` (cert, key
    PEMs: a rotation's new CA) or the cluster's."""
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
        labels={"floe.cluster": cluster.uuid, "floe.role": node.role, "floe.node": node.name},
        cluster_size=cluster_size,
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

    def one(node: NodeRef) -> str:
        ctx.provider.start_node(node_spec(ctx, cluster, node, len(todo)))  # errors: translated by the runner
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
        c.health_status = "HEALTHY"
        c.health_status_reason = {"api": "ok", **{f"{n.name}.Ready": "True" for n in managers + workers}}
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

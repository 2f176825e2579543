"""Planning a cluster's nodes: per nodegroup, each node with its addresses, its GPUs and its
interfaces on the cluster's project networks, all recorded before anything is built.

Each batch is one transaction and idempotent: a crash between two batches resumes at the next.
The unique constraints (an address per network, a GPU per node) make concurrent plans safe.
"""

from __future__ import annotations

import ipaddress
import re

from sqlalchemy import select, update

from floe import ipam, pki
from floe.db.flavors import node_flavor
from floe.db.models import ClusterNetwork, Flavor, GPUAllocation, Network, Node, NodeGroup, NodeInterface
from floe.db.nodegroups import WORKER_NODEGROUP, default_nodegroups, flavor_ref
from floe.engine.context import StepContext
from floe.errors import Conflict, PermanentError
from floe.providers.base import ProviderWithGPUs

# Node rows planned per transaction: the write lock (all of SQLite) is never held for work that
# grows with the request, and each batch is idempotent (a crash between two resumes at the next).
PLAN_BATCH = 256


def node_name(cluster_name: str, role: str, index: int) -> str:
    """A default-group node's name, hostname and Swarm node name: a DNS label (63 chars at most)."""
    suffix = f"-{'master' if role == 'manager' else 'node'}-{index}"
    base = cluster_name[: min(40, 63 - len(suffix))].rstrip("-")
    return f"{base}{suffix}"


def group_slug(name: str) -> str:
    """A nodegroup's name as a DNS-label fragment ("GPU nodes" → "gpu-nodes"), at most 16 chars."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:16].strip("-")
    return slug or "group"


def group_node_name(cluster_name: str, slug: str, index: int) -> str:
    """A node of a nodegroup the user added: <cluster>-<group>-<index>, a DNS label for any index."""
    suffix = f"-{slug}-{index}"
    base = cluster_name[: min(40, 63 - len(suffix))].rstrip("-")
    return f"{base}{suffix}"


def node_role(group: NodeGroup) -> str:
    return "manager" if group.role == "master" else "worker"


def ensure_nodegroups(ctx: StepContext, s) -> list[NodeGroup]:
    """The cluster's nodegroups, its two defaults made if missing; nodes without a group join
    their role's default (rows from before nodegroups)."""
    c = ctx.cluster(s)
    groups = list(s.scalars(select(NodeGroup).where(NodeGroup.cluster_id == c.id).order_by(NodeGroup.id)))
    names = {g.name for g in groups}
    for g in default_nodegroups(c):
        if g.name not in names:
            s.add(g)
            s.flush()
            groups.append(g)
    defaults = {node_role(g): g.id for g in groups if g.is_default}
    for role, gid in defaults.items():
        s.execute(
            update(Node).where(Node.cluster_id == c.id, Node.role == role, Node.nodegroup_id.is_(None))
            .values(nodegroup_id=gid).execution_options(synchronize_session=False)
        )
    return groups


def _slugs(groups: list[NodeGroup]) -> dict[int, str]:
    """Each nodegroup's slug, unique in the cluster (a clash takes the group's id)."""
    out: dict[int, str] = {}
    seen: set[str] = set()
    for g in sorted(groups, key=lambda g: g.id):
        slug = group_slug(g.name)
        if slug in seen or slug in ("master", "node"):
            slug = f"{slug[:10]}-{g.id}"
        seen.add(slug)
        out[g.id] = slug
    return out


def plan_nodes(ctx: StepContext) -> None:
    """Make sure the cluster has its networks, CA and every nodegroup's node rows (idempotent).

    Refuses (PermanentError) before building anything when the range cannot hold the nodes or
    the host has too few free GPUs.
    """
    rng = ctx.runtime.settings.network
    with ctx.session() as s:
        c = ctx.cluster(s)
        groups = ensure_nodegroups(ctx, s)
        total = sum(g.node_count for g in groups if not g.status.startswith("DELETE"))
        if c.subnet is None:
            ipam.ensure_infra(s, rng)
            try:
                (net,) = ipam.allocate(s, rng, ipam.cluster_net_prefix(total), "cluster-net", c.uuid)
                (pool,) = ipam.allocate(s, rng, ipam.SWARM_POOL_PREFIX, "swarm-pool", c.uuid)
            except Conflict as exc:
                raise PermanentError(exc.detail) from None
            c.subnet, c.swarm_pool = str(net), str(pool)
        if c.ca_cert_pem is None:
            # The uuid names the CA: with the cluster's name too, a CN overflows X.509's 64 characters.
            c.ca_cert_pem, c.ca_key_pem = pki.new_ca(f"floe cluster {c.uuid}", unit=c.name)
    while _plan_batch(ctx, rng):
        pass


def _plan_batch(ctx: StepContext, rng: ipaddress.IPv4Network) -> bool:
    """Add up to PLAN_BATCH missing node rows in one transaction; False when none was missing."""
    with ctx.session() as s:
        c = ctx.cluster(s)
        groups = ensure_nodegroups(ctx, s)
        existing = ctx.nodes(s)
        active = [n for n in existing if n.state != "removing"]
        slugs = _slugs(groups)
        missing: list[tuple[NodeGroup, int]] = []
        for g in groups:
            want = 0 if g.status.startswith("DELETE") else g.node_count
            have = sum(1 for n in active if n.nodegroup_id == g.id)
            # Removed nodes' indices too: a name is never reused while its node may still be going.
            same = [n for n in existing if n.nodegroup_id == g.id]
            next_index = max((n.index for n in same), default=-1) + 1
            missing += [(g, next_index + i) for i in range(max(want - have, 0))]
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
        new: list[Node] = []
        for g, idx in batch:
            role = node_role(g)
            name = node_name(c.name, role, idx) if g.is_default else group_node_name(c.name, slugs[g.id], idx)
            new.append(Node(cluster_id=c.id, nodegroup_id=g.id, name=name, role=role, index=idx))
        free = (str(a) for a in ipam.host_addresses(subnet) if str(a) not in used)
        pools = ipam.allocate(s, rng, ipam.NODE_POOL_PREFIX, "node-pool", c.uuid, count=len(new))
        for node, pool in zip(new, pools, strict=True):
            node.address = next(free)
            node.docker_pool = str(pool)
            s.add(node)
        s.flush()
        _plan_gpus(ctx, s, new, {g.id: g for g in groups})
        plan_interfaces(s, c.id, new, groups)
        return True


def group_flavor(s, cluster, group: NodeGroup) -> Flavor | None:
    """The flavor a nodegroup's nodes run with (its own, else the cluster's for its role, else the default)."""
    return node_flavor(s, flavor_ref(cluster, group))


def _plan_gpus(ctx: StepContext, s, nodes: list[Node], groups: dict[int, NodeGroup]) -> None:
    """Give each new node of a GPU flavor its GPUs, exclusively (a unique row per GPU)."""
    c = ctx.cluster(s)
    wants = {}
    for n in nodes:
        flavor = group_flavor(s, c, groups[n.nodegroup_id])
        if flavor is not None and flavor.gpus > 0:
            wants[n.id] = (flavor.gpus, flavor.name)
    if not wants:
        return
    host = ctx.provider.host_gpus() if isinstance(ctx.provider, ProviderWithGPUs) else []
    taken = set(s.scalars(select(GPUAllocation.gpu_uuid)))
    free = [g.uuid for g in host if g.uuid not in taken]
    need = sum(count for count, _ in wants.values())
    if need > len(free):
        count, flavor = next(iter(wants.values()))
        raise PermanentError(
            f"flavor {flavor} asks for {count} GPU(s) per node, {need} for the new nodes, but this host has "
            f"{len(host)} GPU(s) and {len(free)} free: ask for fewer nodes or free GPUs by deleting GPU nodes"
        )
    for node_id, (count, _) in wants.items():
        for _ in range(count):
            s.add(GPUAllocation(gpu_uuid=free.pop(0), node_id=node_id))
    s.flush()


def plan_interfaces(s, cluster_id: int, nodes: list[Node], groups: list[NodeGroup] | None = None) -> None:
    """Give `nodes` an address on each project network of the cluster that applies to them (idempotent)."""
    links = list(s.execute(
        select(ClusterNetwork, Network).join(Network, Network.id == ClusterNetwork.network_id)
        .where(ClusterNetwork.cluster_id == cluster_id).order_by(ClusterNetwork.position)
    ))
    if not links or not nodes:
        return
    node_ids = [n.id for n in nodes]
    rows = s.scalars(select(NodeInterface).where(NodeInterface.node_id.in_(node_ids)))
    have = {(i.node_id, i.network_id) for i in rows}
    for link, net in links:
        todo = [n for n in nodes if (n.id, net.id) not in have
                and (link.nodegroup_id is None or link.nodegroup_id == n.nodegroup_id)]
        if not todo:
            continue
        used = set(s.scalars(select(NodeInterface.address).where(NodeInterface.network_id == net.id)))
        cidr = ipaddress.ip_network(net.cidr)
        free = (str(a) for a in ipam.host_addresses(cidr) if str(a) not in used)
        for n in todo:
            address = next(free, None)
            if address is None:
                raise PermanentError(f"network {net.name} ({net.cidr}) has no free address left for node {n.name}")
            s.add(NodeInterface(node_id=n.id, network_id=net.id, address=address, ifname=f"eth{link.position}"))
    s.flush()


def plan_create(ctx: StepContext) -> None:
    plan_nodes(ctx)


def plan_resize(ctx: StepContext) -> None:
    """Set the target nodegroup's count; add its nodes for a scale-up, or mark those a scale-down removes.

    Without a `nodegroup` parameter the default worker group is resized (Magnum's cluster resize).
    """
    target = int(ctx.params["node_count"])
    with ctx.session() as s:
        c = ctx.cluster(s)
        groups = ensure_nodegroups(ctx, s)
        ref = ctx.params.get("nodegroup")
        group = next((g for g in groups if g.uuid == ref or (ref is None and g.name == WORKER_NODEGROUP)), None)
        if group is None:
            raise PermanentError(f"nodegroup {ref or WORKER_NODEGROUP} of cluster {c.name} no longer exists")
        if ctx.params.get("delete_nodegroup"):
            target = 0
            group.status = "DELETE_IN_PROGRESS"
        elif not group.status.endswith("IN_PROGRESS"):
            group.status = "UPDATE_IN_PROGRESS"
        group.node_count = target
        keep = [n for n in ctx.nodes(s) if n.nodegroup_id == group.id and n.state != "removing"]
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
    plan_nodes(ctx)


def settle_nodegroups(ctx: StepContext, s) -> None:
    """At an operation's end: groups in progress complete, deleted groups go, counts match the nodes."""
    c = ctx.cluster(s)
    groups = list(s.scalars(select(NodeGroup).where(NodeGroup.cluster_id == c.id)))
    nodes = [n for n in ctx.nodes(s) if n.state != "removing"]
    for g in groups:
        count = sum(1 for n in nodes if n.nodegroup_id == g.id)
        if g.status.startswith("DELETE"):
            if count == 0:
                s.delete(g)
            continue
        g.node_count = count
        if g.status.endswith("IN_PROGRESS") or g.status.endswith("FAILED"):
            g.status = g.status.split("_")[0] + "_COMPLETE"
            g.status_reason = f"{count} node(s) ready"
    s.flush()

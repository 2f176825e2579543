"""What each node of a cluster uses now (CPU, memory, disk, network), for live charts (no HTTP here).

The numbers come from the infra provider (`ProviderWithNodeStats`): the local provider reads
each node's cgroups and network namespace, the simulated one makes them up (and says so).
A node that does not run has `None` for every number.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from floe.db.models import Node, NodeGroup
from floe.errors import Conflict
from floe.host.errors import HostError
from floe.providers.base import NodeStats, ProviderWithNodeStats
from floe.runtime import Runtime
from floe.services.clusters import find_cluster
from floe.services.identity import Caller

# Nodes read at once: a reading is a few file reads, but a node's dockerd may be slow to list containers.
READ_WORKERS = 8
STAT_FIELDS = (
    "cpu_seconds", "cpu_limit_cores", "memory_bytes", "memory_limit_bytes", "disk_used_bytes", "disk_size_bytes",
    "rx_bytes", "tx_bytes",
)


@dataclass(frozen=True)
class NodeRow:
    """A node as the stats and the monitoring targets name it."""

    uuid: str
    name: str
    role: str  # manager | worker
    nodegroup: str
    health: str
    state: str


def nodes_of(session: Any, cluster_id: int | None = None) -> dict[int, list[NodeRow]]:
    """Nodes by cluster id (one cluster's, or every cluster's in one query), managers first, each role by index."""
    q = (
        select(Node.cluster_id, Node.uuid, Node.name, Node.role, NodeGroup.name, Node.health_status, Node.state)
        .outerjoin(NodeGroup, NodeGroup.id == Node.nodegroup_id)
        .order_by(Node.cluster_id, Node.role, Node.nodegroup_id, Node.index)
    )
    if cluster_id is not None:
        q = q.where(Node.cluster_id == cluster_id)
    found: dict[int, list[NodeRow]] = {}
    for cid, u, n, r, g, h, s in session.execute(q):
        found.setdefault(cid, []).append(NodeRow(u, n, r, g or "", h, s))
    return found


def read_stats(provider: ProviderWithNodeStats, tag: str, names: list[str]) -> dict[str, NodeStats | None]:
    """A reading of each named node (None where it does not run or cannot be read)."""

    def one(name: str) -> NodeStats | None:
        try:
            return provider.node_stats(tag, name)
        except HostError:
            return None

    if len(names) <= 1:
        return {n: one(n) for n in names}
    with ThreadPoolExecutor(max_workers=min(READ_WORKERS, len(names))) as pool:
        return dict(zip(names, pool.map(one, names), strict=True))


def stats_dict(stats: NodeStats | None) -> dict[str, Any]:
    """The numbers of one reading, interfaces summed (None for each when there is no reading)."""
    if stats is None:
        return {f: None for f in STAT_FIELDS} | {"time": time.time(), "simulated": False}
    return {
        "cpu_seconds": stats.cpu_seconds, "cpu_limit_cores": stats.cpu_limit_cores,
        "memory_bytes": stats.memory_bytes, "memory_limit_bytes": stats.memory_limit_bytes,
        "disk_used_bytes": stats.disk_used_bytes, "disk_size_bytes": stats.disk_size_bytes,
        "rx_bytes": sum(i.rx_bytes for i in stats.interfaces),
        "tx_bytes": sum(i.tx_bytes for i in stats.interfaces),
        "time": stats.time, "simulated": stats.simulated,
    }


def cluster_node_stats(runtime: Runtime, caller: Caller, ident: str) -> list[dict[str, Any]]:
    """Per node of the caller's cluster `ident`: name, role, nodegroup, health and what it uses now.

    Keys: name, role, nodegroup, health, cpu_seconds, cpu_limit_cores (0 = unlimited),
    memory_bytes, memory_limit_bytes (0 = unlimited), disk_used_bytes, disk_size_bytes,
    rx_bytes, tx_bytes (every interface), time (epoch seconds of the reading), simulated.
    Counters (cpu_seconds, rx/tx) only grow: a chart shows their rate between two readings.
    NotFound for a cluster of another project; Conflict when the provider measures nothing.
    """
    with runtime.db.session() as s:
        cluster = find_cluster(s, caller, ident)  # first: another project's cluster is a 404 whatever the provider
        tag = cluster.host_tag
        nodes = nodes_of(s, cluster.id).get(cluster.id, [])
    provider = runtime.provider
    if not isinstance(provider, ProviderWithNodeStats):
        raise Conflict("this floe server's infra provider does not measure its nodes")
    readings = read_stats(provider, tag, [n.name for n in nodes])
    return [
        {"name": n.name, "role": n.role, "nodegroup": n.nodegroup, "health": n.health,
         **stats_dict(readings.get(n.name))}
        for n in nodes
    ]

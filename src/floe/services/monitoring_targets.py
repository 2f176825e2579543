"""The node targets floe's monitoring scrapes, and Prometheus's HTTP service discovery of them (no HTTP here).

Every cluster of every project has, per node, a `node` target (what the node uses: its cgroups
and network namespace, providers/base.py `ProviderWithNodeStats`) and a `dockerd` target (the
node's dockerd's own metrics, `ProviderWithDaemonMetrics`), and a Slurm cluster one `slurm`
target (its controller's view: nodes, jobs, CPUs). floe serves them all itself, behind the scrape
token, at the paths `discovery` lists: nodes never expose anything to the network.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from floe.db.models import Cluster, Node, Project
from floe.errors import NotFound, ServiceError
from floe.providers.base import ProviderWithDaemonMetrics, ProviderWithNodeProcesses, ProviderWithNodeStats
from floe.runtime import Runtime
from floe.services.node_stats import NodeRow, nodes_of

SD_PATH = "/monitoring/sd"
# Node states with nothing on the host yet: no target until the node is started.
NOT_STARTED = ("planned",)


class Unavailable(ServiceError):
    """The target exists but cannot be read now (its node does not run, its daemon does not answer)."""

    status = 503


def node_path(node_uuid: str, source: str) -> str:
    return f"/monitoring/nodes/{node_uuid}/{source}"


def cluster_path(cluster_uuid: str, source: str) -> str:
    return f"/monitoring/clusters/{cluster_uuid}/{source}"


@dataclass(frozen=True)
class ClusterRow:
    id: int
    uuid: str
    name: str
    coe: str
    host_tag: str
    project_id: str
    project: str


def _clusters(session) -> list[ClusterRow]:
    rows = session.execute(
        select(Cluster.id, Cluster.uuid, Cluster.name, Cluster.coe, Cluster.host_tag, Cluster.project_id, Project.name)
        .join(Project, Project.id == Cluster.project_id).order_by(Cluster.id)
    )
    return [ClusterRow(*r) for r in rows]


def _controller(nodes: list[NodeRow]) -> NodeRow | None:
    """The Slurm cluster's primary controller: its first manager still in service."""
    managers = [n for n in nodes if n.role == "manager" and n.state != "removing"]
    return managers[0] if managers else None


def discovery(runtime: Runtime, address: str) -> list[dict]:
    """Prometheus HTTP SD: one target group per node and source (and per Slurm cluster), each
    scraped at floe's `address` ("host:port") on the path in `__metrics_path__`."""
    provider = runtime.provider
    sources = [s for s, cap in (("node", ProviderWithNodeStats), ("dockerd", ProviderWithDaemonMetrics))
               if isinstance(provider, cap)]
    groups: list[dict] = []
    with runtime.db.session() as s:
        by_cluster = nodes_of(s)
        clusters = [(c, by_cluster.get(c.id, [])) for c in _clusters(s)]
    for c, nodes in clusters:
        base = {"project": c.project, "project_id": c.project_id, "cluster": c.name, "cluster_id": c.uuid}
        for n in nodes:
            if n.state in NOT_STARTED:
                continue
            for source in sources:
                groups.append({"targets": [address], "labels": {
                    "__metrics_path__": node_path(n.uuid, source), **base,
                    "nodegroup": n.nodegroup, "role": n.role, "node": n.name, "source": source,
                }})
        ctl = _controller(nodes)
        if c.coe == "slurm" and isinstance(provider, ProviderWithNodeProcesses) and ctl is not None:
            groups.append({"targets": [address], "labels": {
                "__metrics_path__": cluster_path(c.uuid, "slurm"), **base,
                "nodegroup": ctl.nodegroup, "role": "controller", "node": ctl.name, "source": "slurm",
            }})
    return groups


def find_node(runtime: Runtime, node_uuid: str) -> tuple[str, str]:
    """(cluster host tag, node name) of a node of any project; NotFound otherwise."""
    with runtime.db.session() as s:
        row = s.execute(
            select(Cluster.host_tag, Node.name).join(Cluster, Cluster.id == Node.cluster_id)
            .where(Node.uuid == node_uuid.lower())
        ).first()
    if row is None:
        raise NotFound(f"Node {node_uuid} could not be found.")
    return row[0], row[1]


def find_slurm_cluster(runtime: Runtime, cluster_uuid: str) -> tuple[str, str]:
    """(host tag, name) of a Slurm cluster of any project; NotFound otherwise."""
    with runtime.db.session() as s:
        row = s.execute(
            select(Cluster.host_tag, Cluster.name).where(Cluster.uuid == cluster_uuid.lower(), Cluster.coe == "slurm")
        ).first()
    if row is None:
        raise NotFound(f"Slurm cluster {cluster_uuid} could not be found.")
    return row[0], row[1]

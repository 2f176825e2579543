"""The COE-driver interface: what runs on the nodes (Docker Swarm first, Slurm later).

A driver contributes named, idempotent steps to the engine's pipelines and can judge
the health of a running cluster. It never touches HTTP and knows nothing of where
nodes come from: it gets docker SDK clients from the step context.
"""

from __future__ import annotations

import abc
import ipaddress
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from floe.db.models import Cluster, Node
from floe.errors import PermanentError, TemporaryError
from floe.providers.base import InfraProvider, NetworkSpec, NodeInfo
from floe.steps import Step

if TYPE_CHECKING:
    import docker
    from sqlalchemy.orm import Session

T = TypeVar("T")
R = TypeVar("R")

#: Values a template's `coe` field accepts.
SUPPORTED_COES = ("swarm", "swarm-mode", "slurm")


#: The reason a driver gives for a node whose machine (process) is gone; auto-healing acts on it.
NOT_RUNNING = "node process is not running"


@dataclass(frozen=True)
class NodeHealth:
    name: str
    healthy: bool
    reason: str = ""
    heal: bool = False  # auto-healing may fix it (a daemon of the node died), as for NOT_RUNNING


@dataclass(frozen=True)
class ClusterHealth:
    healthy: bool
    nodes: list[NodeHealth]
    reason: str = ""


class DriverContext(Protocol):
    """What a driver's steps may use of the operation they run in (the engine's StepContext).

    `session()` is a short transaction that commits only while the operation's lease holds;
    `read()` reads without the write lock; `check()` raises if the lease was lost or the
    deadline passed; `parallel` runs a function over items in threads, at most `limit` at once.
    """

    step: str
    provider: InfraProvider
    params: dict  # the operation's parameters (e.g. a resize's)

    def session(self) -> AbstractContextManager[Session]: ...
    def read(self) -> AbstractContextManager[Session]: ...
    def check(self) -> None: ...
    def remaining(self, default: float = 3600.0) -> float: ...
    def progress(self, text: str) -> None: ...
    def cluster(self, s: Session) -> Cluster: ...
    def nodes(self, s: Session, states: Iterable[str] | None = None) -> list[Node]: ...
    def docker(self, info: NodeInfo) -> docker.DockerClient: ...
    def parallel(self, fn: Callable[[T], R], items: list[T], limit: int = 16) -> list[R]: ...


@dataclass(frozen=True)
class NodeRef:
    """A plain snapshot of a node row, safe to hand to threads."""

    id: int
    name: str
    role: str
    index: int
    address: str
    docker_pool: str
    state: str
    swarm_node_id: str | None

    @classmethod
    def of(cls, n: Node) -> NodeRef:
        return cls(n.id, n.name, n.role, n.index, n.address or "", n.docker_pool or "", n.state, n.swarm_node_id)


@dataclass(frozen=True)
class ClusterRef:
    id: int
    uuid: str
    name: str
    tag: str
    subnet: str
    swarm_pool: str
    ca_cert_pem: str
    ca_key_pem: str
    labels: dict

    @classmethod
    def of(cls, c: Cluster) -> ClusterRef:
        return cls(
            c.id, c.uuid, c.name, c.host_tag, c.subnet or "", c.swarm_pool or "",
            c.ca_cert_pem or "", c.ca_key_pem or "", dict(c.labels or {}),
        )

    def network(self) -> NetworkSpec:
        net = ipaddress.ip_network(self.subnet)
        return NetworkSpec(self.tag, "mgmt", self.subnet, str(next(net.hosts())))


def load(ctx: DriverContext, states: tuple[str, ...] | None = None) -> tuple[ClusterRef, list[NodeRef]]:
    """The cluster and its nodes (in `states`), read without taking the write lock."""
    with ctx.read() as s:
        c = ctx.cluster(s)
        return ClusterRef.of(c), [NodeRef.of(n) for n in ctx.nodes(s, states)]


#: Cluster label naming the project network (one of the cluster's) that carries the data path.
DATA_PATH_LABEL = "data_path_network"


def data_path_addresses(ctx: DriverContext, cluster: ClusterRef) -> dict[str, str]:
    """Node name → its address on the cluster's data-path network ({} when the label is unset)."""
    wanted = str(cluster.labels.get(DATA_PATH_LABEL) or "")
    if not wanted:
        return {}
    from sqlalchemy import select  # the drivers' module graph stays small without it

    from floe.db.models import ClusterNetwork, Network, NodeInterface

    with ctx.read() as s:
        rows = s.execute(
            select(Node.name, NodeInterface.address)
            .join(NodeInterface, NodeInterface.node_id == Node.id)
            .join(Network, Network.id == NodeInterface.network_id)
            .join(ClusterNetwork, (ClusterNetwork.network_id == Network.id) & (ClusterNetwork.cluster_id == cluster.id))
            .where(Node.cluster_id == cluster.id, (Network.name == wanted) | (Network.uuid == wanted))
        )
        found = {name: address for name, address in rows}
    if not found:
        raise PermanentError(f"label {DATA_PATH_LABEL}={wanted} names no network of cluster {cluster.name}")
    return found


#: Swarm node label listing the keys floe set from the nodegroup's node_labels.
NODE_LABEL_KEYS = "floe.node-labels"


def node_swarm_labels(ctx: DriverContext, cluster: ClusterRef) -> dict[str, dict[str, str]]:
    """Node name → the Swarm node labels floe gives it: its nodegroup, flavor, the group's
    node_labels and its taints as `floe.taint.<key>` (Swarm has no taints of its own)."""
    from sqlalchemy import select

    from floe.db.flavors import node_flavor
    from floe.db.models import NodeGroup
    from floe.db.nodegroups import flavor_ref

    with ctx.read() as s:
        c = ctx.cluster(s)
        groups = {g.id: g for g in s.scalars(select(NodeGroup).where(NodeGroup.cluster_id == cluster.id))}
        flavors = {}
        for gid, g in groups.items():
            f = node_flavor(s, flavor_ref(c, g))
            flavors[gid] = f.name if f else ""
        out: dict[str, dict[str, str]] = {}
        for n in ctx.nodes(s):
            g = groups.get(n.nodegroup_id)
            if g is None:
                continue
            labels = {str(k): str(v) for k, v in (g.node_labels or {}).items()}
            for taint in g.node_taints or []:
                key, _, rest = str(taint).partition("=")
                if ":" not in rest and ":" in key:  # "key:Effect" without a value
                    key, _, effect = key.partition(":")
                    rest = f":{effect}"
                labels[f"floe.taint.{key}"] = rest
            labels.update({"floe.nodegroup": g.name, "floe.flavor": flavors[g.id], "floe.role": n.role})
            # Which of the node's other labels are the group's, so that one the group drops goes too.
            labels[NODE_LABEL_KEYS] = ",".join(sorted(k for k in labels if not k.startswith("floe.")))
            out[n.name] = labels
        return out


def node_info(ctx: DriverContext, cluster: ClusterRef, node: NodeRef) -> NodeInfo:
    info = ctx.provider.node_info(cluster.tag, node.name)
    if info is None or not info.running:
        raise TemporaryError(f"node {node.name} is not running", delay=0.5)
    return info


class COEDriver(abc.ABC):
    name: str = "abstract"
    #: Values accepted in a template's `coe` field.
    coe_names: tuple[str, ...] = ()

    @abc.abstractmethod
    def create_steps(self) -> list[Step]:
        """Steps that turn started nodes into a working cluster (init, joins, wait-for-ready)."""

    @abc.abstractmethod
    def grow_steps(self) -> list[Step]:
        """Steps that bring newly started nodes into an existing cluster."""

    @abc.abstractmethod
    def remove_nodes(self, ctx: DriverContext, nodes: list[NodeRef]) -> None:
        """Take nodes out of the cluster gracefully (drain, leave, forget) before they stop."""

    @abc.abstractmethod
    def health(self, provider: InfraProvider, cluster_tag: str, nodes: list[NodeRef]) -> ClusterHealth:
        """Ask the running cluster how every node is."""

"""Project networks: record, list, delete, attach to clusters; and the nodes' addresses on them.

A network is a row and an address block of floe's range (reserved in the address table, so
nothing else ever overlaps it). Its host objects (a bridge on the local provider) are made
lazily by the engine when a cluster's nodes first attach, and removed here, inline, when the
network is deleted (refused while a cluster uses it). Attaching a network to a running
cluster records the attachment and queues the engine's `attach_network` operation.

`allocate_interface` and `release_interfaces` are the engine's pure-database helpers for the
nodes' addresses: the next free host address of the network's block, unique per network.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from floe import ipam
from floe.db.base import new_uuid
from floe.db.models import Cluster, ClusterNetwork, Network, Node, NodeInterface
from floe.db.session import Database
from floe.errors import Conflict, InvalidInput, NotFound, QuotaExceeded, ServiceError
from floe.providers.base import ProviderError, ProviderWithNetworks
from floe.runtime import Runtime
from floe.services import quotas
from floe.services.clusters import find_cluster
from floe.services.identity import Caller
from floe.services.templates import is_uuid_like

log = logging.getLogger("floe.networks")

PURPOSE = "project-net"
DEFAULT_PREFIX = 24
MIN_PREFIX, MAX_PREFIX = 16, 29  # a /16 at most; a /29 still holds 5 nodes (.1 is reserved)
MAX_NAME = 255
# Names travel in labels (extra_network_names="a,b") and URL paths: no ',' or '/'.
FORBIDDEN_NAME_CHARS = ",/"
# Bounds on what one project or cluster can take: each network is a /24 of floe's range by
# default, each attachment an interface in every node.
MAX_PROJECT_NETWORKS = 100
MAX_CLUSTER_NETWORKS = 16


@dataclass(frozen=True)
class NetworkView:
    """A network with the names of the clusters that use it."""

    network: Network
    clusters: list[str]


@dataclass(frozen=True)
class AttachmentView:
    """A network attached to a cluster: interface eth<position> in its nodes."""

    cluster: Cluster
    network: Network
    position: int

    @property
    def ifname(self) -> str:
        return f"eth{self.position}"


# ---------------------------------------------------------------------------
# Validation


def check_name(name: Any) -> str:
    """A network name: 1 to 255 characters, no control characters, no ',' or '/', not padded."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        raise InvalidInput(f"Network name must be a string of 1 to {MAX_NAME} characters.")
    if name != name.strip():
        raise InvalidInput("Network name must not begin or end with white space.")
    if name in (".", ".."):  # a URL path would resolve them away
        raise InvalidInput(f"Network name cannot be {name!r}.")
    bad = [c for c in name if c in FORBIDDEN_NAME_CHARS or unicodedata.category(c) in ("Cc", "Cs")]
    if bad:
        raise InvalidInput(
            f"Network name must not contain control characters, ',' or '/' (found {bad[0]!r})."
        )
    return name


def check_cidr(cidr: Any, address_range: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    """An IPv4 network /16../29 wholly inside floe's range (free or not: reserve() says)."""
    shown = f"{cidr[:64]!r}" if isinstance(cidr, str) else repr(cidr)[:64]
    if not isinstance(cidr, str) or "/" not in cidr:
        raise InvalidInput(f"Invalid cidr {shown}: expected an IPv4 network such as 10.161.4.0/24.")
    try:
        net = ipaddress.IPv4Network(cidr.strip())
    except ValueError as exc:
        try:
            loose = ipaddress.IPv4Network(cidr.strip(), strict=False)
        except ValueError:
            raise InvalidInput(f"Invalid cidr {shown}: {exc}.") from None
        raise InvalidInput(f"Invalid cidr {shown}: it has host bits set (did you mean {loose}?).") from None
    if not MIN_PREFIX <= net.prefixlen <= MAX_PREFIX:
        raise InvalidInput(f"Invalid cidr {net}: a network's prefix must be /{MIN_PREFIX} to /{MAX_PREFIX}.")
    if not net.subnet_of(address_range):
        raise InvalidInput(f"Invalid cidr {net}: it must lie inside floe's address range {address_range}.")
    return net


# ---------------------------------------------------------------------------
# Queries


def find_network(session: Session, caller: Caller, ident: str) -> Network:
    """A network of the caller's project by uuid or name; NotFound otherwise (other projects' too)."""
    base = select(Network).where(Network.project_id == caller.project_id)
    if isinstance(ident, str) and is_uuid_like(ident):
        found = session.scalars(base.where(Network.uuid == ident.lower())).first()
        if found is not None:
            return found
    found = session.scalars(base.where(Network.name == ident)).first()
    if found is None:
        raise NotFound(f"Network {ident} could not be found.")
    return found


def _users(session: Session, network_ids: list[int]) -> dict[int, list[str]]:
    """Names of the clusters using each network, sorted."""
    out: dict[int, list[str]] = {i: [] for i in network_ids}
    if network_ids:
        rows = session.execute(
            select(ClusterNetwork.network_id, Cluster.name).join(Cluster, Cluster.id == ClusterNetwork.cluster_id)
            .where(ClusterNetwork.network_id.in_(network_ids)).order_by(Cluster.name)
        )
        for network_id, name in rows:
            out[network_id].append(name)
    return out


def get_network(db: Database, caller: Caller, ident: str) -> NetworkView:
    with db.session() as session:
        net = find_network(session, caller, ident)
        return NetworkView(net, _users(session, [net.id])[net.id])


def list_networks(db: Database, caller: Caller) -> list[NetworkView]:
    """The caller's project's networks, oldest first."""
    with db.session() as session:
        nets = list(session.scalars(
            select(Network).where(Network.project_id == caller.project_id).order_by(Network.id)
        ))
        users = _users(session, [n.id for n in nets])
        return [NetworkView(n, users[n.id]) for n in nets]


def cluster_networks(session: Session, cluster_id: int) -> list[tuple[ClusterNetwork, Network]]:
    """A cluster's networks in interface order (eth1 first)."""
    rows = session.execute(
        select(ClusterNetwork, Network).join(Network, Network.id == ClusterNetwork.network_id)
        .where(ClusterNetwork.cluster_id == cluster_id).order_by(ClusterNetwork.position)
    )
    return [(cn, n) for cn, n in rows]


def list_cluster_networks(db: Database, caller: Caller, cluster_ident: str) -> list[AttachmentView]:
    with db.session() as session:
        cluster = find_cluster(session, caller, cluster_ident)
        return [AttachmentView(cluster, n, cn.position) for cn, n in cluster_networks(session, cluster.id)]


# ---------------------------------------------------------------------------
# Changes


def _new_host_tag(session: Session) -> str:
    while True:
        tag = secrets.token_hex(4)
        if session.scalars(select(Network.id).where(Network.host_tag == tag)).first() is None:
            return tag


def create_network(runtime: Runtime, caller: Caller, name: Any, cidr: Any = None) -> NetworkView:
    """Record a network with a /24 of floe's range, or the free `cidr` asked for (host objects come later)."""
    name = check_name(name)
    address_range = runtime.settings.network
    wanted = check_cidr(cidr, address_range) if cidr is not None else None
    with runtime.db.session() as session:
        quotas.lock(session, caller.project_id)  # one create per project at a time: the count holds
        count = session.scalar(select(func.count()).select_from(Network).where(Network.project_id == caller.project_id))
        if count >= MAX_PROJECT_NETWORKS:
            raise QuotaExceeded("networks", MAX_PROJECT_NETWORKS, count, 1)
        if session.scalars(
            select(Network.id).where(Network.project_id == caller.project_id, Network.name == name)
        ).first() is not None:
            raise Conflict(f"A network named {name} already exists in this project.")
        # The uuid now: the address block is allocated to it before the row is inserted.
        net = Network(uuid=new_uuid(), project_id=caller.project_id, name=name, cidr="",
                      host_tag=_new_host_tag(session))
        if wanted is None:
            (block,) = ipam.allocate(session, address_range, DEFAULT_PREFIX, PURPOSE, owner=net.uuid)
        else:
            block = ipam.reserve(session, wanted, PURPOSE, owner=net.uuid, address_range=address_range)
        net.cidr = str(block)
        session.add(net)
        try:
            session.flush()
        except IntegrityError:
            raise Conflict(f"A network named {name} already exists in this project.") from None
        return NetworkView(net, [])


def delete_network(runtime: Runtime, caller: Caller, ident: str) -> None:
    """Delete a network no cluster uses: its row, its address block and its host objects (inline)."""
    with runtime.db.session() as session:
        net = find_network(session, caller, ident)
        # Locked until commit: an attach racing this delete waits, then finds it gone.
        session.execute(select(Network.id).where(Network.id == net.id).with_for_update()).first()
        users = _users(session, [net.id])[net.id]
        if users:
            raise Conflict(
                f"Network {net.name} is attached to cluster(s) {', '.join(users[:5])}"
                f"{' and more' if len(users) > 5 else ''}: delete those clusters first."
            )
        if session.scalars(select(NodeInterface.id).where(NodeInterface.network_id == net.id)).first():
            raise Conflict(f"Network {net.name} still has node interfaces being removed: try again shortly.")
        tag = net.host_tag
        ipam.release_owner(session, net.uuid)
        session.delete(net)
        try:
            session.flush()
        except IntegrityError:
            raise Conflict(f"Network {net.name} was attached meanwhile: detach it first.") from None
        # Inline (it is quick), before the commit: if the host refuses, the network stays as it was.
        provider = runtime.provider
        if isinstance(provider, ProviderWithNetworks):
            try:
                provider.delete_project_network(tag)
            except ProviderError as exc:
                raise ServiceError(f"Network {net.name} could not be removed from the host: {exc}") from None


def attach_network(runtime: Runtime, caller: Caller, cluster_ident: str, network_ident: str) -> AttachmentView:
    """Attach a project network to a cluster (every node gets eth<position>) and queue the work."""
    from floe.engine.operations import cluster_deleting, start_operation

    with runtime.db.session() as session:
        cluster = find_cluster(session, caller, cluster_ident)
        try:
            net = find_network(session, caller, network_ident)
        except NotFound as exc:
            raise InvalidInput(exc.detail) from None
        if cluster_deleting(cluster.status):
            raise Conflict(f"Cluster {cluster.name} is being deleted.")
        attached = cluster_networks(session, cluster.id)
        if any(n.id == net.id for _, n in attached):
            raise Conflict(f"Network {net.name} is already attached to cluster {cluster.name}.")
        if len(attached) >= MAX_CLUSTER_NETWORKS:
            raise Conflict(f"Cluster {cluster.name} already has {MAX_CLUSTER_NETWORKS} networks, the most it can have.")
        # Takes the cluster's lock and refuses while another operation runs (Conflict).
        start_operation(session, cluster, "attach_network", {"network": net.uuid})
        position = (session.scalar(
            select(func.max(ClusterNetwork.position)).where(ClusterNetwork.cluster_id == cluster.id)
        ) or 0) + 1
        session.add(ClusterNetwork(cluster_id=cluster.id, network_id=net.id, position=position))
        try:
            session.flush()
        except IntegrityError:
            raise Conflict(f"Network {net.name} is already attached to cluster {cluster.name}.") from None
        view = AttachmentView(cluster, net, position)
    runtime.wake_engine("operation")
    return view


# ---------------------------------------------------------------------------
# The engine's helpers (pure database; the caller commits)


def allocate_interface(session: Session, network: Network, node: Node) -> NodeInterface:
    """The node's interface on `network`: its row if it has one, else the next free host address.

    The first host address (.1) is reserved; addresses in use are skipped; the unique
    constraint on (network, address) settles races. Conflict when the network is full or not
    attached to the node's cluster.
    """
    existing = session.scalars(
        select(NodeInterface).where(NodeInterface.node_id == node.id, NodeInterface.network_id == network.id)
    ).first()
    if existing is not None:
        return existing
    position = session.scalar(select(ClusterNetwork.position).where(
        ClusterNetwork.cluster_id == node.cluster_id, ClusterNetwork.network_id == network.id
    ))
    if position is None:
        raise Conflict(f"Network {network.name} is not attached to the cluster of node {node.name}.")
    subnet = ipaddress.IPv4Network(network.cidr)
    first = int(subnet.network_address) + 2  # after the network address and the reserved .1
    last = int(subnet.broadcast_address) - 1
    for _attempt in range(5):
        used = {int(ipaddress.IPv4Address(a)) for a in session.scalars(
            select(NodeInterface.address).where(NodeInterface.network_id == network.id)
        )}
        candidate = next((a for a in range(first, last + 1) if a not in used), None)
        if candidate is None:
            raise Conflict(
                f"Network {network.name} ({network.cidr}) is full: {len(used)} nodes have an address on it."
            )
        row = NodeInterface(node_id=node.id, network_id=network.id,
                            address=str(ipaddress.IPv4Address(candidate)), ifname=f"eth{position}")
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:  # another allocator took the address (or gave this node one): look again
            again = session.scalars(select(NodeInterface).where(
                NodeInterface.node_id == node.id, NodeInterface.network_id == network.id
            )).first()
            if again is not None:
                return again
            continue
        return row
    raise Conflict(f"could not allocate an address on network {network.name}: too much contention, try again")


def release_interfaces(session: Session, node_ids: list[int]) -> int:
    """Forget the project-network addresses of these nodes; returns how many went."""
    if not node_ids:
        return 0
    result = session.execute(delete(NodeInterface).where(NodeInterface.node_id.in_(list(node_ids))))
    return int(result.rowcount or 0)

"""What a node is made of beyond its cluster: flavors (sizes), nodegroups, project networks
with the nodes' interfaces on them, and the host GPUs given to nodes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from floe.db.base import Base, new_uuid, utcnow


class Flavor(Base):
    """A node size, as Nova names it: vCPUs, RAM (MiB), disk (GB) and GPUs. Global, admin-managed."""

    __tablename__ = "flavors"

    # Nova's flavor id: "1".."5" for the built-in m1.* flavors, a uuid for those admins create.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    vcpus: Mapped[int] = mapped_column()
    ram: Mapped[int] = mapped_column()  # MiB
    disk: Mapped[int] = mapped_column(default=0)  # GB for the node's Docker data; 0 = no limit of its own
    gpus: Mapped[int] = mapped_column(default=0)
    is_public: Mapped[bool] = mapped_column(default=True)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NodeGroup(Base):
    """A set of a cluster's nodes alike in flavor, image and labels (Magnum's nodegroup).

    Every cluster has `default-master` (role master) and `default-worker`; users add more.
    """

    __tablename__ = "nodegroups"
    __table_args__ = (UniqueConstraint("cluster_id", "name", name="uq_nodegroups_cluster_name"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(255), default="worker")  # "master" = Swarm managers
    is_default: Mapped[bool] = mapped_column(default=False)
    flavor_id: Mapped[str | None] = mapped_column(String(255), default=None)
    image_id: Mapped[str | None] = mapped_column(String(255), default=None)
    docker_volume_size: Mapped[int | None] = mapped_column(default=None)
    node_count: Mapped[int] = mapped_column(default=0)
    min_node_count: Mapped[int] = mapped_column(default=0)
    max_node_count: Mapped[int | None] = mapped_column(default=None)
    labels: Mapped[dict] = mapped_column(default=dict)
    node_labels: Mapped[dict] = mapped_column(default=dict)
    node_taints: Mapped[list] = mapped_column(default=list)  # ["key=value:Effect", …]
    status: Mapped[str] = mapped_column(String(32), default="CREATE_IN_PROGRESS")
    status_reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(default=None, onupdate=utcnow)


class Network(Base):
    """A project's network: one bridge on the host; clusters' nodes get an interface on it."""

    __tablename__ = "networks"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_networks_project_name"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    cidr: Mapped[str] = mapped_column(String(43))
    # Short id carried by the network's host objects (bridge, iptables comments).
    host_tag: Mapped[str] = mapped_column(String(8), unique=True)
    status: Mapped[str] = mapped_column(String(32), default="ACTIVE")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ClusterNetwork(Base):
    """A network a cluster's nodes attach to (all of them, or one nodegroup's), in interface order."""

    __tablename__ = "cluster_networks"
    __table_args__ = (UniqueConstraint("cluster_id", "network_id", name="uq_cluster_networks"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"), index=True)
    network_id: Mapped[int] = mapped_column(ForeignKey("networks.id"), index=True)
    # None: every node of the cluster; else only this nodegroup's nodes.
    nodegroup_id: Mapped[int | None] = mapped_column(ForeignKey("nodegroups.id", ondelete="CASCADE"), default=None)
    position: Mapped[int] = mapped_column(default=1)  # eth<position> in every node
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NodeInterface(Base):
    """A node's address on a project network (floe's IPAM: unique per network)."""

    __tablename__ = "node_interfaces"
    __table_args__ = (
        UniqueConstraint("network_id", "address", name="uq_node_interfaces_address"),
        UniqueConstraint("node_id", "network_id", name="uq_node_interfaces_node"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    network_id: Mapped[int] = mapped_column(ForeignKey("networks.id"), index=True)
    address: Mapped[str] = mapped_column(String(43))
    ifname: Mapped[str] = mapped_column(String(15))  # inside the node: eth1, eth2, …


class GPUAllocation(Base):
    """A host GPU given to one node: the unique uuid makes the assignment exclusive."""

    __tablename__ = "gpu_allocations"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    gpu_uuid: Mapped[str] = mapped_column(String(64), unique=True)  # "GPU-…" as nvidia-smi -L prints it
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

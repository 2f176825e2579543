"""Cluster templates, clusters and their nodes, with Magnum's field names."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from floe.db.base import Base, new_uuid, utcnow


class ClusterTemplate(Base):
    __tablename__ = "cluster_templates"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_cluster_templates_project_name"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    user_id: Mapped[str] = mapped_column(String(64), default="")
    name: Mapped[str] = mapped_column(String(255))
    coe: Mapped[str] = mapped_column(String(32))
    image_id: Mapped[str | None] = mapped_column(String(255), default=None)
    flavor_id: Mapped[str | None] = mapped_column(String(255), default=None)
    master_flavor_id: Mapped[str | None] = mapped_column(String(255), default=None)
    keypair_id: Mapped[str | None] = mapped_column(String(255), default=None)
    external_network_id: Mapped[str | None] = mapped_column(String(255), default=None)
    fixed_network: Mapped[str | None] = mapped_column(String(255), default=None)
    fixed_subnet: Mapped[str | None] = mapped_column(String(255), default=None)
    network_driver: Mapped[str | None] = mapped_column(String(255), default=None)
    volume_driver: Mapped[str | None] = mapped_column(String(255), default=None)
    dns_nameserver: Mapped[str | None] = mapped_column(String(255), default=None)
    docker_volume_size: Mapped[int | None] = mapped_column(default=None)
    docker_storage_driver: Mapped[str | None] = mapped_column(String(64), default=None)
    http_proxy: Mapped[str | None] = mapped_column(String(255), default=None)
    https_proxy: Mapped[str | None] = mapped_column(String(255), default=None)
    no_proxy: Mapped[str | None] = mapped_column(String(255), default=None)
    labels: Mapped[dict] = mapped_column(default=dict)
    tls_disabled: Mapped[bool] = mapped_column(default=False)
    public: Mapped[bool] = mapped_column(default=False)
    registry_enabled: Mapped[bool] = mapped_column(default=False)
    server_type: Mapped[str] = mapped_column(String(32), default="vm")
    master_lb_enabled: Mapped[bool] = mapped_column(default=False)
    floating_ip_enabled: Mapped[bool] = mapped_column(default=False)
    hidden: Mapped[bool] = mapped_column(default=False)
    tags: Mapped[str | None] = mapped_column(String(255), default=None)
    cluster_distro: Mapped[str | None] = mapped_column(String(255), default=None)
    insecure_registry: Mapped[str | None] = mapped_column(String(255), default=None)
    apiserver_port: Mapped[int | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(default=None, onupdate=utcnow)


class Cluster(Base):
    __tablename__ = "clusters"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_clusters_project_name"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    # Short id carried by every object floe creates on a host for this cluster
    # (namespace, bridge, veth and iptables names), so host state can be reconciled.
    host_tag: Mapped[str] = mapped_column(String(8), unique=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    user_id: Mapped[str] = mapped_column(String(64), default="")
    name: Mapped[str] = mapped_column(String(255))
    cluster_template_id: Mapped[str] = mapped_column(ForeignKey("cluster_templates.uuid"), index=True)
    coe: Mapped[str] = mapped_column(String(32), default="swarm")
    provider: Mapped[str] = mapped_column(String(32), default="local")
    keypair: Mapped[str | None] = mapped_column(String(255), default=None)
    node_count: Mapped[int] = mapped_column(default=1)
    master_count: Mapped[int] = mapped_column(default=1)
    docker_volume_size: Mapped[int | None] = mapped_column(default=None)
    labels: Mapped[dict] = mapped_column(default=dict)
    master_flavor_id: Mapped[str | None] = mapped_column(String(255), default=None)
    flavor_id: Mapped[str | None] = mapped_column(String(255), default=None)
    create_timeout: Mapped[int] = mapped_column(default=60)
    discovery_url: Mapped[str | None] = mapped_column(String(255), default=None)
    status: Mapped[str] = mapped_column(String(32), default="CREATE_IN_PROGRESS", index=True)
    status_reason: Mapped[str | None] = mapped_column(Text, default=None)
    health_status: Mapped[str] = mapped_column(String(32), default="UNKNOWN")
    health_status_reason: Mapped[dict] = mapped_column(default=dict)
    api_address: Mapped[str | None] = mapped_column(String(255), default=None)
    master_addresses: Mapped[list] = mapped_column(default=list)
    node_addresses: Mapped[list] = mapped_column(default=list)
    coe_version: Mapped[str | None] = mapped_column(String(64), default=None)
    container_version: Mapped[str | None] = mapped_column(String(64), default=None)
    stack_id: Mapped[str | None] = mapped_column(String(255), default=None)
    fixed_network: Mapped[str | None] = mapped_column(String(255), default=None)
    fixed_subnet: Mapped[str | None] = mapped_column(String(255), default=None)
    floating_ip_enabled: Mapped[bool] = mapped_column(default=False)
    master_lb_enabled: Mapped[bool] = mapped_column(default=False)
    # Network and PKI state for the cluster; the CA key never leaves the server.
    subnet: Mapped[str | None] = mapped_column(String(43), default=None)
    swarm_pool: Mapped[str | None] = mapped_column(String(43), default=None)
    ca_cert_pem: Mapped[str | None] = mapped_column(Text, default=None)
    ca_key_pem: Mapped[str | None] = mapped_column(Text, default=None)
    # The CA a rotation moves to: kept beside the current one until every node serves it.
    ca_next_cert_pem: Mapped[str | None] = mapped_column(Text, default=None)
    ca_next_key_pem: Mapped[str | None] = mapped_column(Text, default=None)
    # Swarm join tokens: secrets, never returned by the API.
    coe_state: Mapped[dict] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(default=None, onupdate=utcnow)

    nodes: Mapped[list[Node]] = relationship(
        back_populates="cluster", cascade="all, delete-orphan", order_by="Node.index"
    )


class Node(Base):
    """One machine of a cluster; for the local provider a namespace with its own dockerd."""

    __tablename__ = "nodes"
    __table_args__ = (UniqueConstraint("cluster_id", "name", name="uq_nodes_cluster_name"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))  # manager | worker
    # The nodegroup it belongs to (NULL only in rows older than nodegroups, until migrated).
    nodegroup_id: Mapped[int | None] = mapped_column(
        ForeignKey("nodegroups.id", ondelete="CASCADE"), default=None, index=True
    )
    index: Mapped[int] = mapped_column()
    address: Mapped[str | None] = mapped_column(String(43), default=None)
    docker_pool: Mapped[str | None] = mapped_column(String(43), default=None)
    # planned -> started -> joined -> ready ; removing when a scale-down picked it
    state: Mapped[str] = mapped_column(String(16), default="planned")
    swarm_node_id: Mapped[str | None] = mapped_column(String(64), default=None)
    health_status: Mapped[str] = mapped_column(String(32), default="UNKNOWN")
    health_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    cluster: Mapped[Cluster] = relationship(back_populates="nodes")

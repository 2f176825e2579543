"""The bodies of floe's own answers under /v1/floe: nodes, share attachments and project networks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from floe.services.clusters import NodeView
from floe.services.networks import AttachmentView as NetworkAttachmentView
from floe.services.networks import NetworkView
from floe.services.shares import AttachmentView


class InterfaceOut(BaseModel):
    name: str  # inside the node: eth0, eth1, …
    network: str
    address: str


class NodeOut(BaseModel):
    uuid: str
    name: str
    role: str
    address: str | None
    state: str
    health_status: str
    health_reason: str
    swarm_node_id: str | None
    nodegroup: str
    flavor: str
    # One per network, eth0 (the cluster's management network) first.
    interfaces: list[InterfaceOut]
    gpus: list[str]


class NodeList(BaseModel):
    nodes: list[NodeOut]


def node_out(view: NodeView) -> NodeOut:
    n = view.node
    return NodeOut(
        nodegroup=view.nodegroup,
        flavor=view.flavor,
        interfaces=[InterfaceOut(name=i, network=net, address=a) for i, net, a in view.interfaces],
        gpus=view.gpus,
        uuid=n.uuid,
        name=n.name,
        role=n.role,
        address=n.address,
        state=n.state,
        health_status=n.health_status,
        health_reason=n.health_reason,
        swarm_node_id=n.swarm_node_id,
    )


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def attachment_out(view: AttachmentView) -> dict[str, Any]:
    a, share, cluster = view.attachment, view.share, view.cluster
    return {
        "share_id": share.uuid,
        "share_name": share.name,
        "cluster_uuid": cluster.uuid,
        "cluster_name": cluster.name,
        "path": f"/mnt/{a.mount_name}",
        "access_level": "ro" if a.read_only else "rw",
        "state": a.state,
        "state_reason": a.state_reason,
        "nodes": list(a.nodes_verified or []),
        "created_at": _time(a.created_at),
        "updated_at": _time(a.updated_at),
    }


def network_out(view: NetworkView) -> dict[str, Any]:
    n = view.network
    return {
        "uuid": n.uuid,
        "name": n.name,
        "cidr": n.cidr,
        "project_id": n.project_id,
        "status": n.status,
        "created_at": _time(n.created_at),
        "clusters": list(view.clusters),
    }


def network_attachment_out(view: NetworkAttachmentView) -> dict[str, Any]:
    return {
        "cluster_uuid": view.cluster.uuid,
        "cluster_name": view.cluster.name,
        "network_uuid": view.network.uuid,
        "network_name": view.network.name,
        "cidr": view.network.cidr,
        "interface": view.ifname,
    }

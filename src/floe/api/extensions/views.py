"""The bodies of floe's own answers under /v1/floe: nodes and share attachments."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from floe.db.models import Node
from floe.services.shares import AttachmentView


class NodeOut(BaseModel):
    uuid: str
    name: str
    role: str
    address: str | None
    state: str
    health_status: str
    health_reason: str
    swarm_node_id: str | None


class NodeList(BaseModel):
    nodes: list[NodeOut]


def node_out(n: Node) -> NodeOut:
    return NodeOut(
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

"""What every layer needs to know of a cluster's nodegroups: its two defaults, and a group's flavor."""

from __future__ import annotations

from floe.db.models import Cluster, NodeGroup

MASTER_NODEGROUP = "default-master"
WORKER_NODEGROUP = "default-worker"


def default_nodegroups(cluster: Cluster, image_id: str | None = None) -> list[NodeGroup]:
    """The cluster's default-master and default-worker nodegroups (Magnum's), not yet added."""
    return [
        NodeGroup(
            cluster_id=cluster.id, project_id=cluster.project_id, name=name, role=role, is_default=True,
            flavor_id=flavor, image_id=image_id, docker_volume_size=cluster.docker_volume_size,
            node_count=count, min_node_count=1 if role == "master" else 0, labels=dict(cluster.labels or {}),
            status="CREATE_IN_PROGRESS",
        )
        for name, role, count, flavor in (
            (MASTER_NODEGROUP, "master", cluster.master_count, cluster.master_flavor_id),
            (WORKER_NODEGROUP, "worker", cluster.node_count, cluster.flavor_id),
        )
    ]


def flavor_ref(cluster: Cluster, group: NodeGroup) -> str | None:
    """The flavor a group's nodes run with: its own, else the cluster's for its role (None: the default)."""
    return group.flavor_id or (cluster.master_flavor_id if group.role == "master" else cluster.flavor_id)

"""Orphan cleanup: whatever is on the host for a cluster the database no longer knows goes."""

from __future__ import annotations

from sqlalchemy import select

from floe.db.models import Cluster
from floe.runtime import Runtime


def cleanup_orphans(runtime: Runtime) -> list[str]:
    """Purge host objects of clusters that no longer exist; returns what was removed."""
    provider = runtime.provider
    if provider is None:
        return []
    on_host = provider.owned_cluster_tags()
    with runtime.db.session() as s:
        known = set(s.scalars(select(Cluster.host_tag)))
    removed: list[str] = []
    for tag in sorted(on_host - known):
        removed.extend(provider.purge_cluster(tag))
    return removed + _cleanup_project_networks(runtime)


def _cleanup_project_networks(runtime: Runtime) -> list[str]:
    """Remove this floe's project networks on the host that the database no longer knows.

    Called after the clusters' orphans went, so no orphan node is left on such a network. The
    host is read before the database: a network created meanwhile is in the second read.
    """
    from floe.db.models import Network
    from floe.providers.base import ProviderWithNetworks

    provider = runtime.provider
    if not isinstance(provider, ProviderWithNetworks):
        return []
    on_host = provider.project_network_tags()
    with runtime.db.session() as s:
        known = set(s.scalars(select(Network.host_tag)))
    removed = []
    for tag in sorted(on_host - known):
        provider.delete_project_network(tag)
        removed.append(f"project network {tag}")
    return removed


SETTLED = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_FAILED")


def recover_clusters(runtime: Runtime) -> list[str]:
    """At server start: queue a repair for every settled cluster with nodes that are not running.

    After a host restart nothing of a node is left but its directory (images, volumes, swarm
    state); the repair restarts each node from it with the same name and address, so the
    swarm, its services and their data come back as they were.
    """
    from floe.db.models import Node
    from floe.engine.operations import active_operation, start_operation

    provider = runtime.provider
    if provider is None:
        return []
    with runtime.db.session() as s:
        rows = s.execute(
            select(Cluster.id, Cluster.host_tag).where(Cluster.status.in_(SETTLED))
        ).all()
        names = {
            r.id: list(s.scalars(select(Node.name).where(Node.cluster_id == r.id, Node.state != "removing")))
            for r in rows
        }
    queued = []
    for r in rows:
        dead = [n for n in names[r.id] if not ((info := provider.node_info(r.host_tag, n)) and info.running)]
        if not dead:
            continue
        with runtime.db.session() as s:
            cluster = s.get(Cluster, r.id)
            if cluster is None or active_operation(s, cluster) is not None:
                continue
            start_operation(s, cluster, "repair", {"reason": f"{len(dead)} node(s) not running: {', '.join(dead[:5])}"})
            queued.append(cluster.name)
    return queued

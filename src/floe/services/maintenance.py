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
    on_host = provider.host_cluster_tags()
    with runtime.db.session() as s:
        known = set(s.scalars(select(Cluster.host_tag)))
    removed: list[str] = []
    for tag in sorted(on_host - known):
        removed.extend(provider.purge_cluster(tag))
    return removed

"""Periodic health checks: each settled cluster's driver says how every node is.

Results land in Magnum's fields: cluster `health_status` (HEALTHY / UNHEALTHY / UNKNOWN)
and `health_status_reason` (a dict: `api` and one `<node>.Ready` entry per node),
plus `health_status` and `health_reason` on each node row. A round (`check_all`) is a
periodic task of the engine, registered by the composition root (floe.server) every
settings.health_interval; the monitor has no thread of its own.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import bindparam, exists, select, update

from floe.coe.base import NOT_RUNNING, ClusterHealth, COEDriver, NodeRef
from floe.db import events
from floe.db.models import Cluster, Node, Operation
from floe.engine.operations import ACTIVE
from floe.runtime import Runtime

log = logging.getLogger("floe.health")

SETTLED = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_FAILED")
# Clusters whose changes one transaction writes (keeps each write lock short).
WRITE_BATCH = 200
_NODE_HEALTH = (
    update(Node).where(Node.id == bindparam("node_id"))
    .values(health_status=bindparam("hs"), health_reason=bindparam("hr"))
)


class HealthMonitor:
    def __init__(self, runtime: Runtime, drivers: dict[str, COEDriver]):
        self.runtime = runtime
        self.drivers = drivers
        # Asks the drivers of one round in parallel (a round is one task of the engine).
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="floe-health")

    def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def check_all(self) -> int:
        """One round over every settled cluster; returns how many clusters' rows changed.

        Reads every settled cluster and its nodes in two queries, asks the drivers in
        parallel, and writes only what changed, in a few short transactions: a round over
        a thousand healthy clusters writes nothing, so it neither holds the database's write
        lock nor invalidates the API's read cache.
        """
        snapshots = self._snapshot()
        if not snapshots:
            return 0
        reports = list(self._pool.map(self._ask, snapshots))
        changes = [c for c in map(_change, snapshots, reports) if c is not None]
        healed = False
        for i in range(0, len(changes), WRITE_BATCH):
            healed |= self._write(changes[i:i + WRITE_BATCH])
        if healed:
            self.runtime.wake_engine("operation")
        return len(changes)

    def check_cluster(self, cluster_id: int) -> bool:
        """Check one cluster now (whatever its state allows); True if its rows changed."""
        snapshots = self._snapshot(cluster_id)
        changes = [c for c in (_change(s, self._ask(s)) for s in snapshots) if c is not None]
        if changes and self._write(changes):
            self.runtime.wake_engine("operation")
        return bool(changes)

    def _snapshot(self, cluster_id: int | None = None) -> list[_Snapshot]:
        busy = select(Operation.cluster_id).where(Operation.state.in_(ACTIVE))
        q = select(
            Cluster.id, Cluster.host_tag, Cluster.coe, Cluster.labels, Cluster.health_status,
            Cluster.health_status_reason, Cluster.project_id, Cluster.uuid, Cluster.name,
        ).where(Cluster.status.in_(SETTLED), Cluster.id.not_in(busy)).order_by(Cluster.id)
        if cluster_id is not None:
            q = q.where(Cluster.id == cluster_id)
        with self.runtime.db.session() as s:
            rows = s.execute(q).all()
            if not rows:
                return []
            nodes: dict[int, list[tuple[NodeRef, str, str]]] = {r.id: [] for r in rows}
            nq = select(
                Node.cluster_id, Node.id, Node.name, Node.role, Node.index, Node.address, Node.docker_pool,
                Node.state, Node.swarm_node_id, Node.health_status, Node.health_reason,
            ).order_by(Node.cluster_id, Node.role, Node.index)
            nq = nq.where(Node.cluster_id == cluster_id) if cluster_id is not None else nq.where(
                Node.cluster_id.in_(select(Cluster.id).where(Cluster.status.in_(SETTLED)))
            )
            for n in s.execute(nq):
                if n.cluster_id in nodes:
                    ref = NodeRef(n.id, n.name, n.role, n.index, n.address or "", n.docker_pool or "", n.state,
                                  n.swarm_node_id)
                    nodes[n.cluster_id].append((ref, n.health_status, n.health_reason or ""))
        return [
            _Snapshot(r.id, r.host_tag, r.coe, r.labels or {}, r.health_status, r.health_status_reason or {},
                      nodes[r.id], r.project_id, r.uuid, r.name)
            for r in rows if nodes[r.id]
        ]

    def _ask(self, snap: _Snapshot) -> ClusterHealth | None:
        driver = self.drivers.get(snap.coe)
        if driver is None or self.runtime.provider is None:
            return None
        try:
            return driver.health(self.runtime.provider, snap.tag, [n for n, _, _ in snap.nodes])
        except Exception:  # noqa: BLE001 - one cluster's trouble must not stop the round
            log.exception("health check of cluster %s failed", snap.tag)
            return None

    def _write(self, changes: list[_Change]) -> bool:
        """Apply changes to clusters still settled and idle; True if a repair was queued."""
        from floe.engine.operations import start_operation

        healed = False
        with self.runtime.db.session() as s:
            for c in changes:  # in cluster id order: two servers' rounds never lock in opposite orders
                res = s.execute(
                    update(Cluster)
                    .where(Cluster.id == c.cluster_id, Cluster.status.in_(SETTLED),
                           ~exists().where(Operation.cluster_id == Cluster.id, Operation.state.in_(ACTIVE)))
                    .values(health_status=c.status, health_status_reason=c.reason)
                    .execution_options(synchronize_session=False)
                )
                if res.rowcount != 1:
                    continue  # an operation started meanwhile: it owns the cluster's rows now
                if c.nodes:
                    s.connection().execute(  # Core: one executemany, no ORM bookkeeping
                        _NODE_HEALTH,
                        [{"node_id": i, "hs": hs, "hr": hr} for i, hs, hr in c.nodes],
                    )
                events.record_rows(s, _health_events(c))
                if c.heal:
                    cluster = s.get(Cluster, c.cluster_id)
                    events.record(
                        s, project_id=c.project_id, kind="autoheal", level="warning",
                        message=f"auto-healing {', '.join(c.heal)}", cluster_id=c.cluster_uuid,
                        cluster_name=c.cluster_name, data={"nodes": list(c.heal)},
                    )
                    start_operation(s, cluster, "repair", {"reason": f"auto-healing {', '.join(c.heal)}"})
                    log.warning("cluster %s: auto-healing %s", cluster.name, ", ".join(c.heal))
                    healed = True
        return healed


@dataclass(frozen=True)
class _Snapshot:
    cluster_id: int
    tag: str
    coe: str
    labels: dict
    health_status: str
    health_status_reason: dict
    nodes: list[tuple[NodeRef, str, str]]  # (node, stored health_status, stored health_reason)
    project_id: str = ""
    cluster_uuid: str = ""
    cluster_name: str = ""


@dataclass(frozen=True)
class _Change:
    cluster_id: int
    status: str
    reason: dict
    nodes: list[tuple[int, str, str]]  # (node id, health_status, health_reason) that differ
    heal: list[str]  # dead nodes to repair (auto-healing)
    project_id: str = ""
    cluster_uuid: str = ""
    cluster_name: str = ""
    old_status: str = ""
    node_changes: tuple[tuple[str, str, str, str], ...] = ()  # (name, old status, new status, reason)


def _change(snap: _Snapshot, report: ClusterHealth | None) -> _Change | None:
    """What a report changes in the stored rows (None: nothing)."""
    if report is None:
        return None
    by_name = {h.name: h for h in report.nodes}
    managers = {n.name for n, _, _ in snap.nodes if n.role == "manager"}
    reason: dict = {"api": "ok" if any(h.healthy for h in report.nodes if h.name in managers) else "down"}
    nodes = []
    node_changes = []
    for n, old_status, old_reason in snap.nodes:
        h = by_name.get(n.name)
        if h is None:
            continue
        status = "HEALTHY" if h.healthy else "UNHEALTHY"
        reason[f"{n.name}.Ready"] = "True" if h.healthy else f"False: {h.reason}"
        if (status, h.reason) != (old_status, old_reason):
            nodes.append((n.id, status, h.reason))
            if status != old_status:
                node_changes.append((n.name, old_status, status, h.reason))
    status = "HEALTHY" if report.healthy else "UNHEALTHY"
    dead = [h.name for h in report.nodes if not h.healthy and (h.reason == NOT_RUNNING or h.heal)]
    heal = dead if _auto_healing(snap.labels) else []
    if not nodes and not heal and status == snap.health_status and reason == snap.health_status_reason:
        return None
    return _Change(snap.cluster_id, status, reason, nodes, heal, snap.project_id, snap.cluster_uuid,
                   snap.cluster_name, snap.health_status, tuple(node_changes))


def _health_events(c: _Change) -> list[dict]:
    """Events for the health changes `c` writes: the cluster's status and each node's."""
    subject = {"project_id": c.project_id, "cluster_id": c.cluster_uuid, "cluster_name": c.cluster_name}
    rows = []
    if c.status != c.old_status:
        rows.append({**subject, "kind": "health.changed", "level": "info" if c.status == "HEALTHY" else "warning",
                     "message": f"cluster {c.cluster_name} is {c.status} (was {c.old_status})",
                     "data": {"old": c.old_status, "new": c.status}})
    for name, old, new, why in c.node_changes:
        rows.append({**subject, "kind": "node.health", "level": "info" if new == "HEALTHY" else "warning",
                     "message": f"node {name} is {new}" + (f": {why}" if why and new != "HEALTHY" else ""),
                     "data": {"node": name, "old": old, "new": new, "reason": why}})
    return rows


def _auto_healing(labels: dict | None) -> bool:
    return str((labels or {}).get("auto_healing_enabled", "false")).lower() == "true"



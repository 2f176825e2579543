"""Periodic health checks: each settled cluster's driver says how every node is.

Results land in Magnum's fields: cluster `health_status` (HEALTHY / UNHEALTHY / UNKNOWN)
and `health_status_reason` (a dict: `api` and one `<node>.Ready` entry per node),
plus `health_status` and `health_reason` on each node row.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from floe.coe.base import NOT_RUNNING, COEDriver
from floe.db.models import Cluster, Node, Operation
from floe.engine.steps import NodeRef
from floe.runtime import Runtime

log = logging.getLogger("floe.health")

SETTLED = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_FAILED")


class HealthMonitor:
    def __init__(self, runtime: Runtime, drivers: dict[str, COEDriver]):
        self.runtime = runtime
        self.drivers = drivers
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="floe-health")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="floe-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.runtime.settings.health_interval):
            try:
                self.check_all()
            except Exception:  # noqa: BLE001 - keep checking on the next round
                log.exception("health round failed")

    def check_all(self) -> None:
        with self.runtime.db.session() as s:
            busy = select(Operation.cluster_id).where(Operation.state.in_(("pending", "running")))
            rows = s.execute(
                select(Cluster.id, Cluster.host_tag, Cluster.coe)
                .where(Cluster.status.in_(SETTLED), Cluster.id.not_in(busy))
            ).all()
        list(self._pool.map(lambda r: self.check_cluster(r.id, r.host_tag, r.coe), rows))

    def check_cluster(self, cluster_id: int, tag: str, coe: str) -> None:
        driver = self.drivers.get(coe)
        if driver is None or self.runtime.provider is None:
            return
        with self.runtime.db.session() as s:
            nodes = [NodeRef.of(n) for n in s.scalars(select(Node).where(Node.cluster_id == cluster_id))]
        if not nodes:
            return
        report = driver.health(self.runtime.provider, tag, nodes)
        by_name = {h.name: h for h in report.nodes}
        healing = False
        with self.runtime.db.session() as s:
            cluster = s.get(Cluster, cluster_id)
            if cluster is None or cluster.status not in SETTLED:
                return
            reason = {"api": "ok" if any(h.healthy for h in report.nodes if _is_manager(h.name, nodes)) else "down"}
            for n in s.scalars(select(Node).where(Node.cluster_id == cluster_id)):
                h = by_name.get(n.name)
                if h is None:
                    continue
                n.health_status = "HEALTHY" if h.healthy else "UNHEALTHY"
                n.health_reason = h.reason
                reason[f"{n.name}.Ready"] = "True" if h.healthy else f"False: {h.reason}"
            cluster.health_status = "HEALTHY" if report.healthy else "UNHEALTHY"
            cluster.health_status_reason = reason
            dead = [h.name for h in report.nodes if not h.healthy and h.reason == NOT_RUNNING]
            if dead and _auto_healing(cluster.labels):
                from floe.engine.operations import active_operation, start_operation

                if active_operation(s, cluster) is None:
                    start_operation(s, cluster, "repair", {"reason": f"auto-healing {', '.join(dead)}"})
                    healing = True
        if healing:
            self.runtime.wake_engine()


def _auto_healing(labels: dict | None) -> bool:
    return str((labels or {}).get("auto_healing_enabled", "false")).lower() == "true"


def _is_manager(name: str, nodes: list[NodeRef]) -> bool:
    return any(n.name == name and n.role == "manager" for n in nodes)

"""What floe's `/metrics` computes when it is scraped: the database's state and the engine's.

`StateCollector` is a prometheus_client collector: each scrape reads clusters, nodes, shares,
queues and quotas in a few grouped queries (columns, never ORM objects), so a scrape over a
thousand clusters stays far below Prometheus's timeout; the engine's running work is read
from this process's runner. Counters and histograms of what happened (requests, operations,
steps) are not here: floe.metrics counts them as they happen.

Quotas come through `quota_reader`, handed in by the composition (the API): how usage and
limits are counted belongs to floe.services.quotas, a layer this package does not import.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from floe.db.base import utcnow
from floe.db.models import Cluster, Node, Operation, Project, Share
from floe.db.models.shares import USABLE
from floe.engine.operations import ACTIVE
from floe.runtime import Runtime
from floe.storage.base import GIB, ShareRef

log = logging.getLogger("floe.metrics")

# (session, project ids) -> project id -> (limits, usage), each resource -> number (-1: unlimited).
QuotaReader = Callable[[Session, list[str]], dict[str, tuple[dict[str, int], dict[str, int]]]]


class StateCollector(Collector):
    """The gauges of floe_* state that one runtime's database and engine hold, read at scrape time."""

    def __init__(self, runtime: Runtime, quota_reader: QuotaReader | None = None):
        self.runtime = runtime
        self.quota_reader = quota_reader
        self.share_usage = ShareUsage(runtime)

    def describe(self) -> Iterable[Metric]:
        return []  # nothing to check at registration (and no scrape just to register)

    def collect(self) -> Iterator[Metric]:
        # Read in one short transaction, before any of it is formatted.
        with self.runtime.db.session() as s:
            names = dict(s.execute(select(Project.id, Project.name)).all())
            families = [*_clusters(s, names), _nodes(s, names), *_shares(s, names, self.share_usage),
                        *_engine_queues(s)]
            if self.quota_reader is not None:
                families += _quotas(s, names, self.quota_reader)
        families.append(_running(self.runtime.engine))
        return iter(families)


def _project(names: dict[str, str], project_id: str) -> str:
    return names.get(project_id, project_id)


def _clusters(s: Session, names: dict[str, str]) -> Iterator[Metric]:
    info = GaugeMetricFamily("floe_cluster_info", "1 for every cluster, with its COE, status and health",
                             labels=["project", "cluster", "coe", "status", "health"])
    counts: Counter[tuple[str, str, str]] = Counter()
    rows = s.execute(select(Cluster.project_id, Cluster.name, Cluster.coe, Cluster.status, Cluster.health_status))
    for project_id, name, coe, status, health in rows:
        project = _project(names, project_id)
        info.add_metric([project, name, coe, status, health], 1)
        counts[(project, status, health)] += 1
    yield info
    clusters = GaugeMetricFamily("floe_clusters", "Clusters by project, status and health",
                                 labels=["project", "status", "health"])
    for labels, n in sorted(counts.items()):
        clusters.add_metric(list(labels), n)
    yield clusters


def _nodes(s: Session, names: dict[str, str]) -> Metric:
    nodes = GaugeMetricFamily("floe_nodes", "Nodes by project, state and health", labels=["project", "state", "health"])
    rows = s.execute(
        select(Cluster.project_id, Node.state, Node.health_status, func.count(Node.id))
        .join(Cluster, Cluster.id == Node.cluster_id)
        .group_by(Cluster.project_id, Node.state, Node.health_status)
    )
    for project_id, state, health, n in rows:
        nodes.add_metric([_project(names, project_id), state, health], n)
    return nodes


def _shares(s: Session, names: dict[str, str], usage: ShareUsage) -> Iterator[Metric]:
    counts = GaugeMetricFamily("floe_shares", "Shares by project and status", labels=["project", "status"])
    size = GaugeMetricFamily("floe_share_size_bytes", "Each share's size", labels=["project", "share"])
    used = GaugeMetricFamily("floe_share_used_bytes", "Each share's used space, as its backend last said",
                             labels=["project", "share"])
    tally: Counter[tuple[str, str]] = Counter()
    rows = s.execute(select(Share.project_id, Share.name, Share.uuid, Share.status, Share.size)).all()
    used_bytes = usage.known({r.uuid for r in rows if r.status in USABLE})
    for project_id, name, uuid, status, gib in rows:
        project = _project(names, project_id)
        tally[(project, status)] += 1
        # A share's name is unique in its project (when it has one); else its id names it.
        size.add_metric([project, name or uuid], gib * GIB)
        if uuid in used_bytes:
            used.add_metric([project, name or uuid], used_bytes[uuid])
    for labels, n in sorted(tally.items()):
        counts.add_metric(list(labels), n)
    yield counts
    yield size
    yield used


def _engine_queues(s: Session) -> Iterator[Metric]:
    """Work waiting for a worker (active, leased by nobody) and operations past their deadline."""
    queued = GaugeMetricFamily("floe_engine_queue_depth", "Work waiting for a worker, by lease kind", labels=["kind"])
    waiting_ops = s.scalar(select(func.count(Operation.id)).where(
        Operation.state.in_(ACTIVE), Operation.lease_owner.is_(None)))
    waiting_shares = s.scalar(select(func.count(Share.id)).where(
        Share.needs_work.is_(True), Share.lease_owner.is_(None)))
    queued.add_metric(["operation"], waiting_ops or 0)
    queued.add_metric(["share"], waiting_shares or 0)
    yield queued
    overdue = GaugeMetricFamily("floe_operations_overdue", "Active operations past their deadline, by kind",
                                labels=["kind"])
    for kind, n in s.execute(
        select(Operation.kind, func.count(Operation.id))
        .where(Operation.state.in_(ACTIVE), Operation.deadline_at < utcnow()).group_by(Operation.kind)
    ):
        overdue.add_metric([kind], n)
    yield overdue


def _quotas(s: Session, names: dict[str, str], reader: QuotaReader) -> Iterator[Metric]:
    limit = GaugeMetricFamily("floe_quota_limit", "Each project's quota per resource (-1: unlimited)",
                              labels=["project", "resource"])
    usage = GaugeMetricFamily("floe_quota_usage", "What each project uses of each quota'd resource",
                              labels=["project", "resource"])
    for project_id, (limits, used) in sorted(reader(s, list(names)).items()):
        project = _project(names, project_id)
        for resource, value in limits.items():
            limit.add_metric([project, resource], value)
        for resource, value in used.items():
            usage.add_metric([project, resource], value)
    yield limit
    yield usage


def _running(engine: Any) -> Metric:
    """Work this process's runner is running now, by lease kind (nothing without an engine)."""
    running = GaugeMetricFamily("floe_engine_running", "Work this process is running now, by lease kind",
                                labels=["kind"])
    runner = getattr(engine, "runner", engine)  # the Engine, or a bare Runner (share work alone)
    if runner is not None and hasattr(runner, "kinds"):
        for kind in runner.kinds():
            running.add_metric([kind], len(runner.running(kind)))
    return running


class ShareUsage:
    """Used bytes of each usable share, asked of its backend off the scrape's path: a backend may
    be slow to say (GlusterFS mounts the volume to look), and a scrape must not wait for it. Asked
    again every REFRESH seconds, and at once when a share became usable; a scrape reports the
    last answers (none for a share not asked about yet)."""

    REFRESH = 60.0

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self._used: dict[str, int] = {}  # share uuid -> bytes
        self._asked_for: set[str] = set()
        self._lock = threading.Lock()
        self._asked = -math.inf
        self._thread: threading.Thread | None = None

    def known(self, usable: set[str]) -> dict[str, int]:
        """The last answers; starts asking again in the background when they are old or `usable`
        (the uuids of the shares usable now) names one not asked about."""
        if not usable:
            return {}  # nothing to ask about
        with self._lock:
            busy = self._thread is not None and self._thread.is_alive()
            if not busy and (time.monotonic() - self._asked >= self.REFRESH or not usable <= self._asked_for):
                self._asked = time.monotonic()
                self._thread = threading.Thread(target=self.refresh, name="floe-share-usage", daemon=True)
                self._thread.start()
            return self._used

    def refresh(self) -> None:
        with self.runtime.db.session() as s:
            rows = s.execute(select(Share.uuid, Share.share_type, Share.size, Share.backend_state)
                             .where(Share.status.in_(USABLE))).all()
        self._asked_for = {r.uuid for r in rows}
        used: dict[str, int] = {}
        for uuid, share_type, gib, state in rows:
            try:
                backend = self.runtime.share_backends.get(share_type)
                used[uuid] = backend.usage(ShareRef(uuid, gib * GIB, dict(state or {}))).used_bytes
            except Exception as exc:  # noqa: BLE001 - not online, or its backend cannot say now: unknown
                log.debug("usage of share %s unknown: %s", uuid, exc)
        self._used = used

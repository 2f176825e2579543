"""What a step sees: short database sessions guarded by the lease, progress, deadlines, parallelism."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from floe.db.base import utcnow
from floe.db.models import Cluster, Node, Operation
from floe.errors import DeadlineExceeded, LeaseLost

if TYPE_CHECKING:
    import docker

    from floe.coe.base import COEDriver
    from floe.providers.base import InfraProvider, NodeInfo
    from floe.runtime import Runtime

T = TypeVar("T")
R = TypeVar("R")

# Built once: these run several times per step of every operation, and building and
# hashing a statement costs more than executing it. Run through Core (no ORM bookkeeping).
_RENEW = (
    update(Operation)
    .where(Operation.id == bindparam("op_id"), Operation.lease_owner == bindparam("owner"),
           Operation.state == "running")
    .values(lease_expires_at=bindparam("expires"))
)
_LOCK_CLUSTER = select(Cluster.id).where(Cluster.id == bindparam("cluster_id")).with_for_update()
_HOLDER = select(Operation.lease_owner, Operation.state).where(Operation.id == bindparam("op_id"))
_PROGRESS = update(Cluster).where(Cluster.id == bindparam("cluster_id")).values(status_reason=bindparam("text"))


@dataclass
class StepContext:
    runtime: Runtime
    op_id: int
    cluster_id: int
    kind: str
    owner: str
    lease_seconds: float
    deadline: datetime | None
    provider: InfraProvider
    driver: COEDriver
    params: dict = field(default_factory=dict)
    step: str = ""
    _clients: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- database -----------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[Session]:
        """A short transaction that commits only while this worker still holds the lease.

        The lease row is updated first (after the cluster's row is locked, on PostgreSQL), so it
        stays locked until commit and a concurrent supersede waits; on SQLite the transaction
        holds the database's write lock.
        """
        with self.runtime.db.session() as s:
            if s.get_bind().dialect.name != "sqlite":
                # The cluster's row before the operation's, in the order API requests take them
                # (start_operation): the other order deadlocks with a delete superseding this step.
                s.connection().execute(_LOCK_CLUSTER, {"cluster_id": self.cluster_id})
            self._renew(s)
            yield s

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session for a step's reads; raises LeaseLost as `session` would, writes nothing.

        Reading needs no write lock (SQLite has one for the whole database), so many workers
        can plan at once; a superseded operation still stops at its next read.
        """
        with self.runtime.db.session() as s:
            row = s.connection().execute(_HOLDER, {"op_id": self.op_id}).first()
            if row is None or row.lease_owner != self.owner or row.state != "running":
                raise LeaseLost(f"operation {self.op_id} is no longer ours")
            yield s

    def _renew(self, s: Session) -> None:
        res = s.connection().execute(
            _RENEW,
            {"op_id": self.op_id, "owner": self.owner,
             "expires": utcnow() + timedelta(seconds=self.lease_seconds)},
        )
        if res.rowcount != 1:
            s.rollback()
            raise LeaseLost(f"operation {self.op_id} is no longer ours")

    def check(self) -> None:
        """Raise if the operation was superseded, lost, or ran past its deadline."""
        if self.deadline is not None and utcnow() > self.deadline:
            raise DeadlineExceeded(f"timed out in step {self.step}")
        with self.session():
            pass

    def remaining(self, default: float = 3600.0) -> float:
        if self.deadline is None:
            return default
        return max(0.0, (self.deadline - utcnow()).total_seconds())

    def progress(self, text: str) -> None:
        with self.session() as s:
            s.connection().execute(_PROGRESS, {"cluster_id": self.cluster_id, "text": text})

    def save_params(self, **values: Any) -> None:
        self.params.update(values)
        with self.session() as s:
            s.execute(update(Operation).where(Operation.id == self.op_id).values(params=dict(self.params)))

    def cluster(self, s: Session) -> Cluster:
        return s.get(Cluster, self.cluster_id)

    def nodes(self, s: Session, states: Iterable[str] | None = None) -> list[Node]:
        q = select(Node).where(Node.cluster_id == self.cluster_id).order_by(Node.role, Node.index)
        if states is not None:
            q = q.where(Node.state.in_(list(states)))
        return list(s.scalars(q))

    # --- nodes ----------------------------------------------------------------------
    def docker(self, info: NodeInfo) -> docker.DockerClient:
        """One SDK client per node per operation (building them is not free)."""
        with self._lock:
            client = self._clients.get(info.docker_url)
            if client is None:
                client = self.provider.docker_client(info)
                self._clients[info.docker_url] = client
            return client

    def close(self) -> None:
        for c in self._clients.values():
            try:
                c.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        self._clients.clear()

    def parallel(self, fn: Callable[[T], R], items: list[T], limit: int = 16) -> list[R]:
        """Run fn over items concurrently (bounded), re-raising the first failure."""
        if not items:
            return []
        if len(items) == 1:
            return [fn(items[0])]
        with ThreadPoolExecutor(max_workers=min(limit, len(items))) as pool:
            return list(pool.map(fn, items))

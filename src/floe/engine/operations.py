"""Queueing cluster operations: the only way services hand work to the engine."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from floe.db import events
from floe.db.base import utcnow
from floe.db.models import Cluster, NodeGroup, Operation
from floe.errors import Conflict, NotFound

ACTIVE = ("pending", "running")
# A repair (nodes brought back after a host restart or a node failure) and a CA rotation are
# updates to Magnum's clients.
IN_PROGRESS = {
    "create": "CREATE_IN_PROGRESS",
    "update": "UPDATE_IN_PROGRESS",
    "repair": "UPDATE_IN_PROGRESS",
    "rotate_ca": "UPDATE_IN_PROGRESS",
    "attach_network": "UPDATE_IN_PROGRESS",
    "delete": "DELETE_IN_PROGRESS",
}


def active_operation(session: Session, cluster: Cluster) -> Operation | None:
    return session.scalars(
        select(Operation).where(Operation.cluster_id == cluster.id, Operation.state.in_(ACTIVE))
    ).first()


def start_operation(session: Session, cluster: Cluster, kind: str, params: dict | None = None) -> Operation:
    """Queue `kind` for `cluster` and set its *_IN_PROGRESS status.

    One operation per cluster at a time: a second create/update gets Conflict (409).
    A delete supersedes whatever runs; the worker holding that operation notices at
    its next step and stops, and the delete cleans up what it left.
    """
    # Take the cluster's lock first, with a write that changes nothing: on SQLite it takes the
    # database's write lock, on PostgreSQL the row's. Two requests for one cluster then cannot
    # both find it idle, and like the engine's sessions (StepContext.session) this locks the
    # cluster before its operation, so a delete superseding a running step cannot deadlock.
    locked = session.execute(
        update(Cluster).where(Cluster.id == cluster.id).values(status=Cluster.status)
        .execution_options(synchronize_session=False)
    )
    if locked.rowcount != 1:  # a delete finished between the caller's lookup and now
        raise NotFound(f"Cluster {cluster.name} could not be found.")
    current = active_operation(session, cluster)
    if current is not None:
        if kind != "delete":
            raise Conflict(
                f"cluster {cluster.name} has an operation in progress ({current.kind}, step "
                f"{current.step or 'queued'}); try again when it has finished"
            )
        if current.kind == "delete":
            return current
        current.state = "superseded"
        current.error = "superseded by delete"
        current.finished_at = utcnow()
    op = Operation(cluster_id=cluster.id, kind=kind, params=params or {}, state="pending")
    if kind == "create":
        op.deadline_at = utcnow() + timedelta(minutes=cluster.create_timeout or 60)
    session.add(op)
    cluster.status = IN_PROGRESS[kind]
    cluster.status_reason = f"{kind} queued" + (f": {params['reason']}" if params and params.get("reason") else "")
    session.flush()
    _record_queued(session, cluster, op)
    return op


def _record_queued(session: Session, cluster: Cluster, op: Operation) -> None:
    params = op.params or {}
    if op.kind == "update" and "node_count" in params:
        kind = "resize.requested"
        where = "the cluster"
        if params.get("nodegroup"):
            name = session.scalar(select(NodeGroup.name).where(NodeGroup.uuid == params["nodegroup"]))
            where = f"nodegroup {name or params['nodegroup']}"
        message = f"resize of {where} to {params['node_count']} node(s) requested"
    else:
        kind = "operation.queued"
        message = f"{op.kind} queued" + (f": {params['reason']}" if params.get("reason") else "")
    events.record(
        session, project_id=cluster.project_id, kind=kind, message=message, cluster_id=cluster.uuid,
        cluster_name=cluster.name, operation_id=op.id, data={"kind": op.kind, "params": params},
    )


def cluster_deleting(status: str) -> bool:
    """Whether a cluster in `status` is being (or failed being) deleted: its nodes and mounts go."""
    return status.startswith("DELETE")


def cluster_changing(status: str) -> bool:
    """Whether an operation is changing the cluster (its nodes may still start or go)."""
    return status in IN_PROGRESS.values()

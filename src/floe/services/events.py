"""Events of a project's clusters: the stored list and the live stream.

Events are recorded where things happen (the engine's steps, `start_operation`, the health
monitor) by `floe.db.events.record`, in the transaction that makes the change. Here they are
read back: a page (`list_events`) or a stream (`stream`) that wakes on this process's commits
(the bell) and polls for other processes' every `poll` seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select

from floe.db.base import utcnow
from floe.db.events import bell
from floe.db.models import Cluster, Event
from floe.db.session import Database
from floe.errors import InvalidInput, NotFound
from floe.runtime import Runtime
from floe.services.identity import Caller
from floe.services.templates import is_uuid_like

MAX_LIMIT = 1000
PAGE = 500  # events a stream reads at once
PRUNE_BATCH = 5000


def view(e: Event) -> dict[str, Any]:
    """An event as the API shows it."""
    return {
        "id": e.id, "time": e.created_at.isoformat(), "project_id": e.project_id, "cluster_id": e.cluster_id,
        "cluster_name": e.cluster_name, "share_id": e.share_id, "kind": e.kind, "level": e.level,
        "message": e.message, "operation": e.operation_id, "step": e.step, "data": e.data or {},
    }


def _cluster_uuid(db: Database, caller: Caller, ident: str) -> str:
    """The uuid of the caller's cluster `ident` (a name or uuid), also of one already deleted
    (found by its events: a stream opened as a delete finishes must still find it)."""
    with db.session() as s:
        base = select(Cluster.uuid).where(Cluster.project_id == caller.project_id)
        if is_uuid_like(ident):
            found = s.scalar(base.where(Cluster.uuid == ident.lower()))
            if found:
                return found
        names = list(s.scalars(base.where(Cluster.name == ident).limit(2)))
        if len(names) == 1:
            return names[0]
        mine = select(Event.cluster_id).where(Event.project_id == caller.project_id)
        if is_uuid_like(ident) and s.scalar(mine.where(Event.cluster_id == ident.lower()).limit(1)):
            return ident.lower()
        if not names:
            gone = s.scalar(mine.where(Event.cluster_name == ident).order_by(Event.id.desc()).limit(1))
            if gone:
                return gone
    if names:
        raise InvalidInput(f"Multiple clusters exist with same name {ident}. Please use the cluster uuid instead.")
    raise NotFound(f"Cluster {ident} could not be found.")


def _check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    return limit


def _scope(caller: Caller, all_projects: bool):
    if all_projects:
        if not caller.is_admin:
            raise NotFound("Only an admin sees every project's events.")
        return None
    return Event.project_id == caller.project_id


def list_events(
    runtime: Runtime, caller: Caller, cluster: str | None = None, since: int | None = None, limit: int = 100,
    *, all_projects: bool = False,
) -> list[dict[str, Any]]:
    """The caller's project's events (of one cluster), oldest first: those after event `since`,
    or else the newest `limit`."""
    _check_limit(limit)
    where = [w for w in (_scope(caller, all_projects),) if w is not None]
    if cluster is not None:
        where.append(Event.cluster_id == _cluster_uuid(runtime.db, caller, cluster))
    with runtime.db.session() as s:
        q = select(Event).where(*where)
        if since is not None:
            rows = list(s.scalars(q.where(Event.id > since).order_by(Event.id).limit(limit)))
        else:
            rows = list(s.scalars(q.order_by(Event.id.desc()).limit(limit)))[::-1]
        return [view(e) for e in rows]


def latest_id(db: Database) -> int:
    with db.session() as s:
        return s.scalar(select(func.max(Event.id))) or 0


class EventStream:
    """Events after `last_id` matching `where`, as they are committed; None after `heartbeat`
    seconds without one (a keep-alive)."""

    def __init__(self, runtime: Runtime, where: list, last_id: int, poll: float, heartbeat: float):
        self.runtime = runtime
        self.where = where
        self.last_id = last_id
        self.poll = poll
        self.heartbeat = heartbeat

    def _fetch(self, after: int) -> list[dict[str, Any]]:
        with self.runtime.db.session() as s:
            q = select(Event).where(Event.id > after, *self.where).order_by(Event.id).limit(PAGE)
            return [view(e) for e in s.scalars(q)]

    async def __aiter__(self) -> AsyncIterator[dict[str, Any] | None]:
        quiet_since = time.monotonic()
        while True:
            seen = bell.rings
            rows = await asyncio.to_thread(self._fetch, self.last_id)
            for row in rows:
                self.last_id = row["id"]
                yield row
            if rows:
                quiet_since = time.monotonic()
                if len(rows) == PAGE:
                    continue
            elif time.monotonic() - quiet_since >= self.heartbeat:
                quiet_since = time.monotonic()
                yield None
            await bell.wait(self.poll, seen)  # a ring since the read is not missed


async def open_stream(
    runtime: Runtime, caller: Caller, cluster: str | None = None, last_id: int | None = None, *,
    all_projects: bool = False, poll: float = 1.0, heartbeat: float = 15.0,
) -> EventStream:
    """The caller's project's events (of one cluster if named) from after `last_id`, or from now.
    The cluster is resolved and the start fixed here (NotFound now, not while streaming)."""
    where = [w for w in (_scope(caller, all_projects),) if w is not None]
    if cluster is not None:
        where.append(Event.cluster_id == await asyncio.to_thread(_cluster_uuid, runtime.db, caller, cluster))
    if last_id is None:
        last_id = await asyncio.to_thread(latest_id, runtime.db)
    return EventStream(runtime, where, last_id, poll, heartbeat)


async def stream(
    runtime: Runtime, caller: Caller, cluster: str | None = None, last_id: int | None = None, *,
    all_projects: bool = False, poll: float = 1.0, heartbeat: float = 15.0,
) -> AsyncIterator[dict[str, Any] | None]:
    """`open_stream` as one async generator."""
    events = await open_stream(runtime, caller, cluster, last_id, all_projects=all_projects, poll=poll,
                               heartbeat=heartbeat)
    async for event in events:
        yield event


def prune(db: Database, days: int) -> int:
    """Delete events older than `days` days, oldest first in batches; returns how many went.

    Ids grow with time, so the old events are the lowest ids: each batch reads the oldest few
    thousand by the primary key (no index on the time, which every insert would pay for)."""
    cutoff = utcnow() - timedelta(days=days)
    gone = 0
    while True:
        with db.session() as s:
            rows = s.execute(select(Event.id, Event.created_at).order_by(Event.id).limit(PRUNE_BATCH)).all()
            old = [i for i, when in rows if when < cutoff]
            if old:
                s.execute(delete(Event).where(Event.id <= old[-1], Event.id >= old[0], Event.created_at < cutoff))
        gone += len(old)
        if len(old) < PRUNE_BATCH:
            return gone

"""Recording events, and ringing a bell in this process when a commit has stored some.

Any layer that writes to the database records an event in its own transaction (`record`),
so an event exists exactly when the change it tells of was committed. The bell lets the
live stream (`services.events.stream`) wake at once for events this process committed;
events committed by another floe process reach it at its next poll.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from floe.db.base import utcnow
from floe.db.models.events import Event

LEVELS = ("info", "warning", "error")
_PENDING = "floe_events_pending"


def record(
    session: Session,
    *,
    project_id: str,
    kind: str,
    message: str,
    cluster_id: str | None = None,
    cluster_name: str = "",
    share_id: str | None = None,
    operation_id: int | None = None,
    step: str = "",
    level: str = "info",
    data: dict[str, Any] | None = None,
) -> None:
    """Add an event to `session`'s transaction; the bell rings when it commits."""
    record_rows(session, [{
        "project_id": project_id, "kind": kind, "message": message, "cluster_id": cluster_id,
        "cluster_name": cluster_name, "share_id": share_id, "operation_id": operation_id, "step": step,
        "level": level, "data": data or {},
    }])


def record_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    """Events in one statement (Core, not ORM objects: a step's commit pays a few tens of µs)."""
    if not rows:
        return
    now = utcnow()
    session.execute(_INSERT, [_row(r, now) for r in rows])
    session.info[_PENDING] = True


_INSERT = Event.__table__.insert()
_DEFAULTS = {"cluster_id": None, "cluster_name": "", "share_id": None, "operation_id": None, "step": "",
             "level": "info", "data": {}}


def _row(r: dict[str, Any], now) -> dict[str, Any]:
    row = {**_DEFAULTS, "created_at": now, **r}
    row["message"] = row["message"][:4000]
    if row["level"] not in LEVELS:
        row["level"] = "info"
    return row


class Bell:
    """Wakes this process's waiters (coroutines on any event loop) after a commit with events."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.rings = 0

    def ring(self) -> None:
        with self._lock:
            self.rings += 1
            waiters = list(self._waiters)
        for loop, ev in waiters:
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:  # that loop has closed: its waiter is gone with it
                pass

    async def wait(self, timeout: float, seen: int | None = None) -> bool:
        """Until the next ring (True) or `timeout` seconds (False); at once if the bell has rung
        since it had rung `seen` times."""
        ev = asyncio.Event()
        key = (asyncio.get_running_loop(), ev)
        with self._lock:
            if seen is not None and self.rings != seen:
                return True
            self._waiters.add(key)
        try:
            await asyncio.wait_for(ev.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                self._waiters.discard(key)


bell = Bell()


@sa_event.listens_for(Session, "after_commit")
def _ring_after_commit(session: Session) -> None:
    if session.info.pop(_PENDING, False):
        bell.ring()


@sa_event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)

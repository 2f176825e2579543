"""Events: what happened to a project's clusters and shares, in order (the `id` orders them)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from floe.db.base import Base, utcnow


class Event(Base):
    """One thing that happened. No foreign keys: a cluster's events outlive it (its deletion is
    one of them), and old events go by age (`services.events.prune`). Two indexes only (a
    project's and a cluster's events in order): every step of every operation writes here."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_project_id_id", "project_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    project_id: Mapped[str] = mapped_column(String(36))
    cluster_id: Mapped[str | None] = mapped_column(String(36), default=None, index=True)  # the cluster's uuid
    cluster_name: Mapped[str] = mapped_column(String(255), default="")
    share_id: Mapped[str | None] = mapped_column(String(36), default=None)  # the share's uuid
    operation_id: Mapped[int | None] = mapped_column(default=None)
    # operation.queued | operation.started | step.started | operation.complete |
    # operation.failed | cluster.deleted | health.changed | node.health | autoheal | share.*
    kind: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(8), default="info")  # info | warning | error
    step: Mapped[str] = mapped_column(String(64), default="")
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict] = mapped_column(default=dict)

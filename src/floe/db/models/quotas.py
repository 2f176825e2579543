"""Per-project quotas: the limits an admin set, and the row a quota check locks.

A project without a `Quota` row for a resource has the default (`Settings.quotas`, from
FLOE_QUOTA_* and FLOE_SHARE_QUOTA_*). Every change a quota limits (a cluster created or grown,
a share created or extended) first takes its project's `QuotaLock` row, so that counting what
the project uses and recording the change happen as one step (docs/quotas.md).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from floe.db.base import Base, utcnow


class Quota(Base):
    """A project's own limit for one resource (clusters, nodes, cores, ram, shares, gigabytes)."""

    __tablename__ = "quotas"
    __table_args__ = (UniqueConstraint("project_id", "resource", name="uq_quotas_project_resource"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    resource: Mapped[str] = mapped_column(String(32))
    hard_limit: Mapped[int] = mapped_column()  # -1: unlimited
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(default=None, onupdate=utcnow)


class QuotaLock(Base):
    """One row per project, made by its first quota-checked change; `changes` counts them.

    Taken with a write (an upsert), which on PostgreSQL locks the row and on SQLite takes the
    database's write lock, until the change commits.
    """

    __tablename__ = "quota_locks"

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    changes: Mapped[int] = mapped_column(default=0)

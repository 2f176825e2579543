"""Background operations (create, update, delete of a cluster), leased by engine workers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from floe.db.base import Base, LeaseColumns, utcnow


class Operation(LeaseColumns, Base):
    """The lease columns come from LeaseColumns; `attempts` counts leases, `retry_at` is unused."""

    __tablename__ = "operations"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # create | update | delete
    # pending -> running -> complete | failed ; superseded when a delete replaces it
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    steps_done: Mapped[list] = mapped_column(default=list)
    params: Mapped[dict] = mapped_column(default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    deadline_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

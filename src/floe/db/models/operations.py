"""Background operations (create, update, delete of a cluster), leased by engine workers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from floe.db.base import Base, utcnow


class Operation(Base):
    __tablename__ = "operations"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # create | update | delete
    # pending -> running -> complete | failed ; superseded when a delete replaces it
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    step: Mapped[str] = mapped_column(String(64), default="")
    steps_done: Mapped[list] = mapped_column(default=list)
    params: Mapped[dict] = mapped_column(default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    lease_owner: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    deadline_at: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(default=0)
    # The step that was running when a holder of this operation died or stopped answering, and
    # how many times in a row that happened to it: the engine gives up on a step that keeps
    # killing or wedging its server (engine.MAX_INTERRUPTIONS) instead of resuming it forever.
    interrupted_step: Mapped[str] = mapped_column(String(64), default="")
    interruptions: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

"""Batch jobs floe submitted to a cluster's Slurm, with the last state Slurm reported.

Slurm forgets a job a while after it ends (MinJobAge); the row keeps its final state, exit code
and times, and goes with its cluster.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from floe.db.base import Base, new_uuid, utcnow


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("cluster_id", "slurm_job_id", name="uq_jobs_cluster_slurm_job_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"), index=True)
    slurm_job_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(64))
    nodes: Mapped[int] = mapped_column()
    image: Mapped[str | None] = mapped_column(String(255), default=None)
    command: Mapped[list] = mapped_column(default=list)  # argv, as given
    shares: Mapped[list] = mapped_column(default=list)  # mount names: /mnt/NAME in the job
    mpi: Mapped[bool] = mapped_column(default=False)
    submitted_by: Mapped[str] = mapped_column(String(64), default="")  # the user's id
    # Slurm's JobState as last seen (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, …).
    state: Mapped[str] = mapped_column(String(32), default="PENDING")
    state_reason: Mapped[str] = mapped_column(Text, default="")
    exit_code: Mapped[int | None] = mapped_column(default=None)
    node_list: Mapped[str] = mapped_column(String(1024), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

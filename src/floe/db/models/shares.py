"""Shares (Manila's field names), their access rules and where they are attached.

A share's work is leased as a whole by the engine (floe.engine.share_work): its own status
change (creating, extending, shrinking, deleting), its queued access rules and its pending
attachments are applied together, one share at a time.
"""

from __future__ import annotations

import uuid as uuidlib
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from floe.db.base import Base, LeaseColumns, new_uuid, utcnow

# Statuses in which a share can be mounted and its rules applied (the API and the engine agree).
USABLE = ("available", "extending_error", "shrinking_error", "shrinking_possible_data_loss_error")
# Access types that name a floe cluster (`user` for clients that allow only Manila's types).
CLUSTER_ACCESS_TYPES = ("floe_cluster", "user")


def export_location_id(share_uuid: str, path: str) -> str:
    """A stable id for one export location of a share (Manila shows one per path)."""
    return str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"floe-share:{share_uuid}:{path}"))


class Share(LeaseColumns, Base):
    """The lease columns come from LeaseColumns; `attempts` counts temporary failures in a row."""

    __tablename__ = "shares"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_shares_project_name"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    user_id: Mapped[str] = mapped_column(String(64), default="")
    # Unique per project when set, so the CLI can name shares (Manila allows duplicates).
    name: Mapped[str | None] = mapped_column(String(255), default=None)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    share_type: Mapped[str] = mapped_column(String(32))  # the backend: local | glusterfs
    share_proto: Mapped[str] = mapped_column(String(32))  # LOCALFS | GLUSTERFS
    size: Mapped[int] = mapped_column()  # GiB
    # creating -> available ; extending | shrinking -> available ; deleting -> (row gone) ; error
    status: Mapped[str] = mapped_column(String(48), default="creating", index=True)
    status_reason: Mapped[str | None] = mapped_column(Text, default=None)
    # The size an extend or shrink goes to; the delete's force flag.
    target_size: Mapped[int | None] = mapped_column(default=None)
    force_delete: Mapped[bool] = mapped_column(default=False)
    metadata_: Mapped[dict] = mapped_column("metadata", default=dict)
    export_locations: Mapped[list] = mapped_column(default=list)
    backend_state: Mapped[dict] = mapped_column(default=dict)
    # Set when the API queues work; the engine clears it when the share has none left.
    needs_work: Mapped[bool] = mapped_column(default=True, index=True)
    # Bumped with every queued change; needs_work is cleared only if it did not move meanwhile.
    work_seq: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(default=None, onupdate=utcnow)

    access_rules: Mapped[list[ShareAccessRule]] = relationship(
        back_populates="share", cascade="all, delete-orphan", order_by="ShareAccessRule.id"
    )
    attachments: Mapped[list[ShareAttachment]] = relationship(
        back_populates="share", cascade="all, delete-orphan", order_by="ShareAttachment.id"
    )


class ShareAccessRule(Base):
    """Who may use a share: a floe cluster (by name or uuid) or, where the backend can, an IP."""

    __tablename__ = "share_access_rules"
    __table_args__ = (
        UniqueConstraint("share_id", "access_type", "access_to", name="uq_share_access_rules_share_type_to"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    share_id: Mapped[int] = mapped_column(ForeignKey("shares.id", ondelete="CASCADE"), index=True)
    access_type: Mapped[str] = mapped_column(String(32))  # floe_cluster | user (same) | ip
    access_to: Mapped[str] = mapped_column(String(255))
    access_level: Mapped[str] = mapped_column(String(2))  # rw | ro
    # queued_to_apply -> active | error ; queued_to_deny -> (row gone) | error
    state: Mapped[str] = mapped_column(String(32), default="queued_to_apply")
    state_reason: Mapped[str | None] = mapped_column(Text, default=None)
    access_key: Mapped[str | None] = mapped_column(String(255), default=None)
    metadata_: Mapped[dict] = mapped_column("metadata", default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(default=None, onupdate=utcnow)

    share: Mapped[Share] = relationship(back_populates="access_rules")


class ShareAttachment(Base):
    """A share mounted at /mnt/<name> on every node of a cluster."""

    __tablename__ = "share_attachments"
    __table_args__ = (
        UniqueConstraint("share_id", "cluster_id", name="uq_share_attachments_share_cluster"),
        UniqueConstraint("cluster_id", "mount_name", name="uq_share_attachments_cluster_mount_name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    share_id: Mapped[int] = mapped_column(ForeignKey("shares.id", ondelete="CASCADE"), index=True)
    # The cluster's delete removes its attachments with it (its nodes and mounts are gone).
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"), index=True)
    mount_name: Mapped[str] = mapped_column(String(64))  # the share is at /mnt/<mount_name> in the nodes
    read_only: Mapped[bool] = mapped_column(default=False)
    # attaching -> attached | error ; detaching -> (row gone)
    state: Mapped[str] = mapped_column(String(16), default="attaching")
    state_reason: Mapped[str | None] = mapped_column(Text, default=None)
    # Nodes seen with the share mounted at the last check.
    nodes_verified: Mapped[list] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(default=None, onupdate=utcnow)

    share: Mapped[Share] = relationship(back_populates="attachments")

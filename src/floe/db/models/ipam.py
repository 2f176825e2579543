"""Address allocations: every subnet floe hands out, so none ever overlaps another."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from floe.db.base import Base, utcnow


class AddressAllocation(Base):
    __tablename__ = "address_allocations"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    # Unique: two allocators racing for the same block cannot both win.
    cidr: Mapped[str] = mapped_column(String(43), unique=True)
    purpose: Mapped[str] = mapped_column(String(32))  # infra | cluster-net | swarm-pool | node-pool
    owner: Mapped[str] = mapped_column(String(64), index=True)  # cluster uuid or "floe"
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

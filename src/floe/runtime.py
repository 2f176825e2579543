"""The objects one floe server process shares between its API and its engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from floe import ipam
from floe.config import Settings
from floe.db.session import Database
from floe.providers.base import InfraProvider
from floe.storage import Backends

#: Owner of the storage network's address allocation in floe's address table.
STORAGE_OWNER = "floe-storage"


class BackgroundWork(Protocol):
    """What the API and services need of the engine: a hint that work is waiting."""

    def wake(self, kind: str | None = None) -> None: ...


@dataclass
class Runtime:
    settings: Settings
    db: Database
    provider: InfraProvider | None = None
    engine: Any = None  # the Engine (floe.engine), wired by the composition root; a BackgroundWork
    _share_backends: Backends | None = field(default=None, repr=False)

    def wake_engine(self, kind: str | None = None) -> None:
        """Hint the engine that new work (of `kind`: "operation", "share") is waiting (it also polls)."""
        if self.engine is not None:
            self.engine.wake(kind)

    @property
    def share_backends(self) -> Backends:
        """The share backends of this home, made once per runtime."""
        if self._share_backends is None:
            self._share_backends = Backends(self.settings.home, self.storage_subnet, self.settings.share_types)
        return self._share_backends

    def storage_subnet(self) -> str:
        """The /24 of floe's range where storage nodes live, reserved once in the address table."""
        from sqlalchemy import select

        from floe.db.models import AddressAllocation

        with self.db.session() as s:
            found = s.scalars(select(AddressAllocation.cidr).where(AddressAllocation.owner == STORAGE_OWNER)).first()
            if found is None:
                (net,) = ipam.allocate(s, self.settings.network, 24, "storage", STORAGE_OWNER)
                found = str(net)
            return found

"""The objects one floe server process shares between its API and its engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from floe.config import Settings
from floe.db.session import Database

if TYPE_CHECKING:
    from floe.engine.engine import Engine
    from floe.providers.base import InfraProvider


@dataclass
class Runtime:
    settings: Settings
    db: Database
    provider: InfraProvider | None = None
    engine: Engine | None = None
    extras: dict = field(default_factory=dict)

    def wake_engine(self) -> None:
        """Hint the engine that new work is waiting (it also polls)."""
        if self.engine is not None:
            self.engine.wake()

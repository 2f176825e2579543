"""Finding a node's flavor in the catalog (the engine, the COE drivers and services share it)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from floe.db.models import Flavor

#: What a node of a cluster, template or nodegroup that names no flavor gets (Magnum's default).
DEFAULT_FLAVOR = "m1.small"


def find_flavor(session: Session, ref: str | None) -> Flavor | None:
    """The flavor with this id, else with this name; None if there is none (or no ref)."""
    if not ref:
        return None
    return session.get(Flavor, ref) or session.scalars(select(Flavor).where(Flavor.name == ref)).first()


def node_flavor(session: Session, ref: str | None, default: str = DEFAULT_FLAVOR) -> Flavor | None:
    """The flavor a node named `ref` runs with: `ref`'s, or the default's when `ref` is empty or
    names no flavor any more (clusters made before flavors were checked); None if neither exists."""
    return find_flavor(session, ref) or find_flavor(session, default)

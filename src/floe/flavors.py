"""Nova's built-in flavors as pure constants (the lowest layer: no database).

The catalog proper is the `flavors` table, seeded with these five by migration 0008 and
managed by admins (services/flavors.py: lookups, checks and `resolve_size`; Nova's API at
/v2.1). What remains here is for code that cannot read the database: the default flavor's name
and the built-in sizes. New code reads the table; this module goes once nothing imports it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Flavor:
    """A node size: `vcpus` virtual CPUs and `ram` MiB of memory."""

    id: str
    name: str
    vcpus: int
    ram: int


CATALOG: tuple[Flavor, ...] = (
    Flavor("1", "m1.tiny", 1, 512),
    Flavor("2", "m1.small", 1, 2048),
    Flavor("3", "m1.medium", 2, 4096),
    Flavor("4", "m1.large", 4, 8192),
    Flavor("5", "m1.xlarge", 8, 16384),
)
# Magnum's own default for flavor_id and master_flavor_id.
DEFAULT_NAME = "m1.small"
_BY_KEY = {f.name: f for f in CATALOG} | {f.id: f for f in CATALOG}
DEFAULT = _BY_KEY[DEFAULT_NAME]


def find(name_or_id: str | None) -> Flavor | None:
    """The catalog's flavor with this name or id, else None."""
    return _BY_KEY.get(name_or_id) if name_or_id else None


def size_of(name_or_id: str | None) -> Flavor:
    """The flavor a node of this flavor_id counts as: the catalog's, or the default."""
    return find(name_or_id) or DEFAULT

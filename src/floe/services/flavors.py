"""Flavors: the node sizes admins offer, as Nova names them (no HTTP here).

The catalog is the `flavors` table (vCPUs, RAM in MiB, disk in GB, GPUs); it starts with Nova's
m1.tiny … m1.xlarge (ids "1".."5"). Everyone reads the public flavors; admins also see private
ones, create flavors and delete those nothing names. A cluster, template or nodegroup names a
flavor by id or by name (`check_flavor` refuses any other); naming none means the default,
m1.small, as in Magnum. `resolve_size` is the flavor a node of a given reference counts as.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from floe.db.flavors import DEFAULT_FLAVOR, find_flavor, node_flavor
from floe.db.models import Cluster, ClusterTemplate, Flavor, NodeGroup
from floe.db.session import Database
from floe.errors import Conflict, Forbidden, InvalidInput, NotFound
from floe.services.identity import Caller

__all__ = [
    "DEFAULT_FLAVOR", "GPU_SPEC", "FlavorSpec", "check_flavor", "create_flavor", "delete_flavor", "extra_specs",
    "get_flavor", "list_flavors", "require_admin", "resolve_size", "set_gpus", "show_flavor",
]

# Bounds on what a flavor may hold: enough for any one machine, small enough for every column.
MAX_NAME = 255
MAX_ID = 64  # the id column's width (Nova allows 255; floe's ids are Nova's "1".."5" or uuids)
MAX_VCPUS = 1024
MAX_RAM_MB = 16 * 1024 * 1024  # 16 TiB
MAX_DISK_GB = 65536
MAX_GPUS = 64
MAX_DESCRIPTION = 65535  # Nova's
MAX_LIMIT = 1000  # Nova's osapi_max_limit
# The one extra spec floe's flavors carry: how many whole host GPUs each node gets.
GPU_SPEC = "floe:gpus"
# Nova's flavor ids: letters, digits, '.', '_', '-' and inner spaces.
_ID = re.compile(r"^(?! )[a-zA-Z0-9. _-]+(?<! )$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Nova's sort keys, each to the column it orders by here; those floe has no column for (every
# flavor holds the same value) order by id alone.
SORT_COLUMNS: dict[str, Any] = {
    "flavorid": Flavor.id, "name": Flavor.name, "memory_mb": Flavor.ram, "root_gb": Flavor.disk,
    "vcpus": Flavor.vcpus, "is_public": Flavor.is_public, "created_at": Flavor.created_at,
    "description": Flavor.description, "id": Flavor.created_at, "updated_at": Flavor.created_at,
    "ephemeral_gb": None, "swap": None, "rxtx_factor": None, "disabled": None, "vcpu_weight": None,
}


class FlavorSpec(BaseModel):
    """A flavor to create: Nova's fields (ram in MiB, disk in GB) and floe's `gpus`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_NAME)
    vcpus: int = Field(ge=1, le=MAX_VCPUS, strict=True)
    ram: int = Field(ge=1, le=MAX_RAM_MB, strict=True)
    disk: int = Field(default=0, ge=0, le=MAX_DISK_GB, strict=True)
    gpus: int = Field(default=0, ge=0, le=MAX_GPUS, strict=True)
    # Nova lets an admin choose the id; otherwise a uuid.
    id: str | None = Field(default=None, min_length=1, max_length=MAX_ID)
    is_public: bool = Field(default=True, strict=True)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if v != v.strip() or _CONTROL.search(v):
            raise ValueError("a flavor name has no leading or trailing spaces and no control characters")
        return v

    @field_validator("id")
    @classmethod
    def _id(cls, v: str | None) -> str | None:
        if v is not None and not _ID.match(v):
            raise ValueError("a flavor id holds only letters, digits, '.', '_', '-' and inner spaces")
        return v


# ---------------------------------------------------------------------------
# Lookups (other services and the engine's callers use these inside their own transactions)


def _locked(session: Session, ref: str, *, exclusive: bool) -> Flavor | None:
    """The flavor with this id, else this name, its row locked until the transaction ends (on
    PostgreSQL; SQLite's one writer at a time needs none): shared by whoever is about to name it,
    exclusive for a delete or a change. So a template or cluster naming a flavor and the flavor's
    delete never both commit: whichever locks second waits, then sees the other's commit."""
    stmt = select(Flavor).with_for_update(read=not exclusive)
    return (session.scalars(stmt.where(Flavor.id == ref)).first()
            or session.scalars(stmt.where(Flavor.name == ref)).first())


def _visible(flavor: Flavor | None, caller: Caller | None) -> Flavor | None:
    """`flavor` if `caller` may see it: public ones to everyone, private ones to admins."""
    if flavor is None or flavor.is_public or caller is None or caller.is_admin:
        return flavor
    return None


def get_flavor(session: Session, name_or_id: str, caller: Caller | None = None) -> Flavor:
    """The flavor with this id, else with this name; NotFound (as Nova words it) if none, or if
    it is private and `caller` is no admin."""
    flavor = _visible(find_flavor(session, name_or_id), caller) if name_or_id else None
    if flavor is None:
        raise NotFound(f"Flavor {name_or_id} could not be found.")
    return flavor


def check_flavor(session: Session, ref: str | None, caller: Caller | None = None) -> Flavor | None:
    """The flavor a template, cluster or nodegroup names (by id or name), None when it names none
    (the default applies); InvalidInput in Magnum's words when there is no such flavor (or it is
    private and `caller` is no admin): the request body is wrong, not the URL."""
    if not ref:
        return None
    flavor = _visible(_locked(session, ref, exclusive=False), caller)
    if flavor is None:
        raise InvalidInput(f"Unable to find flavor {ref}.")
    return flavor


def resolve_size(session: Session, flavor_ref: str | None) -> Flavor:
    """The flavor a node of `flavor_ref` has: that flavor, or the default (m1.small) when the
    reference is empty or names no flavor (a row older than the checks). The default flavor
    cannot be deleted, so NotFound here means the catalog was emptied by hand."""
    flavor = node_flavor(session, flavor_ref)
    if flavor is None:
        raise NotFound(f"Flavor {DEFAULT_FLAVOR} (the default) could not be found.")
    return flavor


def extra_specs(flavor: Flavor) -> dict[str, str]:
    """Nova's extra specs of a flavor: floe's GPU count, when it has GPUs."""
    return {GPU_SPEC: str(flavor.gpus)} if flavor.gpus else {}


# ---------------------------------------------------------------------------
# The API's operations


def require_admin(caller: Caller, action: str) -> None:
    """Forbidden, in Nova's policy words, unless `caller` is an admin."""
    if not caller.is_admin:
        raise Forbidden(f"Policy doesn't allow os_compute_api:{action} to be performed.")


def show_flavor(db: Database, caller: Caller, ident: str) -> Flavor:
    """One flavor the caller may see, by id or name."""
    with db.session() as session:
        return get_flavor(session, ident, caller)


def list_flavors(
    db: Database,
    caller: Caller,
    *,
    is_public: bool | None = True,
    min_disk: int | None = None,
    min_ram: int | None = None,
    limit: int | None = None,
    marker: str | None = None,
    sort_key: str = "flavorid",
    sort_dir: str = "asc",
) -> list[Flavor]:
    """A page of flavors, as Nova lists them: `is_public` True (public ones), False (private
    ones) or None (all) for admins; public ones only for everyone else. At most `limit`
    (default and most: 1000), after the flavor with id `marker`."""
    if sort_key not in SORT_COLUMNS:
        raise InvalidInput(f"Sort key supplied is invalid: {sort_key[:64]}")
    if sort_dir not in ("asc", "desc"):
        raise InvalidInput("Unknown sort direction, must be 'desc' or 'asc'")
    if limit is not None and limit < 0:
        raise InvalidInput("limit param must be positive")
    limit = MAX_LIMIT if limit is None else min(limit, MAX_LIMIT)
    if not caller.is_admin:
        is_public = True
    col = SORT_COLUMNS[sort_key]
    asc = sort_dir == "asc"
    with db.session() as session:
        stmt = select(Flavor)
        if is_public is not None:
            stmt = stmt.where(Flavor.is_public.is_(is_public))
        if min_disk is not None:
            stmt = stmt.where(Flavor.disk >= min_disk)
        if min_ram is not None:
            stmt = stmt.where(Flavor.ram >= min_ram)
        if marker is not None:
            after = session.scalars(stmt.where(Flavor.id == marker)).first()
            if after is None:
                raise InvalidInput(f"marker [{marker[:255]}] not found")
            stmt = stmt.where(_after(col, after, asc))
        order = [] if col is None or col is Flavor.id else [col.asc() if asc else col.desc()]
        order.append(Flavor.id.asc() if asc else Flavor.id.desc())
        return list(session.scalars(stmt.order_by(*order).limit(limit)))


def _after(col: Any, marker: Flavor, asc: bool) -> Any:
    """Rows after `marker` in (col, id) order; only `description` may be NULL (first when ascending)."""
    pk_after = Flavor.id > marker.id if asc else Flavor.id < marker.id
    if col is None or col is Flavor.id:
        return pk_after
    value = getattr(marker, col.key)
    if value is None:  # NULLs come first ascending, last descending
        return or_(col.is_not(None), and_(col.is_(None), pk_after)) if asc else and_(col.is_(None), pk_after)
    if asc:
        return or_(col > value, and_(col == value, pk_after))
    return or_(col < value, and_(col == value, pk_after), col.is_(None))


def create_flavor(db: Database, caller: Caller, spec: FlavorSpec) -> Flavor:
    """Add a flavor (admins). Conflict if its id or name is taken, or would make a reference
    ambiguous (a name that is another flavor's id, or the reverse)."""
    require_admin(caller, "os-flavor-manage:create")
    flavor_id = spec.id or str(uuid.uuid4())
    with db.session() as session:
        if session.get(Flavor, flavor_id) is not None:
            raise Conflict(f"Flavor with ID {flavor_id} already exists.")
        if session.scalars(select(Flavor.id).where(Flavor.name == spec.name)).first() is not None:
            raise Conflict(f"Flavor with name {spec.name} already exists.")
        # Templates and clusters name flavors by id or name: neither may mean two flavors.
        if spec.name != flavor_id and session.get(Flavor, spec.name) is not None:
            raise Conflict(f"Flavor name {spec.name} is another flavor's id: choose a name that is no flavor's id.")
        if spec.name != flavor_id and session.scalars(select(Flavor.id).where(Flavor.name == flavor_id)).first():
            raise Conflict(f"Flavor ID {flavor_id} is another flavor's name: choose an id that is no flavor's name.")
        flavor = Flavor(id=flavor_id, name=spec.name, vcpus=spec.vcpus, ram=spec.ram, disk=spec.disk,
                        gpus=spec.gpus, is_public=spec.is_public, description=spec.description)
        session.add(flavor)
        try:
            session.flush()
        except IntegrityError:  # a concurrent create took the id or the name
            raise Conflict(f"Flavor with ID {flavor_id} or name {spec.name} already exists.") from None
        return flavor


def _users(session: Session, flavor: Flavor) -> dict[str, int]:
    """How many clusters, templates and nodegroups (of any project) name `flavor`."""
    refs = [flavor.id, flavor.name]
    counts = {
        "cluster(s)": select(func.count()).select_from(Cluster).where(
            or_(Cluster.flavor_id.in_(refs), Cluster.master_flavor_id.in_(refs))),
        "cluster template(s)": select(func.count()).select_from(ClusterTemplate).where(
            or_(ClusterTemplate.flavor_id.in_(refs), ClusterTemplate.master_flavor_id.in_(refs))),
        "nodegroup(s)": select(func.count()).select_from(NodeGroup).where(NodeGroup.flavor_id.in_(refs)),
    }
    return {what: n for what, stmt in counts.items() if (n := int(session.scalar(stmt) or 0))}


def _refuse_if_used(session: Session, flavor: Flavor, change: str) -> None:
    if flavor.name == DEFAULT_FLAVOR:
        raise Conflict(f"Flavor {flavor.name} is the default flavor (of every cluster and template that names "
                       f"none) and cannot {change}.")
    users = _users(session, flavor)
    if users:
        named = ", ".join(f"{n} {what}" for what, n in users.items())
        raise Conflict(f"Flavor {flavor.name} ({flavor.id}) is in use by {named} and cannot {change}: "
                       "delete them or move them to another flavor first.")


def delete_flavor(db: Database, caller: Caller, ident: str) -> None:
    """Remove a flavor (admins), by id or name; Conflict while anything names it, and always
    for the default flavor."""
    require_admin(caller, "os-flavor-manage:delete")
    with db.session() as session:
        flavor = _locked(session, ident, exclusive=True) if ident else None
        if flavor is None:
            raise NotFound(f"Flavor {ident} could not be found.")
        _refuse_if_used(session, flavor, "be deleted")
        session.delete(flavor)


def set_gpus(db: Database, caller: Caller, ident: str, gpus: int) -> Flavor:
    """Change a flavor's GPU count (admins; Nova's extra spec `floe:gpus`); Conflict while
    anything names it, as its nodes would no longer match it."""
    require_admin(caller, "os-flavor-extra-specs:create")
    if isinstance(gpus, bool) or not isinstance(gpus, int) or not 0 <= gpus <= MAX_GPUS:
        raise InvalidInput(f"{GPU_SPEC} must be a whole number from 0 to {MAX_GPUS}, not {str(gpus)[:64]!r}")
    with db.session() as session:
        flavor = _locked(session, ident, exclusive=True) if ident else None
        if flavor is None:
            raise NotFound(f"Flavor {ident} could not be found.")
        if flavor.gpus != gpus:
            _refuse_if_used(session, flavor, "change")
            flavor.gpus = gpus
        return flavor

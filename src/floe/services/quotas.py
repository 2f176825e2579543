"""Per-project quotas: what a project may use, what it uses, and the one atomic check (no HTTP).

Six resources, each with a default from the server's settings (FLOE_QUOTA_*,
FLOE_SHARE_QUOTA_*) that an admin may override per project; -1 is unlimited:

    clusters   Magnum "Cluster"   clusters of the project, whatever their status
    nodes      Magnum "Node"      managers + workers of all its clusters
    cores      Magnum "Cores"     vCPUs of those nodes, from their flavors (the flavors table)
    ram        Magnum "RAM"       MiB of those nodes, from their flavors
    shares     Manila "shares"    shares of the project
    gigabytes  Manila "gigabytes" GiB of those shares

A pending change counts at its larger size: a cluster (or nodegroup) being resized counts
max(its node count, the target) nodes, a share being extended max(size, target_size).

A cluster's size is its nodegroups' where it has them (each group's nodes × its flavor, the
default-master group with the cluster's master_count), else its own fields (master_count ×
master_flavor_id + node_count × flavor_id); a group or cluster that names no flavor counts as
the default flavor (services/flavors.py, `resolve_size`).

Atomicity: every change a quota limits calls `lock` first in its transaction, then counts and
records (`enforce`, then the insert or update) before the commit. `lock` upserts the project's
`quota_locks` row: on PostgreSQL that holds the row lock until commit, so a second change of the
same project waits and then counts the first one's rows (READ COMMITTED reads per statement);
on SQLite the write takes the database's write lock at once, before anything is read, so the
counts read afterwards are the newest and nothing else can commit before this transaction does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, load_only

from floe.config import MAX_QUOTA, UNLIMITED, QuotaDefaults, Settings
from floe.db.models import Cluster, NodeGroup, Operation, Quota, QuotaLock, Share
from floe.db.session import Database
from floe.engine.operations import ACTIVE
from floe.errors import Conflict, Forbidden, InvalidInput, NotFound, QuotaExceeded
from floe.services import identity
from floe.services.flavors import resolve_size
from floe.services.identity import Caller
from floe.services.templates import Page, page_of, paginate, validate_paging

CLUSTERS, NODES, CORES, RAM, SHARES, GIGABYTES = "clusters", "nodes", "cores", "ram", "shares", "gigabytes"
RESOURCES = (CLUSTERS, NODES, CORES, RAM, SHARES, GIGABYTES)
CLUSTER_RESOURCES = (CLUSTERS, NODES, CORES, RAM)
SHARE_RESOURCES = (SHARES, GIGABYTES)
# Magnum's resource names (its only one is "Cluster"; floe adds the others, named as Nova names them).
MAGNUM_NAMES = {CLUSTERS: "Cluster", NODES: "Node", CORES: "Cores", RAM: "RAM"}
UNITS = {RAM: " MiB", GIGABYTES: " GiB"}
SORT_KEYS = ("id", "project_id", "resource", "hard_limit", "created_at", "updated_at")


def magnum_resource(name: Any) -> str:
    """The resource a Magnum name stands for ("Cluster", "Node", "Cores", "RAM"; any case)."""
    wanted = str(name).lower() if isinstance(name, str) else None
    for key, magnum in MAGNUM_NAMES.items():
        if wanted in (key, magnum.lower()):
            return key
    shown = repr(name)[:64]
    raise InvalidInput(f"Invalid resource {shown}: floe's cluster quotas are {', '.join(MAGNUM_NAMES.values())}")


def label(resource: str) -> str:
    """How an error names a resource: Magnum's name for cluster resources, Manila's for shares."""
    return MAGNUM_NAMES.get(resource, resource)


def check_limit(value: Any, what: str) -> int:
    """A quota value: a whole number from -1 (unlimited) to MAX_QUOTA, else InvalidInput."""
    if isinstance(value, bool) or not isinstance(value, int) or not UNLIMITED <= value <= MAX_QUOTA:
        shown = repr(value)[:64]
        raise InvalidInput(f"Quota for {what} must be a whole number from -1 (unlimited) to {MAX_QUOTA}, not {shown}")
    return value


# ---------------------------------------------------------------------------
# Limits and usage


def defaults(settings: Settings) -> dict[str, int]:
    d: QuotaDefaults = settings.quotas
    return {r: getattr(d, r) for r in RESOURCES}


def limits(session: Session, settings: Settings, project_id: str) -> dict[str, int]:
    """The project's limit for every resource: its own where an admin set one, else the default."""
    out = defaults(settings)
    for resource, hard_limit in session.execute(
        select(Quota.resource, Quota.hard_limit).where(Quota.project_id == project_id)
    ):
        if resource in out:
            out[resource] = hard_limit
    return out


class _Sizes:
    """(vCPUs, MiB) of a node by flavor reference, each reference read once per count."""

    def __init__(self, session: Session):
        self._session = session
        self._known: dict[str, tuple[int, int]] = {}

    def __call__(self, ref: str | None) -> tuple[int, int]:
        key = ref or ""
        if key not in self._known:
            flavor = resolve_size(self._session, ref)
            self._known[key] = (flavor.vcpus, flavor.ram)
        return self._known[key]


def _size(sizes: _Sizes, counts: list[tuple[int, str | None]]) -> dict[str, int]:
    """Nodes, vCPUs and MiB of (node count, flavor reference) pairs."""
    out = {NODES: 0, CORES: 0, RAM: 0}
    for count, ref in counts:
        vcpus, ram = sizes(ref)
        out[NODES] += count
        out[CORES] += count * vcpus
        out[RAM] += count * ram
    return out


def _counts(cluster: Cluster, groups: list[NodeGroup], workers: int | None = None,
            pending: dict[str | None, int] | None = None) -> list[tuple[int, str | None]]:
    """(nodes, flavor reference) of each part of `cluster`. Its default worker group has
    `workers` nodes when given (a change being checked), else its own count; a group an active
    update takes further counts at the update's target (`pending`: nodegroup uuid, or None for
    the default worker group, → target)."""
    pending = pending or {}
    if not groups:  # a cluster being created, or one older than nodegroups
        base = cluster.node_count if workers is None else workers
        return [(cluster.master_count, cluster.master_flavor_id),
                (max(base, pending.get(None, 0)), cluster.flavor_id)]
    counts = []
    for g in groups:
        default_worker = g.is_default and g.role != "master"
        if g.role == "master":
            ref = g.flavor_id or cluster.master_flavor_id
            count = cluster.master_count if g.is_default else g.node_count
        else:
            ref = g.flavor_id or cluster.flavor_id
            count = workers if default_worker and workers is not None else g.node_count
        target = pending.get(g.uuid, pending.get(None, 0) if default_worker else 0)
        counts.append((max(count, target), ref))
    return counts


def _groups(session: Session, cluster_ids: list[int]) -> dict[int, list[NodeGroup]]:
    out: dict[int, list[NodeGroup]] = {}
    if cluster_ids:
        for g in session.scalars(select(NodeGroup).where(NodeGroup.cluster_id.in_(cluster_ids))):
            out.setdefault(g.cluster_id, []).append(g)
    return out


def cluster_size(session: Session, cluster: Cluster, node_count: int | None = None) -> dict[str, int]:
    """Nodes, vCPUs and MiB of `cluster` (with `node_count` workers in its default worker group
    if given), from its nodegroups when it has them, else from its own fields."""
    groups = _groups(session, [cluster.id]).get(cluster.id, []) if cluster.id is not None else []
    return _size(_Sizes(session), _counts(cluster, groups, node_count))


def nodegroup_size(session: Session, flavor_ref: str | None, node_count: int) -> dict[str, int]:
    """Nodes, vCPUs and MiB of `node_count` nodes of flavor `flavor_ref` (a nodegroup's change)."""
    return _size(_Sizes(session), [(node_count, flavor_ref)])


def _pending(session: Session, project_id: str | None) -> dict[int, dict[str | None, int]]:
    """cluster id → {nodegroup uuid (None: the default worker group) → the node count an active
    update takes it to}, for the project's clusters (every project's with None)."""
    q = (select(Operation.cluster_id, Operation.params).join(Cluster, Cluster.id == Operation.cluster_id)
         .where(Operation.state.in_(ACTIVE), Operation.kind == "update"))
    rows = session.execute(q if project_id is None else q.where(Cluster.project_id == project_id))
    out: dict[int, dict[str | None, int]] = {}
    for cluster_id, params in rows:
        params = params or {}
        target = params.get("node_count")
        group = params.get("nodegroup")
        if isinstance(target, int) and (group is None or isinstance(group, str)):
            out.setdefault(cluster_id, {})[group] = target
    return out


def _default_workers(session: Session, cluster: Cluster) -> int:
    """The workers of `cluster`'s default worker group (its node_count where it has no groups)."""
    if cluster.id is not None:
        count = session.scalars(select(NodeGroup.node_count).where(
            NodeGroup.cluster_id == cluster.id, NodeGroup.is_default.is_(True), NodeGroup.role != "master")).first()
        if count is not None:
            return count
    return cluster.node_count


def counted_workers(session: Session, cluster: Cluster) -> int:
    """The workers `cluster`'s default worker group counts as now: the larger of its node count
    and an active cluster update's target."""
    target = _pending(session, cluster.project_id).get(cluster.id, {}).get(None, 0)
    return max(_default_workers(session, cluster), target)


def cluster_usage(session: Session, project_id: str) -> dict[str, int]:
    """Clusters, nodes, vCPUs and MiB the project uses (a resize in progress at its larger size)."""
    pending = _pending(session, project_id)
    used = {CLUSTERS: 0, NODES: 0, CORES: 0, RAM: 0}
    counted = load_only(Cluster.id, Cluster.node_count, Cluster.master_count, Cluster.flavor_id,
                        Cluster.master_flavor_id, Cluster.project_id)
    clusters = list(session.scalars(select(Cluster).where(Cluster.project_id == project_id).options(counted)))
    groups = _groups(session, [c.id for c in clusters])
    sizes = _Sizes(session)
    for c in clusters:
        used[CLUSTERS] += 1
        for key, value in _size(sizes, _counts(c, groups.get(c.id, []), pending=pending.get(c.id))).items():
            used[key] += value
    return used


def _share_size():
    """A share's counted GiB: the larger of its size and a pending extend's target. CASE, as
    SQLite's two-argument max() is PostgreSQL's greatest() and neither speaks the other's."""
    return case((func.coalesce(Share.target_size, 0) > Share.size, Share.target_size), else_=Share.size)


def share_usage(session: Session, project_id: str) -> dict[str, int]:
    """Shares and GiB the project uses, pending extends at their target size."""
    gigs, count = session.execute(
        select(func.coalesce(func.sum(_share_size()), 0), func.count(Share.id)).where(Share.project_id == project_id)
    ).one()
    return {SHARES: int(count), GIGABYTES: int(gigs)}


def usage(session: Session, project_id: str) -> dict[str, int]:
    return cluster_usage(session, project_id) | share_usage(session, project_id)


def usage_by_project(session: Session) -> dict[str, dict[str, int]]:
    """What every project that uses anything uses, counted as `usage` counts, in four queries of
    columns (no ORM objects): what /metrics reports at each scrape."""
    pending = _pending(session, None)
    groups: dict[int, list] = {}
    for g in session.execute(select(NodeGroup.cluster_id, NodeGroup.uuid, NodeGroup.role, NodeGroup.is_default,
                                    NodeGroup.flavor_id, NodeGroup.node_count)):
        groups.setdefault(g.cluster_id, []).append(g)
    out: dict[str, dict[str, int]] = {}
    sizes = _Sizes(session)
    for c in session.execute(select(Cluster.id, Cluster.project_id, Cluster.node_count, Cluster.master_count,
                                    Cluster.flavor_id, Cluster.master_flavor_id)):
        used = out.setdefault(c.project_id, dict.fromkeys(RESOURCES, 0))
        used[CLUSTERS] += 1
        for key, value in _size(sizes, _counts(c, groups.get(c.id, []), pending=pending.get(c.id))).items():  # type: ignore[arg-type]
            used[key] += value
    for project_id, gigs, count in session.execute(
        select(Share.project_id, func.coalesce(func.sum(_share_size()), 0), func.count(Share.id))
        .group_by(Share.project_id)
    ):
        used = out.setdefault(project_id, dict.fromkeys(RESOURCES, 0))
        used[SHARES], used[GIGABYTES] = int(count), int(gigs)
    return out


def limits_by_project(session: Session, settings: Settings, project_ids: list[str]) -> dict[str, dict[str, int]]:
    """`limits` of each of `project_ids`, in one query."""
    out = {p: defaults(settings) for p in project_ids}
    for project_id, resource, hard_limit in session.execute(select(Quota.project_id, Quota.resource,
                                                                   Quota.hard_limit)):
        if project_id in out and resource in out[project_id]:
            out[project_id][resource] = hard_limit
    return out


# ---------------------------------------------------------------------------
# The atomic check


def lock(session: Session, project_id: str) -> None:
    """Take the project's quota lock until this transaction ends (call it before reading anything).

    An upsert of the project's `quota_locks` row: on PostgreSQL it holds the row's lock (a second
    transaction waits here, then sees the first one's rows); on SQLite it is the transaction's
    first write, which takes the database's write lock before anything is read, so no snapshot
    older than the lock is ever read from.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(QuotaLock).values(project_id=project_id, changes=1)
    stmt = stmt.on_conflict_do_update(index_elements=[QuotaLock.project_id],
                                      set_={"changes": QuotaLock.changes + 1})
    session.execute(stmt)


def enforce(session: Session, settings: Settings, project_id: str, wanted: Mapping[str, int]) -> None:
    """QuotaExceeded unless the project can take `wanted` more of each resource.

    The caller holds `lock` and records the change in the same transaction. Only what grows is
    checked: a change that shrinks a resource is always allowed, even past a lowered quota.
    """
    wanted = {r: n for r, n in wanted.items() if n > 0}
    if not wanted:
        return
    limit = limits(session, settings, project_id)
    if all(limit[r] == UNLIMITED for r in wanted):
        return
    used: dict[str, int] = {}
    if any(r in CLUSTER_RESOURCES for r in wanted):
        used |= cluster_usage(session, project_id)
    if any(r in SHARE_RESOURCES for r in wanted):
        used |= share_usage(session, project_id)
    for resource in RESOURCES:
        if resource not in wanted or limit[resource] == UNLIMITED:
            continue
        if used[resource] + wanted[resource] > limit[resource]:
            raise QuotaExceeded(resource, limit[resource], used[resource], wanted[resource],
                                UNITS.get(resource, ""), label(resource))


# ---------------------------------------------------------------------------
# Reading and setting quotas (Magnum's /v1/quotas, Manila's quota sets)


@dataclass(frozen=True)
class QuotaView:
    """One project's limit for one resource; `id` is None where it is the default (no row)."""

    project_id: str
    resource: str
    hard_limit: int
    id: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def of(cls, row: Quota) -> QuotaView:
        return cls(row.project_id, row.resource, row.hard_limit, row.id, row.created_at, row.updated_at)


def _admin(caller: Caller, what: str) -> None:
    if not caller.is_admin:
        raise Forbidden(f"Only an admin may {what}.")


def _project_id(session: Session, ident: Any, *, in_body: bool = False) -> str:
    """The id of a project named by id or name; NotFound (InvalidInput when named in a body)."""
    if not isinstance(ident, str) or not ident or len(ident) > 255:
        raise InvalidInput(f"Invalid project_id {repr(ident)[:64]}: a project's id or name")
    try:
        return identity.get_project(session, ident).id
    except NotFound as exc:
        if in_body:
            raise InvalidInput(exc.detail) from None
        raise


def _readable(session: Session, caller: Caller, ident: str, what: str = "quotas") -> str:
    """The project id `caller` asks about (by id or name): its own, or any project for an admin.

    Anyone else is Forbidden, whether or not the project exists (nothing about it is revealed).
    """
    if ident == caller.project_id:
        return ident
    try:
        project_id = _project_id(session, ident)
    except (NotFound, InvalidInput):
        if not caller.is_admin:
            raise Forbidden(f"Only an admin may see another project's {what}.") from None
        raise
    if project_id != caller.project_id and not caller.is_admin:
        raise Forbidden(f"Only an admin may see another project's {what}.")
    return project_id


def list_quotas(
    db: Database,
    caller: Caller,
    *,
    all_projects: bool = False,
    resources: tuple[str, ...] = CLUSTER_RESOURCES,
    limit: int | None = None,
    marker: str | None = None,
    sort_key: str = "id",
    sort_dir: str = "asc",
) -> Page[QuotaView]:
    """The quotas admins set (rows, not defaults), of the caller's project or of every project."""
    _admin(caller, "list quotas")
    limit = validate_paging(limit, sort_key, sort_dir, SORT_KEYS)
    with db.session() as session:
        stmt = select(Quota).where(Quota.resource.in_(resources))
        if not all_projects:
            stmt = stmt.where(Quota.project_id == caller.project_id)
        marker_row = None
        if marker is not None:
            number = int(marker) if marker.isascii() and marker.isdigit() and len(marker) < 19 else None
            marker_row = session.scalars(stmt.where(Quota.id == number)).first() if number is not None else None
            if marker_row is None:
                raise InvalidInput(f"marker {marker[:64]} is not a quota in this list")
        rows = paginate(session, stmt, Quota, limit=limit, marker=marker_row, sort_key=sort_key, sort_dir=sort_dir)
        return page_of([QuotaView.of(r) for r in rows], limit, lambda v: str(v.id))


def get_quota(db: Database, settings: Settings, caller: Caller, project: str, resource: str) -> QuotaView:
    """One project's limit for one resource: the admin's row, else the default (id None)."""
    with db.session() as session:
        project_id = _readable(session, caller, project)
        row = session.scalars(select(Quota).where(Quota.project_id == project_id, Quota.resource == resource)).first()
        if row is not None:
            return QuotaView.of(row)
        return QuotaView(project_id, resource, defaults(settings)[resource])


def create_quota(db: Database, caller: Caller, project: Any, resource: str, hard_limit: Any) -> QuotaView:
    """Set a project's own limit for a resource; Conflict if one is set (update it instead)."""
    _admin(caller, "set quotas")
    hard_limit = check_limit(hard_limit, label(resource))
    with db.session() as session:
        project_id = _project_id(session, project, in_body=True)
        exists = select(Quota.id).where(Quota.project_id == project_id, Quota.resource == resource)
        if session.scalars(exists).first() is not None:
            raise Conflict(f"Quota for project {project_id} already exists for resource {label(resource)}")
        row = Quota(project_id=project_id, resource=resource, hard_limit=hard_limit)
        session.add(row)
        try:
            session.flush()
        except IntegrityError:  # the unique constraint: a concurrent create won
            raise Conflict(f"Quota for project {project_id} already exists for resource {label(resource)}") from None
        return QuotaView.of(row)


def _row(session: Session, project: str, resource: str) -> Quota:
    project_id = _project_id(session, project)
    row = session.scalars(select(Quota).where(Quota.project_id == project_id, Quota.resource == resource)).first()
    if row is None:
        raise NotFound(f"Quota for project {project_id} and resource {label(resource)} could not be found "
                       "(the default applies; create one to change it)")
    return row


def update_quota(db: Database, caller: Caller, project: str, resource: str, hard_limit: Any) -> QuotaView:
    """Change a project's own limit for a resource; NotFound if none is set."""
    _admin(caller, "change quotas")
    hard_limit = check_limit(hard_limit, label(resource))
    with db.session() as session:
        row = _row(session, project, resource)
        row.hard_limit = hard_limit
        session.flush()
        return QuotaView.of(row)


def delete_quota(db: Database, caller: Caller, project: str, resource: str) -> None:
    """Remove a project's own limit for a resource: the default applies again."""
    _admin(caller, "delete quotas")
    with db.session() as session:
        session.delete(_row(session, project, resource))


@dataclass(frozen=True)
class QuotaSet:
    """A project's limits (and, for Manila's detail, what it uses) for some resources."""

    project_id: str
    limits: dict[str, int]
    in_use: dict[str, int]


def quota_set(db: Database, settings: Settings, caller: Caller, project: str,
              resources: tuple[str, ...] = SHARE_RESOURCES) -> QuotaSet:
    """The project's limits and usage (its own, or any project's for an admin)."""
    with db.session() as session:
        project_id = _readable(session, caller, project)
        limit = limits(session, settings, project_id)
        used = usage(session, project_id)
        return QuotaSet(project_id, {r: limit[r] for r in resources}, {r: used[r] for r in resources})


def default_set(settings: Settings, resources: tuple[str, ...] = SHARE_RESOURCES) -> dict[str, int]:
    d = defaults(settings)
    return {r: d[r] for r in resources}


def set_quotas(db: Database, settings: Settings, caller: Caller, project: str, values: Mapping[str, Any],
               force: bool = False, resources: tuple[str, ...] = SHARE_RESOURCES) -> QuotaSet:
    """Set several of a project's limits at once (Manila's quota-set update), all or none.

    As Manila does, a limit below what the project already uses is refused unless `force`.
    """
    _admin(caller, "set quotas")
    checked = {r: check_limit(v, r) for r, v in values.items()}
    with db.session() as session:
        project_id = _project_id(session, project)
        lock(session, project_id)  # no change of the project slips between the check and the write
        used = usage(session, project_id)
        for resource, value in checked.items():
            if not force and value != UNLIMITED and used[resource] > value:
                raise InvalidInput(f"Quota value {value} for {resource} is smaller than already used and reserved "
                                   f"{used[resource]}{UNITS.get(resource, '')} (force the update to set it anyway)")
        rows = {r.resource: r for r in session.scalars(
            select(Quota).where(Quota.project_id == project_id, Quota.resource.in_(list(checked))))}
        for resource, value in checked.items():
            if resource in rows:
                rows[resource].hard_limit = value
            else:
                session.add(Quota(project_id=project_id, resource=resource, hard_limit=value))
        session.flush()
        limit = limits(session, settings, project_id)
        return QuotaSet(project_id, {r: limit[r] for r in resources}, {r: used[r] for r in resources})


def reset_quotas(db: Database, caller: Caller, project: str, resources: tuple[str, ...] = SHARE_RESOURCES) -> None:
    """Remove a project's own limits for `resources`: the defaults apply again."""
    _admin(caller, "reset quotas")
    with db.session() as session:
        project_id = _project_id(session, project)
        session.execute(delete(Quota).where(Quota.project_id == project_id, Quota.resource.in_(resources)))


# ---------------------------------------------------------------------------
# Magnum's stats


def stats(db: Database, caller: Caller, project: str | None) -> tuple[int, int]:
    """(clusters, nodes) of a project; an admin asking for no project gets every project's."""
    with db.session() as session:
        if project is None and not caller.is_admin:
            project = caller.project_id
        stmt = select(func.count(Cluster.id), func.coalesce(func.sum(Cluster.node_count + Cluster.master_count), 0))
        if project is not None:
            stmt = stmt.where(Cluster.project_id == _readable(session, caller, project, "stats"))
        count, nodes = session.execute(stmt).one()
        return int(count), int(nodes)

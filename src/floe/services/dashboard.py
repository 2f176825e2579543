"""What the web dashboard reads across projects (no HTTP here).

Every other service acts in its caller's one project. The dashboard shows a user all the
projects they hold a role on, and an admin every project, so it needs to act *as* the caller
in another project: `acting_in` builds that caller (with the roles held there: an admin keeps
admin, a member gets what their assignments give), and refuses a project the caller cannot see
with NotFound, as a cluster of another project is not found. Reads and writes then go through
the usual services with that caller, so their tenancy, validation and quotas apply unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from floe.db.models import Cluster, ClusterTemplate, Project, Role, RoleAssignment, Share, User
from floe.db.session import Database
from floe.errors import Forbidden, NotFound
from floe.runtime import Runtime
from floe.services.identity import Caller, expand_roles
from floe.services.templates import is_uuid_like
from floe.storage.base import ShareRef, Usage


@dataclass(frozen=True)
class ProjectRef:
    id: str
    name: str


@dataclass(frozen=True)
class ClusterRow:
    """One line of the cluster list: only what the list shows (no CA keys, no labels)."""

    uuid: str
    name: str
    project_id: str
    project_name: str
    template_name: str
    coe: str
    status: str
    health_status: str
    master_count: int
    node_count: int
    created_at: datetime


def _held_roles(session: Session, user_id: str) -> dict[str, tuple[str, ...]]:
    """project id → the roles (implied ones included) the user holds there."""
    rows = session.execute(
        select(RoleAssignment.project_id, Role.name).join(Role, Role.id == RoleAssignment.role_id)
        .where(RoleAssignment.user_id == user_id, RoleAssignment.project_id.is_not(None))
    )
    held: dict[str, list[str]] = {}
    for project_id, role in rows:
        held.setdefault(project_id, []).append(role)
    return {p: expand_roles(names) for p, names in held.items()}


def visible_projects(db: Database, caller: Caller) -> list[ProjectRef]:
    """The enabled projects the caller may look at, by name: every one for an admin, else those
    they hold a role on (and the token's own project)."""
    with db.session() as session:
        stmt = select(Project.id, Project.name).where(Project.enabled.is_(True)).order_by(Project.name)
        if not caller.is_admin:
            ids = set(_held_roles(session, caller.user_id)) | ({caller.project_id} - {""})
            stmt = stmt.where(Project.id.in_(ids))
        return [ProjectRef(pid, name) for pid, name in session.execute(stmt)]


def user_name(db: Database, user_id: str) -> str:
    """A user's name (their id if the user is gone: an API token's placeholder user)."""
    with db.session() as session:
        return session.scalar(select(User.name).where(User.id == user_id)) or user_id


def acting_in(db: Database, caller: Caller, project_id: str) -> Caller:
    """The caller acting in `project_id`: itself for its token's project; an admin (with its roles)
    anywhere; anyone else with the roles they hold there. NotFound for a project they cannot see."""
    if project_id == caller.project_id:
        return caller
    with db.session() as session:
        project = session.get(Project, project_id)
        if project is None or not project.enabled:
            raise NotFound(f"Project {project_id} could not be found.")
        roles = caller.roles if caller.is_admin else _held_roles(session, caller.user_id).get(project_id)
        if not roles:
            raise NotFound(f"Project {project_id} could not be found.")
    return Caller(project_id=project_id, user_id=caller.user_id, roles=roles)


def check_can_write(acting: Caller) -> Caller:
    """`acting`, if it may change things in its project (members and admins; the APIs' gate asks
    the same of every write); Forbidden for a reader."""
    if not acting.can_write:
        raise Forbidden("The reader role allows reading only: this needs the member role in the project.")
    return acting


def cluster_owner(db: Database, caller: Caller, ident: str) -> Caller:
    """The caller acting in the project of cluster `ident` (a uuid), if the caller may see it;
    NotFound otherwise (another project's cluster is as absent as one that does not exist)."""
    if not is_uuid_like(ident):
        raise NotFound(f"Cluster {ident} could not be found.")
    with db.session() as session:
        project_id = session.scalars(select(Cluster.project_id).where(Cluster.uuid == ident.lower())).first()
    if project_id is None:
        raise NotFound(f"Cluster {ident} could not be found.")
    try:
        return acting_in(db, caller, project_id)
    except NotFound:
        raise NotFound(f"Cluster {ident} could not be found.") from None


def cluster_rows(db: Database, caller: Caller, project_id: str | None = None) -> list[ClusterRow]:
    """The clusters of one project the caller may see (NotFound otherwise), or of every project
    it may see (`project_id` None), newest first.

    One query of the listed columns only: a thousand clusters are one round trip and no ORM
    objects (what keeps the dashboard's list fast).
    """
    if project_id is not None:
        project_ids = [acting_in(db, caller, project_id).project_id]
    else:
        project_ids = [p.id for p in visible_projects(db, caller)]
    if not project_ids:
        return []
    with db.session() as session:
        stmt = (
            select(Cluster.uuid, Cluster.name, Cluster.project_id, Project.name,
                   func.coalesce(ClusterTemplate.name, ""), Cluster.coe, Cluster.status, Cluster.health_status,
                   Cluster.master_count, Cluster.node_count, Cluster.created_at)
            .join(Project, Project.id == Cluster.project_id)
            .outerjoin(ClusterTemplate, ClusterTemplate.uuid == Cluster.cluster_template_id)
            .where(Cluster.project_id.in_(project_ids))
            .order_by(Cluster.created_at.desc(), Cluster.id.desc())
        )
        return [ClusterRow(*row) for row in session.execute(stmt)]


def share_usage(runtime: Runtime, share: Share) -> Usage | None:
    """Bytes used and available as the share's filesystem reports them; None where it cannot
    tell now (not available yet, or its backend not on this host)."""
    if share.status != "available":
        return None
    try:
        backend = runtime.share_backends.get(share.share_type)
        return backend.usage(ShareRef(id=share.uuid, size_bytes=share.size * 2**30,
                                      state=dict(share.backend_state or {})))
    except Exception:  # a storage error only hides the usage column: the list still shows
        return None

"""Keystone's resources, managed: domains, projects, users, roles, role assignments and
application credentials, each call authorised for its caller (no HTTP here).

Who may do what, after Keystone's default policies: admins manage everything; any user may
read the roles and domains, themselves, the projects they hold a role on, and manage their own
application credentials. Changes that make tokens wrong revoke them at once (identity.revoke_tokens).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from floe.db.models import (
    ApplicationCredential,
    Cluster,
    ClusterTemplate,
    Domain,
    Project,
    Role,
    RoleAssignment,
    Share,
    User,
)
from floe.db.models.identity import DEFAULT_DOMAIN_ID
from floe.db.session import Database
from floe.errors import Conflict, Forbidden, InvalidInput, NotAuthorized, NotFound
from floe.services import passwords
from floe.services.identity import (
    ADMIN_PROJECT,
    Caller,
    create_project,
    expand_roles,
    find_domain,
    now,
    revoke_tokens,
)

# Keystone's own bounds: names up to 255 (users, projects), 64 for domains.
MAX_NAME = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _require_admin(caller: Caller, what: str) -> None:
    if not caller.is_admin:
        raise Forbidden(f"You are not authorized to perform the requested action: {what}.")


def _name(value: str | None, what: str, limit: int = MAX_NAME) -> str:
    if value is None or not value.strip():
        raise InvalidInput(f"The {what} name must not be empty.")
    if len(value) > limit:
        raise InvalidInput(f"The {what} name is longer than {limit} characters.")
    if _CONTROL.search(value):
        raise InvalidInput(f"The {what} name must not contain control characters.")
    return value


def _text(value: str | None, what: str, limit: int = 255) -> str:
    value = value or ""
    if len(value) > limit:
        raise InvalidInput(f"The {what} is longer than {limit} characters.")
    return value


def _domain_id(session: Session, domain_id: str | None) -> str:
    domain_id = domain_id or DEFAULT_DOMAIN_ID
    if session.get(Domain, domain_id) is None:
        raise NotFound(f"Could not find domain: {domain_id}.")
    return domain_id


# -- domains ------------------------------------------------------------------------------------

def list_domains(db: Database, caller: Caller, name: str | None = None) -> list[Domain]:
    with db.session() as s:
        query = select(Domain).order_by(Domain.name)
        if name is not None:
            query = query.where(Domain.name == name)
        return list(s.scalars(query))


def get_domain(db: Database, caller: Caller, domain_id: str) -> Domain:
    with db.session() as s:
        return find_domain(s, domain_id, None)


# -- projects -----------------------------------------------------------------------------------

def _project_ids_of(session: Session, user_id: str) -> set[str]:
    return set(session.scalars(select(RoleAssignment.project_id).where(RoleAssignment.user_id == user_id)))


def list_projects(db: Database, caller: Caller, name: str | None = None, domain_id: str | None = None,
                  enabled: bool | None = None, user_id: str | None = None) -> list[Project]:
    """Every project (admins), or those of `user_id` (admins, or the user themself)."""
    with db.session() as s:
        query = select(Project).order_by(Project.name)
        if user_id is not None:
            if user_id != caller.user_id:
                _require_admin(caller, "identity:list_user_projects")
            query = query.where(Project.id.in_(_project_ids_of(s, user_id)))
        else:
            _require_admin(caller, "identity:list_projects")
        if name is not None:
            query = query.where(Project.name == name)
        if domain_id is not None:
            query = query.where(Project.domain_id == domain_id)
        if enabled is not None:
            query = query.where(Project.enabled.is_(enabled))
        return list(s.scalars(query))


def get_project(db: Database, caller: Caller, project_id: str) -> Project:
    """A project, to an admin or to a user who holds a role on it (404 to others)."""
    with db.session() as s:
        project = s.get(Project, project_id)
        if project is None or not (caller.is_admin or project.id in _project_ids_of(s, caller.user_id)):
            raise NotFound(f"Could not find project: {project_id}.")
        return project


def new_project(db: Database, caller: Caller, name: str | None, domain_id: str | None = None,
                description: str | None = None, enabled: bool | None = True) -> Project:
    _require_admin(caller, "identity:create_project")
    with db.session() as s:
        _domain_id(s, domain_id)
        return create_project(s, _name(name, "project"), _text(description, "description"),
                              True if enabled is None else bool(enabled))


def update_project(db: Database, caller: Caller, project_id: str, name: str | None = None,
                   description: str | None = None, enabled: bool | None = None) -> Project:
    _require_admin(caller, "identity:update_project")
    with db.session() as s:
        project = s.get(Project, project_id)
        if project is None:
            raise NotFound(f"Could not find project: {project_id}.")
        if name is not None and name != project.name:
            if project.name == ADMIN_PROJECT:
                raise Forbidden("The admin project cannot be renamed.")
            name = _name(name, "project")
            if s.scalars(select(Project).where(Project.name == name)).first() is not None:
                raise Conflict(f"Conflict occurred attempting to store project - a project named {name} exists.")
            project.name = name
        if description is not None:
            project.description = _text(description, "description")
        if enabled is not None and bool(enabled) != project.enabled:
            if project.name == ADMIN_PROJECT and not enabled:
                raise Forbidden("The admin project cannot be disabled.")
            project.enabled = bool(enabled)
            if not enabled:
                revoke_tokens(s, project_id=project.id)
        s.flush()
        return project


def delete_project(db: Database, caller: Caller, project_id: str) -> None:
    """Delete a project that owns nothing (clusters and templates must go first)."""
    _require_admin(caller, "identity:delete_project")
    with db.session() as s:
        project = s.get(Project, project_id)
        if project is None:
            raise NotFound(f"Could not find project: {project_id}.")
        if project.name == ADMIN_PROJECT:
            raise Forbidden("The admin project cannot be deleted.")
        owned = s.scalar(select(func.count()).select_from(Cluster).where(Cluster.project_id == project.id)) or 0
        owned += s.scalar(select(func.count()).select_from(ClusterTemplate)
                          .where(ClusterTemplate.project_id == project.id)) or 0
        if owned:
            raise Conflict(f"Project {project_id} still owns clusters or cluster templates: delete them first.")
        if s.scalars(select(Share.id).where(Share.project_id == project.id)).first() is not None:
            raise Conflict(f"Project {project_id} still owns shares: delete them first.")
        revoke_tokens(s, project_id=project.id)
        s.execute(delete(ApplicationCredential).where(ApplicationCredential.project_id == project.id))
        s.execute(delete(RoleAssignment).where(RoleAssignment.project_id == project.id))
        s.delete(project)


# -- users --------------------------------------------------------------------------------------

def _check_password(password: str | None) -> str:
    if password is None or password == "":
        raise InvalidInput("The password must not be empty.")
    if len(password) > 4096:
        raise InvalidInput("The password is longer than 4096 characters.")
    return password


def list_users(db: Database, caller: Caller, name: str | None = None, domain_id: str | None = None,
               enabled: bool | None = None) -> list[User]:
    _require_admin(caller, "identity:list_users")
    with db.session() as s:
        query = select(User).order_by(User.name)
        if name is not None:
            query = query.where(User.name == name)
        if domain_id is not None:
            query = query.where(User.domain_id == domain_id)
        if enabled is not None:
            query = query.where(User.enabled.is_(enabled))
        return list(s.scalars(query))


def get_user(db: Database, caller: Caller, user_id: str) -> User:
    """A user, to an admin or to themself (404 to others, so ids are not confirmed)."""
    with db.session() as s:
        user = s.get(User, user_id)
        if user is None or not (caller.is_admin or user.id == caller.user_id):
            raise NotFound(f"Could not find user: {user_id}.")
        return user


def new_user(db: Database, caller: Caller, name: str | None, password: str | None = None,
             domain_id: str | None = None, default_project_id: str | None = None, enabled: bool | None = True,
             email: str | None = None, description: str | None = None) -> User:
    _require_admin(caller, "identity:create_user")
    name = _name(name, "user")
    hashed = passwords.hash_password(_check_password(password)) if password is not None else None
    with db.session() as s:
        domain = _domain_id(s, domain_id)
        if default_project_id is not None and s.get(Project, default_project_id) is None:
            raise NotFound(f"Could not find project: {default_project_id}.")
        if s.scalars(select(User).where(User.name == name, User.domain_id == domain)).first() is not None:
            raise Conflict(f"Conflict occurred attempting to store user - Duplicate entry found with name {name} "
                           f"at domain ID {domain}.")
        user = User(name=name, domain_id=domain, password_hash=hashed, default_project_id=default_project_id,
                    enabled=True if enabled is None else bool(enabled), email=_text(email, "email") or None,
                    description=_text(description, "description"))
        s.add(user)
        try:
            s.flush()
        except IntegrityError:
            raise Conflict(f"Conflict occurred attempting to store user - Duplicate entry found with name {name}."
                           ) from None
        return user


def update_user(db: Database, caller: Caller, user_id: str, *, name: str | None = None,
                password: str | None = None, enabled: bool | None = None, email: str | None = None,
                description: str | None = None, default_project_id: str | None = None) -> User:
    _require_admin(caller, "identity:update_user")
    hashed = passwords.hash_password(_check_password(password)) if password is not None else None
    with db.session() as s:
        user = s.get(User, user_id)
        if user is None:
            raise NotFound(f"Could not find user: {user_id}.")
        if name is not None and name != user.name:
            name = _name(name, "user")
            if s.scalars(select(User).where(User.name == name, User.domain_id == user.domain_id)).first():
                raise Conflict(f"Conflict occurred attempting to store user - Duplicate entry found with name {name}.")
            user.name = name
        if hashed is not None:
            user.password_hash = hashed
            revoke_tokens(s, user_id=user.id)
        if enabled is not None and bool(enabled) != user.enabled:
            if not enabled and user.id == caller.user_id:
                raise Forbidden("You cannot disable yourself.")
            user.enabled = bool(enabled)
            if not enabled:
                revoke_tokens(s, user_id=user.id)
        if email is not None:
            user.email = _text(email, "email") or None
        if description is not None:
            user.description = _text(description, "description")
        if default_project_id is not None:
            if s.get(Project, default_project_id) is None:
                raise NotFound(f"Could not find project: {default_project_id}.")
            user.default_project_id = default_project_id
        s.flush()
        return user


def change_password(db: Database, caller: Caller, user_id: str, original: str | None, password: str | None) -> None:
    """A user changes their own password, proving the old one; every token of theirs is revoked."""
    if user_id != caller.user_id:
        raise Forbidden("You are not authorized to perform the requested action: identity:change_password.")
    hashed = passwords.hash_password(_check_password(password))
    with db.session() as s:
        user = s.get(User, user_id)
        if user is None or not user.password_hash or not passwords.verify(user.password_hash, original or ""):
            raise NotAuthorized("Error when changing user password: the original password is not right.")
        user.password_hash = hashed
        revoke_tokens(s, user_id=user.id)


def delete_user(db: Database, caller: Caller, user_id: str) -> None:
    """Delete a user: their tokens, roles and application credentials go; what their projects own stays."""
    _require_admin(caller, "identity:delete_user")
    with db.session() as s:
        user = s.get(User, user_id)
        if user is None:
            raise NotFound(f"Could not find user: {user_id}.")
        if user.id == caller.user_id:
            raise Forbidden("You cannot delete yourself.")
        revoke_tokens(s, user_id=user.id)
        s.execute(delete(ApplicationCredential).where(ApplicationCredential.user_id == user.id))
        s.execute(delete(RoleAssignment).where(RoleAssignment.user_id == user.id))
        s.delete(user)


# -- roles and assignments ----------------------------------------------------------------------

def list_roles(db: Database, caller: Caller, name: str | None = None) -> list[Role]:
    with db.session() as s:
        query = select(Role).order_by(Role.name)
        if name is not None:
            query = query.where(Role.name == name)
        return list(s.scalars(query))


def get_role(db: Database, caller: Caller, role_id: str) -> Role:
    with db.session() as s:
        role = s.get(Role, role_id)
        if role is None:
            raise NotFound(f"Could not find role: {role_id}.")
        return role


def _assignment_parts(s: Session, project_id: str, user_id: str, role_id: str) -> tuple[Project, User, Role]:
    project, user, role = s.get(Project, project_id), s.get(User, user_id), s.get(Role, role_id)
    for obj, kind, ident in ((project, "project", project_id), (user, "user", user_id), (role, "role", role_id)):
        if obj is None:
            raise NotFound(f"Could not find {kind}: {ident}.")
    return project, user, role  # type: ignore[return-value]


def grant(db: Database, caller: Caller, project_id: str, user_id: str, role_id: str) -> None:
    """Give a user a role on a project (idempotent)."""
    _require_admin(caller, "identity:create_grant")
    with db.session() as s:
        _assignment_parts(s, project_id, user_id, role_id)
        held = s.scalars(select(RoleAssignment).where(
            RoleAssignment.user_id == user_id, RoleAssignment.project_id == project_id,
            RoleAssignment.role_id == role_id)).first()
        if held is None:
            s.add(RoleAssignment(user_id=user_id, project_id=project_id, role_id=role_id))


def check_grant(db: Database, caller: Caller, project_id: str, user_id: str, role_id: str) -> None:
    """NotFound unless the user holds the role on the project."""
    if not caller.is_admin and caller.user_id != user_id:
        raise Forbidden("You are not authorized to perform the requested action: identity:check_grant.")
    with db.session() as s:
        _assignment_parts(s, project_id, user_id, role_id)
        if s.scalars(select(RoleAssignment.id).where(
                RoleAssignment.user_id == user_id, RoleAssignment.project_id == project_id,
                RoleAssignment.role_id == role_id)).first() is None:
            raise NotFound(f"Could not find role assignment with role: {role_id}, user or group: {user_id}, "
                           f"project, domain, or system: {project_id}.")


def revoke(db: Database, caller: Caller, project_id: str, user_id: str, role_id: str) -> None:
    """Take a role away; the user's tokens in that project are revoked (they carry the old roles)."""
    _require_admin(caller, "identity:revoke_grant")
    with db.session() as s:
        project, user, role = _assignment_parts(s, project_id, user_id, role_id)
        if project.name == ADMIN_PROJECT and role.name == "admin" and user.id == caller.user_id:
            raise Forbidden("You cannot take the admin role from yourself.")
        gone = s.execute(delete(RoleAssignment).where(
            RoleAssignment.user_id == user_id, RoleAssignment.project_id == project_id,
            RoleAssignment.role_id == role_id)).rowcount
        if not gone:
            raise NotFound(f"Could not find role assignment with role: {role_id}, user or group: {user_id}, "
                           f"project, domain, or system: {project_id}.")
        revoke_tokens(s, user_id=user_id, project_id=project_id)


def roles_of(db: Database, caller: Caller, project_id: str, user_id: str) -> list[Role]:
    if not caller.is_admin and caller.user_id != user_id:
        raise Forbidden("You are not authorized to perform the requested action: identity:list_grants.")
    with db.session() as s:
        if s.get(Project, project_id) is None:
            raise NotFound(f"Could not find project: {project_id}.")
        if s.get(User, user_id) is None:
            raise NotFound(f"Could not find user: {user_id}.")
        return list(s.scalars(select(Role).join(RoleAssignment, RoleAssignment.role_id == Role.id).where(
            RoleAssignment.user_id == user_id, RoleAssignment.project_id == project_id).order_by(Role.name)))


@dataclass(frozen=True)
class Assignment:
    role: Role
    user: User
    project: Project


def list_assignments(db: Database, caller: Caller, user_id: str | None = None, project_id: str | None = None,
                     role_id: str | None = None) -> list[Assignment]:
    """Role assignments (admins; a user may list their own)."""
    if not caller.is_admin and user_id != caller.user_id:
        raise Forbidden("You are not authorized to perform the requested action: identity:list_role_assignments.")
    with db.session() as s:
        query = (select(RoleAssignment, Role, User, Project)
                 .join(Role, Role.id == RoleAssignment.role_id).join(User, User.id == RoleAssignment.user_id)
                 .join(Project, Project.id == RoleAssignment.project_id).order_by(RoleAssignment.id))
        if user_id is not None:
            query = query.where(RoleAssignment.user_id == user_id)
        if project_id is not None:
            query = query.where(RoleAssignment.project_id == project_id)
        if role_id is not None:
            query = query.where(RoleAssignment.role_id == role_id)
        return [Assignment(role, user, project) for _, role, user, project in s.execute(query)]


# -- application credentials --------------------------------------------------------------------

@dataclass(frozen=True)
class NewCredential:
    credential: ApplicationCredential
    secret: str
    roles: list[Role]


def _own(caller: Caller, user_id: str, what: str) -> None:
    if caller.user_id != user_id and not caller.is_admin:
        raise Forbidden(f"You are not authorized to perform the requested action: identity:{what}.")


def create_credential(db: Database, caller: Caller, user_id: str, name: str | None, *, secret: str | None = None,
                      description: str | None = None, expires_at: datetime | None = None,
                      roles: list[dict] | None = None, unrestricted: bool | None = False) -> NewCredential:
    """A new application credential of the caller, in the caller's project, with the roles asked
    for (all the caller's, if none) — never more than the caller holds there."""
    if caller.user_id != user_id:
        raise Forbidden("You are not authorized to perform the requested action: "
                        "identity:create_application_credential.")
    if not caller.project_id:
        raise Forbidden("An application credential is made with a project-scoped token.")
    if caller.application_credential_id is not None:
        raise Forbidden("Using method 'application_credential' is not allowed for managing additional "
                        "application credentials.")
    name = _name(name, "application credential")
    if expires_at is not None and expires_at <= now():
        raise InvalidInput("The application credential's expiry is in the past.")
    secret = secret if secret else passwords.new_secret(64)
    if len(secret) > 4096:
        raise InvalidInput("The application credential's secret is longer than 4096 characters.")
    hashed = passwords.hash_password(secret)
    with db.session() as s:
        user = s.get(User, user_id)
        if user is None:
            raise NotFound(f"Could not find user: {user_id}.")
        held = {r.name: r for r in s.scalars(select(Role).join(RoleAssignment, RoleAssignment.role_id == Role.id)
                                              .where(RoleAssignment.user_id == user_id,
                                                     RoleAssignment.project_id == caller.project_id))}
        every = {r.id: r for r in s.scalars(select(Role))}
        wanted: list[Role] = []
        for spec in roles or []:
            if not isinstance(spec, dict) or not (spec.get("id") or spec.get("name")):
                raise InvalidInput("Each role is an object with an id or a name.")
            role = every.get(spec.get("id") or "") or next(
                (r for r in every.values() if r.name == spec.get("name")), None)
            if role is None:
                raise NotFound(f"Could not find role: {spec.get('id') or spec.get('name')}.")
            wanted.append(role)
        if not wanted:
            wanted = list(held.values())
        effective = set(expand_roles(held))
        missing = [r.name for r in wanted if r.name not in effective]
        if missing:
            raise Forbidden(f"You cannot give an application credential roles you do not hold in the project: "
                            f"{', '.join(missing)}.")
        if s.scalars(select(ApplicationCredential).where(ApplicationCredential.user_id == user_id,
                                                         ApplicationCredential.name == name)).first():
            raise Conflict(f"Conflict occurred attempting to store application_credential - Duplicate "
                           f"entry found with name {name}.")
        cred = ApplicationCredential(name=name, description=_text(description, "description"), user_id=user_id,
                                     project_id=caller.project_id, secret_hash=hashed,
                                     role_ids=[r.id for r in wanted], unrestricted=bool(unrestricted),
                                     expires_at=expires_at)
        s.add(cred)
        s.flush()
        return NewCredential(cred, secret, wanted)


def _roles_by_id(s: Session, ids) -> list[Role]:
    return list(s.scalars(select(Role).where(Role.id.in_(list(ids or []))).order_by(Role.name)))


def list_credentials(db: Database, caller: Caller, user_id: str, name: str | None = None
                     ) -> list[tuple[ApplicationCredential, list[Role]]]:
    _own(caller, user_id, "list_application_credentials")
    with db.session() as s:
        query = select(ApplicationCredential).where(ApplicationCredential.user_id == user_id).order_by(
            ApplicationCredential.name)
        if name is not None:
            query = query.where(ApplicationCredential.name == name)
        return [(c, _roles_by_id(s, c.role_ids)) for c in s.scalars(query)]


def get_credential(db: Database, caller: Caller, user_id: str, cred_id: str
                   ) -> tuple[ApplicationCredential, list[Role]]:
    _own(caller, user_id, "get_application_credential")
    with db.session() as s:
        cred = s.get(ApplicationCredential, cred_id)
        if cred is None or cred.user_id != user_id:
            raise NotFound(f"Could not find Application Credential: {cred_id}.")
        return cred, _roles_by_id(s, cred.role_ids)


def delete_credential(db: Database, caller: Caller, user_id: str, cred_id: str) -> None:
    """Delete an application credential; the tokens it issued are revoked."""
    _own(caller, user_id, "delete_application_credential")
    if caller.application_credential_id is not None and caller.application_credential_id != cred_id:
        raise Forbidden("Using method 'application_credential' is not allowed for managing additional "
                        "application credentials.")
    with db.session() as s:
        cred = s.get(ApplicationCredential, cred_id)
        if cred is None or cred.user_id != user_id:
            raise NotFound(f"Could not find Application Credential: {cred_id}.")
        revoke_tokens(s, application_credential_id=cred.id)
        s.delete(cred)

"""Who a request acts as: tokens, how they are issued and checked, and the admin bootstrap (no HTTP).

A token's secret is shown once, when it is issued; only its SHA-256 is stored, so a database
dump does not hand out working credentials. Tokens issued to users (`issue_token`) expire and
carry the role names their user held in the scope when they were issued; revoking a token is
deleting its row, and floe deletes the rows of every token a change makes wrong (a user
disabled or deleted, a role taken away, a project disabled or deleted, an application
credential deleted), so checking a token is one indexed read.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from floe.db.models import ApplicationCredential, Domain, Project, Role, RoleAssignment, Token, User
from floe.db.models.identity import DEFAULT_DOMAIN_ID
from floe.db.session import Database
from floe.errors import Conflict, Forbidden, InvalidInput, NotAuthorized, NotFound
from floe.services import passwords

ADMIN_PROJECT = "admin"
ADMIN_USER = "admin"
DEFAULT_DOMAIN_NAME = "Default"
BOOTSTRAP_DESCRIPTION = "bootstrap admin token"
TOKEN_PREFIX = "floe_"
#: The roles every floe has, weakest first: readers read, members create and change, admins
#: act across projects and manage identity. Each implies the ones before it.
ROLES = ("reader", "member", "admin")
IMPLIED = {"admin": ("admin", "member", "reader"), "member": ("member", "reader"), "reader": ("reader",)}


def expand_roles(names) -> tuple[str, ...]:
    """Role names with those they imply (admin → member → reader), in ROLES order, then others."""
    have: set[str] = set()
    for name in names:
        have.update(IMPLIED.get(name, (name,)))
    return tuple(sorted(have, key=lambda n: (ROLES.index(n) if n in ROLES else len(ROLES), n)))


@dataclass(frozen=True)
class Caller:
    """Who a request acts as: every resource is scoped to `project_id` ("" for a token with no
    project scope, which only the identity API accepts)."""

    project_id: str
    user_id: str
    is_admin: bool = False
    roles: tuple[str, ...] = ()
    # The application credential the token came from, if any (it may not make another).
    application_credential_id: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        roles = self.roles or (("admin",) if self.is_admin else ("member",))
        object.__setattr__(self, "roles", expand_roles(roles))
        object.__setattr__(self, "is_admin", "admin" in self.roles)

    @property
    def can_write(self) -> bool:
        """Members and admins create and change; readers only read."""
        return "member" in self.roles


def hash_token(secret: str) -> str:
    """The hex SHA-256 under which a token is stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def now() -> datetime:
    return datetime.now(UTC)


# -- projects (the parts the rest of floe uses; the rest is in services.accounts) ---------------

def create_project(session: Session, name: str, description: str = "", enabled: bool = True) -> Project:
    """Create a project in the Default domain; Conflict if the name is taken."""
    if session.scalars(select(Project).where(Project.name == name)).first() is not None:
        raise Conflict(f"a project named {name} already exists")
    project = Project(name=name, description=description, enabled=enabled, domain_id=DEFAULT_DOMAIN_ID)
    session.add(project)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"a project named {name} already exists") from None
    return project


def get_project(session: Session, name_or_id: str) -> Project:
    """A project by id or name; NotFound otherwise."""
    project = session.get(Project, name_or_id)
    if project is None:
        project = session.scalars(select(Project).where(Project.name == name_or_id)).first()
    if project is None:
        raise NotFound(f"project {name_or_id} could not be found")
    return project


# -- tokens -------------------------------------------------------------------------------------

def _new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_token(
    session: Session,
    project_id: str,
    is_admin: bool = False,
    description: str = "",
    user_id: str | None = None,
    roles: tuple[str, ...] = (),
) -> str:
    """Create an API token (no expiry) acting in `project_id` and return its secret (shown only now)."""
    if session.get(Project, project_id) is None:
        raise NotFound(f"project {project_id} could not be found")
    secret = _new_secret()
    names = expand_roles(roles or (("admin",) if is_admin else ("member",)))
    session.add(
        Token(
            project_id=project_id,
            token_sha256=hash_token(secret),
            user_id=user_id or ("admin" if is_admin else "member"),
            is_admin="admin" in names,
            roles=",".join(names),
            description=description,
            methods="token",
            audit_id=_audit_id(),
        )
    )
    session.flush()
    return secret


def _audit_id() -> str:
    return secrets.token_urlsafe(16)[:22]


def authenticate_until(db: Database, secret: str | None) -> tuple[Caller, datetime | None]:
    """The caller a token secret stands for and when the token expires (None: never);
    NotAuthorized if it is missing, unknown, revoked or expired."""
    if not secret:
        raise NotAuthorized("Authentication required: send a token in the X-Auth-Token header")
    with db.session() as session:
        token = session.scalars(select(Token).where(Token.token_sha256 == hash_token(secret))).first()
        if token is None or (token.expires_at is not None and token.expires_at <= now()):
            raise NotAuthorized("The token in X-Auth-Token is not valid (unknown, expired or revoked)")
        roles = tuple(r for r in token.roles.split(",") if r)
        caller = Caller(project_id=token.project_id or "", user_id=token.user_id,
                        roles=roles or (("admin",) if token.is_admin else ("member",)),
                        application_credential_id=token.application_credential_id)
        return caller, token.expires_at


def authenticate(db: Database, secret: str | None) -> Caller:
    """The caller a token secret stands for; NotAuthorized if it is missing or not valid."""
    return authenticate_until(db, secret)[0]


@dataclass(frozen=True)
class TokenInfo:
    """What Keystone says about a token: its user, scope, roles and lifetime."""

    user_id: str
    user_name: str
    user_domain_id: str
    methods: tuple[str, ...]
    issued_at: datetime
    expires_at: datetime | None
    audit_id: str
    project_id: str | None = None
    project_name: str | None = None
    project_domain_id: str | None = None
    domain_id: str | None = None
    domain_name: str | None = None
    roles: tuple[tuple[str, str], ...] = ()  # (id, name)
    application_credential: tuple[str, str, bool] | None = None  # (id, name, restricted)
    password_expires_at: None = None


@dataclass(frozen=True)
class Issued:
    secret: str
    info: TokenInfo


def _role_ids(session: Session, names) -> tuple[tuple[str, str], ...]:
    rows = {r.name: r.id for r in session.scalars(select(Role))}
    return tuple((rows.get(n, n), n) for n in names)


def _user_roles_on(session: Session, user_id: str, project_id: str) -> tuple[str, ...]:
    names = session.scalars(
        select(Role.name).join(RoleAssignment, RoleAssignment.role_id == Role.id)
        .where(RoleAssignment.user_id == user_id, RoleAssignment.project_id == project_id)
    ).all()
    return expand_roles(names)


def _info(session: Session, token: Token) -> TokenInfo:
    user = session.get(User, token.user_id)
    project = session.get(Project, token.project_id) if token.project_id else None
    domain = session.get(Domain, token.domain_id) if token.domain_id else None
    app_cred = (session.get(ApplicationCredential, token.application_credential_id)
                if token.application_credential_id else None)
    roles = tuple(r for r in token.roles.split(",") if r)
    return TokenInfo(
        user_id=token.user_id, user_name=user.name if user else token.user_id,
        user_domain_id=user.domain_id if user else DEFAULT_DOMAIN_ID,
        methods=tuple(m for m in token.methods.split(",") if m) or ("token",),
        issued_at=token.created_at, expires_at=token.expires_at, audit_id=token.audit_id or token.id,
        project_id=project.id if project else None, project_name=project.name if project else None,
        project_domain_id=project.domain_id if project else None,
        domain_id=domain.id if domain else None, domain_name=domain.name if domain else None,
        roles=_role_ids(session, roles) if (project or domain) else (),
        application_credential=(app_cred.id, app_cred.name, not app_cred.unrestricted) if app_cred else None,
    )


@dataclass(frozen=True)
class Scope:
    """What a token is asked to act in: a project (by id, or by name and domain), a domain, or nothing."""

    project_id: str | None = None
    project_name: str | None = None
    project_domain_id: str | None = None
    project_domain_name: str | None = None
    domain_id: str | None = None
    domain_name: str | None = None
    # `"scope": "unscoped"`: no project, not even the user's default one.
    unscoped: bool = False

    @property
    def empty(self) -> bool:
        return not (self.project_id or self.project_name or self.domain_id or self.domain_name)


def find_domain(session: Session, domain_id: str | None, domain_name: str | None) -> Domain:
    """A domain by id or name; NotAuthorized-safe lookups are the callers' business."""
    domain = None
    if domain_id:
        domain = session.get(Domain, domain_id)
    elif domain_name:
        domain = session.scalars(select(Domain).where(Domain.name == domain_name)).first()
    if domain is None:
        raise NotFound(f"Could not find domain: {domain_id or domain_name}.")
    return domain


def _scope_project(session: Session, scope: Scope) -> Project:
    project = None
    if scope.project_id:
        project = session.get(Project, scope.project_id)
    else:
        try:
            domain = find_domain(session, scope.project_domain_id, scope.project_domain_name)
        except NotFound:
            raise NotAuthorized("The request you have made requires authentication.") from None
        project = session.scalars(
            select(Project).where(Project.name == scope.project_name, Project.domain_id == domain.id)).first()
    if project is None or not project.enabled:
        raise NotAuthorized("The request you have made requires authentication.")
    return project


def _store(session: Session, user: User, methods: tuple[str, ...], expires_at: datetime | None,
           audit_id: str | None = None, project: Project | None = None, domain: Domain | None = None,
           roles: tuple[str, ...] = (), app_cred: ApplicationCredential | None = None) -> Issued:
    secret = _new_secret()
    token = Token(
        token_sha256=hash_token(secret), user_id=user.id, project_id=project.id if project else None,
        domain_id=domain.id if domain else None, is_admin="admin" in roles, roles=",".join(roles),
        methods=",".join(methods), expires_at=expires_at, audit_id=audit_id or _audit_id(),
        application_credential_id=app_cred.id if app_cred else None, description="keystone",
        created_at=now(),
    )
    session.add(token)
    # Tokens that expired a while ago are only clutter: each issue sweeps its user's.
    session.execute(delete(Token).where(Token.user_id == user.id, Token.expires_at < now() - timedelta(hours=1)))
    session.flush()
    return Issued(secret, _info(session, token))


def _check_user(user: User | None) -> User:
    if user is None or not user.enabled:
        raise NotAuthorized("The request you have made requires authentication.")
    return user


def _find_user(session: Session, user_id: str | None, name: str | None, domain_id: str | None,
               domain_name: str | None) -> User | None:
    if user_id:
        return session.get(User, user_id)
    if not name:
        raise InvalidInput("The user needs an id, or a name and a domain.")
    try:
        domain = find_domain(session, domain_id, domain_name) if (domain_id or domain_name) else None
    except NotFound:
        return None
    if domain is None:
        raise InvalidInput("A user given by name needs a domain (id or name).")
    return session.scalars(select(User).where(User.name == name, User.domain_id == domain.id)).first()


def _scoped(session: Session, user: User, scope: Scope, methods: tuple[str, ...], expires_at: datetime,
            audit_id: str | None = None) -> Issued:
    """A token for `user` in `scope` (their default project if none), with the roles they hold there."""
    if scope.empty and user.default_project_id and not scope.unscoped:
        scope = Scope(project_id=user.default_project_id)
    if scope.project_id or scope.project_name:
        project = _scope_project(session, scope)
        roles = _user_roles_on(session, user.id, project.id)
        if not roles:
            raise NotAuthorized("The request you have made requires authentication: the user has no role "
                                "on the project.")
        return _store(session, user, methods, expires_at, audit_id, project=project, roles=roles)
    if scope.domain_id or scope.domain_name:
        try:
            domain = find_domain(session, scope.domain_id, scope.domain_name)
        except NotFound:
            raise NotAuthorized("The request you have made requires authentication.") from None
        # floe keeps roles on projects only: a domain scope is given to admins (for the identity API).
        admin = session.scalars(
            select(RoleAssignment.id).join(Role, Role.id == RoleAssignment.role_id)
            .where(RoleAssignment.user_id == user.id, Role.name == "admin")).first()
        if admin is None:
            raise NotAuthorized("The request you have made requires authentication: the user has no role "
                                "on the domain.")
        return _store(session, user, methods, expires_at, audit_id, domain=domain, roles=expand_roles(["admin"]))
    return _store(session, user, methods, expires_at, audit_id)


def issue_for_password(db: Database, *, password: str, scope: Scope, lifetime: float, user_id: str | None = None,
                       name: str | None = None, domain_id: str | None = None,
                       domain_name: str | None = None) -> Issued:
    """A token for a user who proved their password; NotAuthorized (saying nothing more) otherwise."""
    with db.session() as session:
        user = _find_user(session, user_id, name, domain_id, domain_name)
        ok = user is not None and user.password_hash and passwords.verify(user.password_hash, password)
        if not ok:
            raise NotAuthorized("The request you have made requires authentication.")
        return _scoped(session, _check_user(user), scope, ("password",), now() + timedelta(seconds=lifetime))


def issue_for_token(db: Database, *, secret: str, scope: Scope, lifetime: float) -> Issued:
    """A token rescoped from another (no longer-lived than it, or than `lifetime` from an API
    token, which does not expire; same audit chain)."""
    with db.session() as session:
        old = session.scalars(select(Token).where(Token.token_sha256 == hash_token(secret))).first()
        if old is None or (old.expires_at is not None and old.expires_at <= now()):
            raise NotAuthorized("The request you have made requires authentication.")
        if old.application_credential_id:
            raise Forbidden("A token from an application credential cannot be rescoped.")
        user = _check_user(session.get(User, old.user_id))
        expires = old.expires_at or now() + timedelta(seconds=lifetime)
        methods = tuple(dict.fromkeys([*(m for m in old.methods.split(",") if m), "token"]))
        return _scoped(session, user, scope, methods, expires, audit_id=old.audit_id)


def issue_for_application_credential(db: Database, *, secret: str, lifetime: float, cred_id: str | None = None,
                                     name: str | None = None, user_id: str | None = None,
                                     user_name: str | None = None, user_domain_id: str | None = None,
                                     user_domain_name: str | None = None) -> Issued:
    """A token for an application credential: its project, its roles (those the user still holds)."""
    with db.session() as session:
        cred = None
        if cred_id:
            cred = session.get(ApplicationCredential, cred_id)
        elif name:
            owner = _find_user(session, user_id, user_name, user_domain_id, user_domain_name)
            if owner is not None:
                cred = session.scalars(select(ApplicationCredential).where(
                    ApplicationCredential.user_id == owner.id, ApplicationCredential.name == name)).first()
        else:
            raise InvalidInput("An application credential needs an id, or a name and its user.")
        if cred is None or not passwords.verify(cred.secret_hash, secret) or (
                cred.expires_at is not None and cred.expires_at <= now()):
            raise NotAuthorized("The request you have made requires authentication.")
        user = _check_user(session.get(User, cred.user_id))
        project = session.get(Project, cred.project_id)
        if project is None or not project.enabled:
            raise NotAuthorized("The request you have made requires authentication.")
        held = set(_user_roles_on(session, user.id, project.id))
        wanted = {r.name for r in session.scalars(select(Role).where(Role.id.in_(cred.role_ids or [])))}
        roles = expand_roles(wanted & held)
        if not roles:
            raise NotAuthorized(f"User {user.id} no longer holds the roles of application credential {cred.id}.")
        expires = now() + timedelta(seconds=lifetime)
        if cred.expires_at is not None:
            expires = min(expires, cred.expires_at)
        return _store(session, user, ("application_credential",), expires, project=project, roles=roles,
                      app_cred=cred)


def caller_for_login(db: Database, username: str, secret: str) -> Caller:
    """The caller behind a login that is not a token (a registry's HTTP Basic): `USER@PROJECT`
    with the user's password, or an application credential's id with its secret. Nothing is
    stored; NotAuthorized otherwise."""
    with db.session() as session:
        if "@" in username:
            name, project_name = username.rsplit("@", 1)
            user = session.scalars(select(User).where(User.name == name,
                                                      User.domain_id == DEFAULT_DOMAIN_ID)).first()
            if user is None or not user.password_hash or not passwords.verify(user.password_hash, secret):
                raise NotAuthorized("The request you have made requires authentication.")
            _check_user(user)
            project = _scope_project(session, Scope(project_name=project_name,
                                                    project_domain_id=DEFAULT_DOMAIN_ID))
            roles = _user_roles_on(session, user.id, project.id)
        else:
            cred = session.get(ApplicationCredential, username)
            if cred is None or not passwords.verify(cred.secret_hash, secret) or (
                    cred.expires_at is not None and cred.expires_at <= now()):
                raise NotAuthorized("The request you have made requires authentication.")
            user = _check_user(session.get(User, cred.user_id))
            project = _scope_project(session, Scope(project_id=cred.project_id))
            wanted = {r.name for r in session.scalars(select(Role).where(Role.id.in_(cred.role_ids or [])))}
            roles = expand_roles(wanted & set(_user_roles_on(session, user.id, project.id)))
        if not roles:
            raise NotAuthorized("The request you have made requires authentication.")
        return Caller(project_id=project.id, user_id=user.id, roles=roles)


def token_info(db: Database, secret: str) -> TokenInfo:
    """What a token is (for GET /v3/auth/tokens); NotFound if it is unknown, revoked or expired."""
    with db.session() as session:
        token = session.scalars(select(Token).where(Token.token_sha256 == hash_token(secret))).first()
        if token is None or (token.expires_at is not None and token.expires_at <= now()):
            raise NotFound("Could not find token.")
        return _info(session, token)


def revoke_token(db: Database, secret: str) -> None:
    """Revoke one token; NotFound if it is unknown or already gone."""
    with db.session() as session:
        gone = session.execute(delete(Token).where(Token.token_sha256 == hash_token(secret))).rowcount
        if not gone:
            raise NotFound("Could not find token.")


def revoke_tokens(session: Session, *, user_id: str | None = None, project_id: str | None = None,
                  application_credential_id: str | None = None) -> None:
    """Revoke every token of a user (in a project, if given), of a project, or of an application credential."""
    query = delete(Token)
    if user_id is not None:
        query = query.where(Token.user_id == user_id)
    if project_id is not None:
        query = query.where(Token.project_id == project_id)
    if application_credential_id is not None:
        query = query.where(Token.application_credential_id == application_credential_id)
    session.execute(query)


# -- the bootstrap ------------------------------------------------------------------------------

def _write_secret(path: Path, secret: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Create with 0600 from the start so the secret is never world-readable,
    # and chmod in case the file already existed with wider permissions.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (secret + "\n").encode())
    finally:
        os.close(fd)


def ensure_identity_base(session: Session) -> tuple[Project, User]:
    """The Default domain, the three roles, the admin project and the admin user holding admin
    there: made once, idempotently (first start, or a database from before identity)."""
    if session.get(Domain, DEFAULT_DOMAIN_ID) is None:
        session.add(Domain(id=DEFAULT_DOMAIN_ID, name=DEFAULT_DOMAIN_NAME,
                           description="The default domain"))
    for name in ROLES:
        if session.scalars(select(Role).where(Role.name == name)).first() is None:
            session.add(Role(id=uuid.uuid5(uuid.NAMESPACE_URL, f"floe-role:{name}").hex, name=name))
    session.flush()
    project = session.scalars(select(Project).where(Project.name == ADMIN_PROJECT)).first()
    if project is None:
        project = create_project(session, ADMIN_PROJECT, description="Bootstrap project for initializing the cloud.")
    user = session.scalars(select(User).where(User.name == ADMIN_USER, User.domain_id == DEFAULT_DOMAIN_ID)).first()
    if user is None:
        user = User(name=ADMIN_USER, domain_id=DEFAULT_DOMAIN_ID, default_project_id=project.id)
        session.add(user)
        session.flush()
    admin_role = session.scalars(select(Role).where(Role.name == "admin")).one()
    held = session.scalars(select(RoleAssignment).where(
        RoleAssignment.user_id == user.id, RoleAssignment.project_id == project.id,
        RoleAssignment.role_id == admin_role.id)).first()
    if held is None:
        session.add(RoleAssignment(user_id=user.id, project_id=project.id, role_id=admin_role.id))
    # API tokens from before identity named their user "admin": they are the admin user's.
    session.execute(update(Token).where(Token.user_id == "admin", Token.project_id == project.id)
                    .values(user_id=user.id))
    session.flush()
    return project, user


def bootstrap_admin(db: Database, token_file: Path, password_file: Path | None = None) -> str | None:
    """Make sure the identity base exists and the admin has a usable token (and password).

    On first start this creates the Default domain, the roles, the "admin" project, the admin
    user with the admin role there, and an admin API token whose secret goes to `token_file`
    (mode 0600, parent directories created; the local CLI uses it) and is returned. The admin
    user's password is FLOE_ADMIN_PASSWORD if set, else a random one written to
    `password_file` (mode 0600). If an admin token exists and the file is present it does
    nothing more and returns None. If the file was lost, the secret is unrecoverable: earlier
    bootstrap tokens are revoked and a new one is written and returned.
    """
    token_file = Path(token_file)
    password_file = Path(password_file) if password_file else token_file.with_name("admin-password")
    with db.session() as session:
        project, user = ensure_identity_base(session)
        if user.password_hash is None:
            password = os.environ.get("FLOE_ADMIN_PASSWORD") or passwords.new_secret(18)
            user.password_hash = passwords.hash_password(password)
            if not os.environ.get("FLOE_ADMIN_PASSWORD"):
                _write_secret(password_file, password)
        has_admin = (
            session.scalars(
                select(Token).where(Token.project_id == project.id, Token.is_admin.is_(True),
                                    Token.description == BOOTSTRAP_DESCRIPTION)
            ).first()
            is not None
        )
        if has_admin and token_file.is_file():
            return None
        session.execute(
            delete(Token).where(
                Token.project_id == project.id, Token.description == BOOTSTRAP_DESCRIPTION
            )
        )
        secret = create_token(session, project.id, is_admin=True, description=BOOTSTRAP_DESCRIPTION,
                              user_id=user.id)
        # Write before commit: if writing fails, no token exists that nobody knows.
        _write_secret(token_file, secret)
    return secret

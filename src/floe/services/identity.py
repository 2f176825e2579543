"""Projects, API tokens and who a request acts as (no HTTP here).

A token's secret is shown once, when it is created; only its SHA-256 is stored,
so a database dump does not hand out working credentials.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from floe.db.models import Project, Token
from floe.db.session import Database
from floe.errors import Conflict, NotAuthorized, NotFound

ADMIN_PROJECT = "admin"
BOOTSTRAP_DESCRIPTION = "bootstrap admin token"
TOKEN_PREFIX = "floe_"


@dataclass(frozen=True)
class Caller:
    """Who a request acts as: every resource is scoped to `project_id`."""

    project_id: str
    user_id: str
    is_admin: bool = False


def hash_token(secret: str) -> str:
    """The hex SHA-256 under which a token is stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_project(session: Session, name: str) -> Project:
    """Create a project; Conflict if the name is taken."""
    if session.scalars(select(Project).where(Project.name == name)).first() is not None:
        raise Conflict(f"a project named {name} already exists")
    project = Project(name=name)
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


def create_token(
    session: Session,
    project_id: str,
    is_admin: bool = False,
    description: str = "",
    user_id: str | None = None,
) -> str:
    """Create a token acting in `project_id` and return its secret (shown only now)."""
    if session.get(Project, project_id) is None:
        raise NotFound(f"project {project_id} could not be found")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        Token(
            project_id=project_id,
            token_sha256=hash_token(secret),
            user_id=user_id or ("admin" if is_admin else "member"),
            is_admin=is_admin,
            description=description,
        )
    )
    session.flush()
    return secret


def authenticate(db: Database, secret: str | None) -> Caller:
    """The caller a token secret stands for; NotAuthorized if it is missing or unknown."""
    if not secret:
        raise NotAuthorized("Authentication required: send a token in the X-Auth-Token header")
    with db.session() as session:
        token = session.scalars(select(Token).where(Token.token_sha256 == hash_token(secret))).first()
        if token is None:
            raise NotAuthorized("The token in X-Auth-Token is not valid")
        return Caller(project_id=token.project_id, user_id=token.user_id, is_admin=token.is_admin)


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


def bootstrap_admin(db: Database, token_file: Path) -> str | None:
    """Make sure an admin project and a usable admin token exist.

    On first start this creates the "admin" project and an admin token, writes the
    secret to `token_file` (mode 0600, parent directories created) and returns it.
    If an admin token exists and the file is present it does nothing and returns
    None. If the file was lost, the secret is unrecoverable: earlier bootstrap
    tokens are revoked and a new one is written and returned.
    """
    token_file = Path(token_file)
    with db.session() as session:
        project = session.scalars(select(Project).where(Project.name == ADMIN_PROJECT)).first()
        if project is None:
            project = create_project(session, ADMIN_PROJECT)
        has_admin = (
            session.scalars(
                select(Token).where(Token.project_id == project.id, Token.is_admin.is_(True))
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
        secret = create_token(session, project.id, is_admin=True, description=BOOTSTRAP_DESCRIPTION)
        # Write before commit: if writing fails, no token exists that nobody knows.
        _write_secret(token_file, secret)
    return secret

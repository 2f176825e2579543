"""Tokens and the admin bootstrap (services.identity) on a real database."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from sqlalchemy import select

from floe.db.models import Project, Token, User
from floe.errors import Conflict, NotAuthorized
from floe.services import identity

from .conftest import Env


def _tokens(env: Env) -> list[Token]:
    with env.db.session() as s:
        return list(s.scalars(select(Token)))


def test_bootstrap_writes_a_private_token_file_once(env: Env, tmp_path: Path) -> None:
    token_file = env.runtime.settings.admin_token_file
    assert token_file.read_text().strip() == env.admin_token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    with env.db.session() as s:
        project = s.scalars(select(Project).where(Project.name == "admin")).one()
        admin = s.scalars(select(User).where(User.name == "admin")).one()
    caller = identity.authenticate(env.db, env.admin_token)
    # The token is the admin user's, with every role (admin implies member and reader).
    assert caller == identity.Caller(project_id=project.id, user_id=admin.id, is_admin=True)
    assert caller.roles == ("reader", "member", "admin")
    # Second start: token and file exist, nothing happens.
    assert identity.bootstrap_admin(env.db, token_file) is None
    assert len(_tokens(env)) == 1


def test_bootstrap_creates_parent_directories(env: Env, tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b" / "admin-token"
    secret = identity.bootstrap_admin(env.db, nested)
    assert secret and nested.read_text().strip() == secret
    assert stat.S_IMODE(nested.stat().st_mode) == 0o600


def test_bootstrap_recreates_a_lost_token_and_revokes_the_old(env: Env) -> None:
    token_file = env.runtime.settings.admin_token_file
    token_file.unlink()
    secret = identity.bootstrap_admin(env.db, token_file)
    assert secret and secret != env.admin_token
    assert token_file.read_text().strip() == secret
    assert identity.authenticate(env.db, secret).is_admin
    with pytest.raises(NotAuthorized):
        identity.authenticate(env.db, env.admin_token)


def test_only_the_sha256_is_stored(env: Env) -> None:
    with env.db.session() as s:
        project = identity.create_project(s, "team")
        secret = identity.create_token(s, project.id, description="ci")
    stored = [t for t in _tokens(env) if t.description == "ci"]
    assert [t.token_sha256 for t in stored] == [hashlib.sha256(secret.encode()).hexdigest()]
    assert all(secret not in (t.token_sha256, t.id, t.description) for t in _tokens(env))
    caller = identity.authenticate(env.db, secret)
    assert caller.project_id == project.id and not caller.is_admin


def test_authenticate_refuses_missing_and_unknown_tokens(env: Env) -> None:
    for secret in (None, "", "floe_not-a-token"):
        with pytest.raises(NotAuthorized):
            identity.authenticate(env.db, secret)


def test_project_names_are_unique(env: Env) -> None:
    with env.db.session() as s, pytest.raises(Conflict):
        identity.create_project(s, "admin")

"""Fixtures for the API tests: the real app on a real SQLite database, no engine.

`env` gives each test a fresh database (copied from one migrated once) and a
TestClient; `live` runs the app under a real uvicorn server on a free port for
python-magnumclient and the openstack CLI. Without an engine clusters stay
CREATE_IN_PROGRESS; helpers play the engine's part by writing rows directly.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import or_, select

from floe import pki
from floe.api.app import create_app
from floe.config import Settings
from floe.db.models import (
    Cluster,
    ClusterNetwork,
    ClusterTemplate,
    Flavor,
    Network,
    Node,
    NodeGroup,
    Operation,
    Project,
    Token,
)
from floe.db.session import Database
from floe.engine.engine import Engine
from floe.runtime import Runtime
from floe.server import engine_drivers
from floe.services import identity


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database file migrated once; each test copies it (much faster than migrating)."""
    path = tmp_path_factory.mktemp("template-db") / "floe.db"
    db = Database(f"sqlite:///{path}")
    db.migrate()
    # The identity base (domain, roles, the admin user and its argon2 hash) once, not per test.
    identity.bootstrap_admin(db, path.parent / "admin-token")
    db.dispose()
    return path


@dataclass
class Env:
    """One floe API over its own database, with helpers that stand in for the engine."""

    runtime: Runtime
    app: FastAPI
    admin_token: str

    def engine_woken(self) -> bool:
        """Whether the API hinted the engine since the last call (and reset the hint)."""
        event = self.runtime.engine.runner._wake  # type: ignore[union-attr]
        woken = event.is_set()
        event.clear()
        return woken

    @property
    def db(self) -> Database:
        return self.runtime.db

    @property
    def admin_user_id(self) -> str:
        """The bootstrap admin user's id (what its objects' user_id says)."""
        return identity.authenticate(self.db, self.admin_token).user_id

    def headers(self, token: str | None = None, **extra: str) -> dict[str, str]:
        return {"X-Auth-Token": token or self.admin_token, **extra}

    def new_project(self, name: str, is_admin: bool = False) -> str:
        """A new project and a token acting in it; returns the token."""
        with self.db.session() as s:
            project = identity.create_project(s, name)
            return identity.create_token(s, project.id, is_admin=is_admin, description="test")

    def cluster(self, ident: str) -> Cluster:
        with self.db.session() as s:
            return s.scalars(select(Cluster).where(or_(Cluster.uuid == ident, Cluster.name == ident))).one()

    def operations(self, ident: str) -> list[Operation]:
        with self.db.session() as s:
            c = s.scalars(select(Cluster).where(or_(Cluster.uuid == ident, Cluster.name == ident))).one()
            return list(s.scalars(select(Operation).where(Operation.cluster_id == c.id).order_by(Operation.id)))

    def finish_create(self, ident: str, **fields: Any) -> None:
        """Complete the cluster's operations and mark it CREATE_COMPLETE, as the engine would."""
        with self.db.session() as s:
            c = s.scalars(select(Cluster).where(or_(Cluster.uuid == ident, Cluster.name == ident))).one()
            for op in s.scalars(select(Operation).where(Operation.cluster_id == c.id)):
                if op.state in ("pending", "running"):
                    op.state = "complete"
            c.status = "CREATE_COMPLETE"
            c.status_reason = "create complete"
            for key, value in fields.items():
                setattr(c, key, value)

    def give_ca(self, ident: str) -> str:
        """Create the cluster's CA (the engine does this while creating); returns its PEM."""
        cert, key = pki.new_ca(f"floe-{ident}")
        with self.db.session() as s:
            c = s.scalars(select(Cluster).where(or_(Cluster.uuid == ident, Cluster.name == ident))).one()
            c.ca_cert_pem, c.ca_key_pem = cert, key
        return cert

    def add_nodes(self, ident: str, managers: int, workers: int) -> list[str]:
        """Node rows as the engine plans them; returns their names (managers first)."""
        names = []
        with self.db.session() as s:
            c = s.scalars(select(Cluster).where(or_(Cluster.uuid == ident, Cluster.name == ident))).one()
            groups = {g.role: g.id for g in s.scalars(select(NodeGroup).where(NodeGroup.cluster_id == c.id))}
            # Insert workers first so ordering by role/index is really exercised.
            for role, count in (("worker", workers), ("manager", managers)):
                for i in range(count):
                    name = f"{c.name}-{role[0]}{i}"
                    s.add(Node(cluster_id=c.id, name=name, role=role, index=i, address=f"10.0.0.{i + 10}",
                               nodegroup_id=groups.get("master" if role == "manager" else "worker")))
            s.flush()
            nodes = s.scalars(select(Node).where(Node.cluster_id == c.id).order_by(Node.role, Node.index))
            names = [n.name for n in nodes]
        return names

    def snapshot(self) -> dict[str, list]:
        """Every row floe's API could write, to prove a refused request changed nothing."""
        out: dict[str, list] = {}
        with self.db.session() as s:
            for model in (Project, Token, ClusterTemplate, Cluster, Node, Operation, NodeGroup, Network,
                          ClusterNetwork, Flavor):
                rows = s.scalars(select(model).order_by(model.id)).all()
                cols = [c.key for c in model.__table__.columns]
                out[model.__tablename__] = [tuple(getattr(r, k) for k in cols) for r in rows]
        return out


def make_env(home: Path, migrated_db: Path) -> Env:
    home.mkdir(parents=True, exist_ok=True)
    settings = Settings(home=home)
    shutil.copy(migrated_db, home / "floe.db")
    if (migrated_db.parent / "admin-password").exists():  # the bootstrapped admin user's password
        shutil.copy(migrated_db.parent / "admin-password", settings.admin_password_file)
    db = Database(settings.db_url)
    token = identity.bootstrap_admin(db, settings.admin_token_file)
    assert token
    runtime = Runtime(settings=settings, db=db, provider=None, engine=None)
    # The real engine, never started: no provider runs here, so clusters stay
    # CREATE_IN_PROGRESS, but the API's wake-up hints reach it.
    runtime.engine = Engine(runtime, engine_drivers(runtime.settings))
    env = Env(runtime=runtime, app=create_app(runtime), admin_token=token)
    return env


@pytest.fixture
def env(tmp_path: Path, migrated_db: Path) -> Iterator[Env]:
    e = make_env(tmp_path / "home", migrated_db)
    yield e
    e.runtime.engine.stop(wait=False)  # type: ignore[union-attr]
    e.db.dispose()


@pytest.fixture
def client(env: Env) -> Iterator[TestClient]:
    """A TestClient on `env`'s app, sending the admin token by default."""
    with TestClient(env.app, raise_server_exceptions=False, headers=env.headers()) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Live:
    url: str
    env: Env


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path) -> Iterator[Live]:
    """The app under a real uvicorn server on 127.0.0.1 (one per test module)."""
    env = make_env(tmp_path_factory.mktemp("live-home"), migrated_db)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(env.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="floe-api-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield Live(url=f"http://127.0.0.1:{port}", env=env)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        env.runtime.engine.stop(wait=False)  # type: ignore[union-attr]
        env.db.dispose()


def assert_error(resp, status: int, *fragments: str) -> dict:
    """`resp` is a Magnum-shaped error with `status` whose detail contains every fragment."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert list(body) == ["errors"], body
    (err,) = body["errors"]
    assert err["status"] == status
    assert err["code"] == ("server" if status >= 500 else "client")
    assert err["title"] and err["links"] == []
    assert err["request_id"] == resp.headers["x-openstack-request-id"]
    for fragment in fragments:
        assert fragment in err["detail"], err["detail"]
    return err

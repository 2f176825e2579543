"""Fixtures for the CLI tests: a real floe API (no engine, no provider) on a free local port.

The server runs the real `create_app(runtime)` under uvicorn in a thread, on its own SQLite
database; the CLI is driven through Typer's CliRunner (and once through the real binary).
Without an engine clusters stay CREATE_IN_PROGRESS; tests that need another status play the
engine's part by writing the cluster row directly.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from floe.cli.main import app

FLOE_ENV_VARS = ("FLOE_URL", "FLOE_TOKEN", "FLOE_HOME", "FLOE_DEBUG", "COLUMNS", "FLOE_PASSWORD",
                 "FLOE_APPLICATION_CREDENTIAL_SECRET")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    token: str
    home: Path
    runtime: Any
    app: Any

    def has_route(self, path: str) -> bool:
        return any(getattr(route, "path", None) == path for route in self.app.routes)

    def env(self, **overrides: str | None) -> dict[str, str | None]:
        """Environment for a CLI run against this server (every other FLOE_* variable unset)."""
        env: dict[str, str | None] = dict.fromkeys(FLOE_ENV_VARS)
        env.update(FLOE_URL=self.url, FLOE_TOKEN=self.token, FLOE_HOME=str(self.home))
        env.update(overrides)
        return env

    def update_cluster(self, ident: str, **fields: Any) -> None:
        """Write cluster columns directly, standing in for the engine these tests do not run."""
        from sqlalchemy import or_, select

        from floe.db.models import Cluster

        with self.runtime.db.session() as s:
            cluster = s.scalars(select(Cluster).where(or_(Cluster.uuid == ident, Cluster.name == ident))).one()
            for key, value in fields.items():
                setattr(cluster, key, value)

    def finish(self, ident: str, status: str = "CREATE_COMPLETE", **fields: Any) -> None:
        """Mark the cluster's operations done and give it `status`, as the engine would."""
        from sqlalchemy import or_, select

        from floe.db.models import Cluster, Operation

        with self.runtime.db.session() as s:
            cluster = s.scalars(select(Cluster).where(or_(Cluster.uuid == ident, Cluster.name == ident))).one()
            for op in s.scalars(select(Operation).where(Operation.cluster_id == cluster.id)):
                op.state = "complete"
            cluster.status = status
            cluster.status_reason = ""
            for key, value in fields.items():
                setattr(cluster, key, value)

    def drop_cluster(self, ident: str) -> None:
        """Remove a cluster's rows, as the engine does when a delete finishes."""
        from sqlalchemy import delete, or_, select

        from floe.db.models import Cluster, Node, Operation

        with self.runtime.db.session() as s:
            cluster = s.scalars(select(Cluster).where(or_(Cluster.uuid == ident, Cluster.name == ident))).one()
            s.execute(delete(Operation).where(Operation.cluster_id == cluster.id))
            s.execute(delete(Node).where(Node.cluster_id == cluster.id))
            s.delete(cluster)

    def cluster_status(self, ident: str) -> str | None:
        from sqlalchemy import or_, select

        from floe.db.models import Cluster

        with self.runtime.db.session() as s:
            cluster = s.scalars(select(Cluster).where(or_(Cluster.uuid == ident, Cluster.name == ident))).first()
            return None if cluster is None else cluster.status


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    app_module = pytest.importorskip("floe.api.app", reason="the API (floe.api.app) is not written yet")
    import uvicorn

    from floe.config import Settings
    from floe.db.session import Database
    from floe.runtime import Runtime
    from floe.services.identity import bootstrap_admin

    home = tmp_path_factory.mktemp("floe-cli-home")
    settings = Settings(home=home)
    db = Database(settings.db_url)
    db.migrate()
    try:  # the server reserves floe's own addresses at start; do as it does when it can
        from floe import ipam

        with db.session() as s:
            ipam.ensure_infra(s, settings.network)
    except (ImportError, AttributeError):
        pass
    token = bootstrap_admin(db, settings.admin_token_file)
    assert token, "a fresh database gets a fresh admin token"
    runtime = Runtime(settings=settings, db=db, provider=None, engine=None)

    port = free_port()
    api = app_module.create_app(runtime)
    config = uvicorn.Config(api, host="127.0.0.1", port=port, log_level="critical", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="floe-test-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the floe API did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(url=f"http://127.0.0.1:{port}", token=token, home=home, runtime=runtime, app=api)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        db.dispose()


@pytest.fixture(autouse=True)
def login_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's own `floe login` directory, so no test reads or writes the real ~/.config/floe."""
    config = tmp_path / "xdg-config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    return config


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def floe(live_server: LiveServer, runner: CliRunner) -> Callable[..., Result]:
    """Run `floe ARGS...` against the live server; keyword arguments override the environment."""

    def run(*args: str, **env: str | None) -> Result:
        result = runner.invoke(app, list(args), env=live_server.env(**env))
        # Whatever happened, the token is never shown.
        assert live_server.token not in result.output
        return result

    return run


def assert_one_line_error(result: Result, *fragments: str, exit_code: int | None = None) -> str:
    """The CLI failed with exactly one `error: ...` line on stderr and no traceback."""
    assert result.exit_code != 0, result.output
    if exit_code is not None:
        assert result.exit_code == exit_code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error: "), line
    assert "Traceback" not in result.output
    # Exceptions the CLI handles leave the runner with a plain SystemExit, never the error itself.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    for fragment in fragments:
        assert fragment in line, line
    return line

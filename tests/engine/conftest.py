"""Fixtures for engine tests on the simulated provider, on SQLite and (when available) PostgreSQL.

The simulated infra provider and COE driver stand in for real machines on purpose: they are
floe's own feature for testing the control plane at a scale one host cannot run. Everything
else is real: the engine with its threads and leases, the services, the database, and (for
`FloeProcess`) a `floe server` process spoken to over HTTP.

PostgreSQL variants run when FLOE_TEST_POSTGRES_URL names a server where the tests may create
databases (`scripts/test-postgres.sh` starts a throwaway one; `make test` uses it).
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from floe.config import Settings
from floe.db.models import AddressAllocation, Cluster, Node, Operation
from floe.db.session import Database
from floe.providers.simulated import SimulatedProvider
from floe.runtime import Runtime
from floe.server import build_runtime, make_provider
from floe.services import clusters, identity, templates
from floe.services.identity import Caller

FLOE = str(Path(sys.executable).parent / "floe")
# Simulated nodes touch nothing on the host, but keep clear of the ranges real tests use.
RANGE = "10.0.0.0/8"
PG_URL = os.environ.get("FLOE_TEST_POSTGRES_URL", "")
BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.skipif(not PG_URL, reason="FLOE_TEST_POSTGRES_URL is not set")),
]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """'' for SQLite in FLOE_HOME, or the URL of a fresh PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield ""
        return
    name = f"floe_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class Sim:
    """An in-process floe (services + engine) on the simulated provider, with helpers."""

    runtime: Runtime
    provider: SimulatedProvider
    caller: Caller
    template: str

    @property
    def db(self) -> Database:
        return self.runtime.db

    def create(self, name: str, workers: int, masters: int = 1) -> str:
        spec = clusters.ClusterSpec(
            name=name, cluster_template_id=self.template, master_count=masters, node_count=workers
        )
        return clusters.create_cluster(self.runtime, self.caller, spec).uuid

    def statuses(self) -> dict[str, str]:
        with self.db.session() as s:
            return dict(s.execute(select(Cluster.name, Cluster.status)).all())

    def busy(self) -> bool:
        """Whether any operation is still pending or running (a status is set before its operation ends)."""
        with self.db.session() as s:
            active = select(Operation.id).where(Operation.state.in_(("pending", "running"))).limit(1)
            return s.scalar(active) is not None

    def wait(self, names: set[str] | None, want: str, timeout: float = 120) -> None:
        """Until every named cluster (all if None) has status `want` and no operation runs;
        'gone' waits for deletion."""
        end = time.monotonic() + timeout
        st: dict[str, str] = {}
        while time.monotonic() < end:
            st = self.statuses()
            if self.busy():
                time.sleep(0.05)
                continue
            if want == "gone":
                if not (set(st) & names if names is not None else st):
                    return
            else:
                failed = {n: s for n, s in st.items() if s.endswith("FAILED")}
                assert not failed, failed
                if all(s == want for n, s in st.items() if names is None or n in names) and (
                    names is None or names <= set(st)
                ):
                    return
            time.sleep(0.05)
        raise AssertionError(f"clusters did not reach {want}: {st}")


def sim_settings(home: Path, database_url: str = "", **kw) -> Settings:
    return Settings(home=home, database_url=database_url, provider="simulated", address_range=RANGE, **kw)


def make_sim(home: Path, database_url: str, provider: SimulatedProvider | None = None, **kw) -> Sim:
    settings = sim_settings(home, database_url, **kw)
    provider = provider or make_provider(settings)
    runtime = build_runtime(settings, provider)
    with runtime.db.session() as s:
        project_id = identity.create_project(s, f"p-{uuid.uuid4().hex[:6]}").id
    caller = Caller(project_id, "tester", is_admin=True)
    ct = templates.create_template(runtime.db, caller, templates.TemplateSpec(name="sim", coe="swarm"))
    return Sim(runtime, provider, caller, ct.uuid)


@pytest.fixture
def sim(tmp_path: Path, database_url: str) -> Iterator[Sim]:
    s = make_sim(tmp_path / "home", database_url)
    yield s
    s.runtime.engine.stop(wait=True)  # type: ignore[union-attr]
    s.provider.close()
    s.db.dispose()


def assert_consistent(db: Database, provider: SimulatedProvider) -> None:
    """The database and the (simulated) machines agree, and no two address blocks overlap.

    - every operation has ended (none pending or running, none lost half-way);
    - every cluster is settled, its nodes are all ready and exactly the machines the provider runs;
    - the provider runs nothing for clusters the database does not know;
    - address blocks never overlap and belong to floe or to an existing cluster.
    """
    with db.session() as s:
        active = s.scalars(select(Operation).where(Operation.state.in_(("pending", "running")))).all()
        assert not active, [(o.cluster_id, o.kind, o.state, o.step) for o in active]
        rows = s.scalars(select(Cluster)).all()
        tags = {c.host_tag for c in rows}
        for c in rows:
            assert c.status in ("CREATE_COMPLETE", "UPDATE_COMPLETE"), (c.name, c.status, c.status_reason)
            nodes = s.scalars(select(Node).where(Node.cluster_id == c.id)).all()
            assert len(nodes) == c.master_count + c.node_count, (c.name, len(nodes), c.node_count)
            assert {n.state for n in nodes} == {"ready"}, (c.name, {n.state for n in nodes})
            assert {n.name for n in nodes} == provider.nodes_of(c.host_tag), c.name
            subnet = ipaddress.ip_network(c.subnet)
            addresses = [n.address for n in nodes]
            assert len(set(addresses)) == len(addresses), c.name
            assert all(ipaddress.ip_address(a) in subnet for a in addresses), c.name
        assert provider.owned_cluster_tags() <= tags, provider.owned_cluster_tags() - tags
        allocs = s.execute(select(AddressAllocation.cidr, AddressAllocation.owner)).all()
        owners = {c.uuid for c in rows} | {"floe"}
        assert {o for _, o in allocs} <= owners
        spans = sorted(
            (int(n.network_address), int(n.broadcast_address)) for n in (ipaddress.ip_network(c) for c, _ in allocs)
        )
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:], strict=False)), "address blocks overlap"
        # Each node has its own dockerd pool; each cluster a network and a swarm pool.
        node_rows = s.scalar(select(func.count()).select_from(Node))
        assert len(allocs) == 1 + 2 * len(rows) + node_rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FloeProcess:
    """A `floe server` process on the simulated provider (its own FLOE_HOME and port)."""

    def __init__(self, home: Path, database_url: str = "", **env: str):
        self.home = home
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "FLOE_HOME": str(home),
            "FLOE_PORT": str(self.port),
            "FLOE_PROVIDER": "simulated",
            "FLOE_ADDRESS_RANGE": RANGE,
            **env,
        }
        for leftover in ("FLOE_TOKEN", "FLOE_FAILPOINTS"):
            self.env.pop(leftover, None)
        if database_url:
            self.env["FLOE_DATABASE_URL"] = database_url
        self.database_url = database_url
        self.proc: subprocess.Popen | None = None

    def start(self, **env: str) -> None:
        log = open(self.home / "server.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen([FLOE, "server"], env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT)
        end = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"floe server exited: {(self.home / 'server.log').read_text()[-3000:]}")
            try:
                httpx.get(self.url + "/", timeout=1)
                return
            except httpx.HTTPError:
                assert time.monotonic() < end, "floe server did not answer in 60 s"
                time.sleep(0.05)

    def wait_exit(self, timeout: float = 60) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def api(self, method: str, path: str, **kw) -> httpx.Response:
        token = (self.home / "admin-token").read_text().strip()
        headers = {"X-Auth-Token": token, "OpenStack-API-Version": "container-infra latest"}
        return httpx.request(method, self.url + path, headers=headers, timeout=60, **kw)

    def db(self) -> Database:
        return Database(self.database_url or f"sqlite:///{self.home / 'floe.db'}")

    def provider(self) -> SimulatedProvider:
        """The simulated machines as the server left them (read from its state file)."""
        return SimulatedProvider(self.home, "10.0.0.0/24")

    def template(self, name: str = "sim") -> str:
        r = self.api("POST", "/v1/clustertemplates", json={"name": name, "coe": "swarm"})
        assert r.status_code == 201, r.text
        return r.json()["uuid"]

    def wait_settled(self, timeout: float = 120) -> dict[str, str]:
        """Until no cluster is in progress; returns name → status."""
        end = time.monotonic() + timeout
        st: dict[str, str] = {}
        while time.monotonic() < end:
            r = self.api("GET", "/v1/clusters?limit=1000")
            st = {c["name"]: c["status"] for c in r.json()["clusters"]}
            if not any(s.endswith("IN_PROGRESS") for s in st.values()):
                return st
            time.sleep(0.1)
        raise AssertionError(f"clusters did not settle: {st}")


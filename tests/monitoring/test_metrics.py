"""floe's own /metrics over real HTTP: who may scrape it, and what it says after real work.

The app runs under a real uvicorn server over the simulated provider's runtime (the engine,
the services and the database are the real ones; SQLite and PostgreSQL). Counters are
process-wide (floe.metrics.REGISTRY), so each test compares them before and after its work.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

from floe.api.app import create_app
from floe.db.base import utcnow
from floe.db.models import Cluster, Flavor, Operation, Project
from floe.engine import share_work
from floe.monitoring.access import scrape_token
from floe.services import identity, quotas, shares
from floe.storage.base import GIB
from tests.engine.conftest import Sim, make_sim

Samples = dict[tuple[str, frozenset], float]


@dataclass
class Served:
    url: str
    sim: Sim
    admin: str  # an admin's X-Auth-Token
    member: str  # a member's token in the same project
    project: str  # that project's name

    def api(self, method: str, path: str, **kw) -> httpx.Response:
        headers = {"X-Auth-Token": self.admin, "OpenStack-API-Version": "container-infra latest"}
        return httpx.request(method, self.url + path, headers=headers, timeout=60, **kw)

    def scrape(self, **headers: str) -> httpx.Response:
        return httpx.get(self.url + "/metrics", headers=headers, timeout=60)

    def samples(self) -> Samples:
        r = self.scrape(Authorization=f"Bearer {scrape_token(self.sim.runtime.settings.home)}")
        assert r.status_code == 200, r.text
        out: Samples = {}
        for family in text_string_to_metric_families(r.text):
            for s in family.samples:
                out[(s.name, frozenset(s.labels.items()))] = s.value
        return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(sim: Sim) -> Iterator[Served]:
    with serving(sim) as s:
        yield s


@contextmanager
def serving(sim: Sim) -> Iterator[Served]:
    """`sim`'s runtime behind a real uvicorn server, with an admin's and a member's token in its project."""
    identity.bootstrap_admin(sim.db, sim.runtime.settings.home / "admin-token")  # the domain and the roles
    with sim.db.session() as s:
        project = s.get(Project, sim.caller.project_id)
        # Tokens in the project the clusters go to (the bootstrap admin's is in its own).
        admin = identity.create_token(s, project.id, is_admin=True, description="metrics test")
        member = identity.create_token(s, project.id, is_admin=False, description="metrics test")
        name = project.name
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(sim.runtime), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="floe-metrics-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{port}", sim, admin, member, name)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value, 0 if absent (a counter not yet incremented has no series)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over every series of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def test_only_the_scrape_token_or_an_admin_may_scrape(served: Served) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic Zm9vOmJhcg=="},
                    {"X-Auth-Token": "not-a-token"}):
        r = served.scrape(**headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.headers["content-type"].startswith("application/json")
        (err,) = r.json()["errors"]
        assert err["status"] == 401 and err["detail"], err
    assert "scrape-token" in served.scrape().json()["errors"][0]["detail"]

    r = served.scrape(**{"X-Auth-Token": served.member})
    assert r.status_code == 403, r.text
    assert "admin" in r.json()["errors"][0]["detail"]

    token = scrape_token(served.sim.runtime.settings.home)
    for headers in ({"Authorization": f"Bearer {token}"}, {"X-Auth-Token": served.admin}):
        r = served.scrape(**headers)
        assert r.status_code == 200, (headers, r.text)
        assert r.headers["content-type"].startswith("text/plain")
        assert "# TYPE floe_clusters gauge" in r.text
    # Outside every API's gate: a stock OpenStack client's paths are untouched.
    assert served.api("GET", "/v1/clusters").status_code == 200


def test_metrics_follow_clusters_operations_and_requests(served: Served) -> None:
    sim, project = served.sim, served.project
    before = served.samples()
    template = sim.template
    uuids = []
    for name, workers in (("m1", 1), ("m2", 2)):
        r = served.api("POST", "/v1/clusters", json={"name": name, "cluster_template_id": template,
                                                      "master_count": 1, "node_count": workers})
        assert r.status_code == 202, r.text
        uuids.append(r.json()["uuid"])
    queued = served.samples()
    assert value(queued, "floe_engine_queue_depth", kind="operation") == 2
    assert value(queued, "floe_clusters", project=project, status="CREATE_IN_PROGRESS", health="UNKNOWN") == 2

    # One that fails: its flavor asks for a GPU this host does not have.
    with sim.db.session() as s:
        s.add(Flavor(id="gpu-1", name="m.gpu", vcpus=1, ram=1024, disk=0, gpus=1))
    r = served.api("POST", "/v1/clusters", json={"name": "m3", "cluster_template_id": template,
                                                  "node_count": 1, "flavor_id": "m.gpu"})
    assert r.status_code == 202, r.text
    sim.runtime.engine.run_until_idle()  # type: ignore[union-attr]
    assert sim.statuses() == {"m1": "CREATE_COMPLETE", "m2": "CREATE_COMPLETE", "m3": "CREATE_FAILED"}
    for uuid in uuids:
        assert served.api("GET", f"/v1/clusters/{uuid}").status_code == 200
        assert served.api("GET", f"/v1/clusters/{uuid}").status_code == 200  # the gate's kept answer
    assert served.api("GET", "/v1/clusters/no-such-cluster").status_code == 404
    assert httpx.get(served.url + "/no/such/path", timeout=10).status_code == 404

    after = served.samples()
    # State, read from the database at scrape time.
    assert value(after, "floe_clusters", project=project, status="CREATE_COMPLETE", health="HEALTHY") == 2
    assert value(after, "floe_clusters", project=project, status="CREATE_FAILED", health="UNKNOWN") == 1
    for name in ("m1", "m2"):
        assert value(after, "floe_cluster_info", project=project, cluster=name, coe="swarm",
                     status="CREATE_COMPLETE", health="HEALTHY") == 1
    assert total(after, "floe_nodes", project=project, state="ready") == 5  # 1+1 and 1+2
    assert value(after, "floe_quota_usage", project=project, resource="clusters") == 3
    assert value(after, "floe_quota_usage", project=project, resource="nodes") == 7  # m3 counts 1+1 too
    limit = value(after, "floe_quota_limit", project=project, resource="clusters")
    assert limit == sim.runtime.settings.quotas.clusters != 0
    assert value(after, "floe_engine_queue_depth", kind="operation") == 0
    assert ("floe_engine_running", frozenset({("kind", "operation")})) in after

    # The scrape's bulk count agrees with the quota check's, a resize waiting counted at its target.
    r = served.api("POST", f"/v1/clusters/{uuids[0]}/actions/resize", json={"node_count": 4})
    assert r.status_code == 202, r.text
    with sim.db.session() as s:
        bulk = quotas.usage_by_project(s)[sim.caller.project_id]
        assert bulk == quotas.usage(s, sim.caller.project_id)
        assert bulk["nodes"] == 10
    assert value(served.samples(), "floe_quota_usage", project=project, resource="nodes") == 10

    # What happened, counted as it happened.
    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("floe_operations_total", kind="create", outcome="complete") == 2
    assert delta("floe_operations_total", kind="create", outcome="failed") == 1
    assert delta("floe_operation_duration_seconds_count", kind="create") == 3
    steps = {dict(ls)["step"] for (n, ls), v in after.items()
             if n == "floe_step_duration_seconds_count" and dict(ls)["kind"] == "create"
             and v > value(before, n, **dict(ls))}
    assert {"plan", "nodes"} <= steps, steps

    one = "/v1/clusters/{ident}"
    assert delta("floe_api_requests_total", method="POST", route="/v1/clusters", status="202") == 3
    assert delta("floe_api_requests_total", method="GET", route=one, status="200") == 4  # kept answers too
    assert delta("floe_api_requests_total", method="GET", route=one, status="404") == 1
    assert delta("floe_api_request_duration_seconds_count", method="POST", route="/v1/clusters") == 3
    assert delta("floe_api_requests_total", method="GET", route="other", status="404") >= 1
    routes = {dict(ls)["route"] for n, ls in after if n == "floe_api_requests_total"}
    assert not any(u in r for r in routes for u in uuids), routes  # no id ever becomes a label


def test_overdue_operations_and_mounted_apis_are_counted(served: Served) -> None:
    sim = served.sim
    before = served.samples()
    r = served.api("POST", "/v1/clusters", json={"name": "late", "cluster_template_id": sim.template,
                                                  "node_count": 1})
    assert r.status_code == 202, r.text
    # Nobody runs it (the engine is not started) and its deadline has passed.
    with sim.db.session() as s:
        cluster_id = s.scalar(select(Cluster.id).where(Cluster.name == "late"))
        s.execute(update(Operation).where(Operation.cluster_id == cluster_id)
                  .values(deadline_at=utcnow().replace(year=2000)))
    # Manila's API is mounted at /v2, Keystone's at /identity: their templates carry the prefix.
    headers = {"X-Auth-Token": served.admin}
    assert httpx.get(served.url + "/v2/shares/nope", headers=headers, timeout=10).status_code == 404
    project_id = sim.caller.project_id
    assert httpx.get(f"{served.url}/v2/{project_id}/shares/nope", headers=headers, timeout=10).status_code == 404
    assert httpx.get(served.url + "/identity/v3/projects", headers=headers, timeout=10).status_code == 200
    assert httpx.get(served.url + "/v2/shares", timeout=10).status_code == 401  # Manila's gate, before routing
    after = served.samples()
    assert value(after, "floe_operations_overdue", kind="create") == 1
    assert value(after, "floe_engine_queue_depth", kind="operation") == 1

    def delta(**labels: str) -> float:
        return value(after, "floe_api_requests_total", **labels) - value(before, "floe_api_requests_total", **labels)

    assert delta(method="GET", route="/v2/shares/{ident}", status="404") == 2  # with and without the project id
    assert delta(method="GET", route="/identity/v3/projects", status="200") == 1
    assert delta(method="GET", route="/v2/{path}", status="401") == 1


def test_share_work_and_lease_takeovers_are_counted(tmp_path: Path, database_url: str) -> None:
    sim = make_sim(tmp_path / "home", database_url, share_types=("simulated",))
    engine = sim.runtime.engine
    share_work.register(engine.runner, sim.runtime)  # as the server wires it
    try:
        with serving(sim) as served:
            before = served.samples()
            share = shares.create_share(sim.runtime, sim.caller,
                                        shares.ShareSpec(share_proto="LOCALFS", size=2, name="sh"))
            sim.create("t1", workers=1)
            # A holder that was a process on this host and is gone: its lease, though unexpired, is taken over.
            dead = subprocess.Popen(["true"])
            dead.wait()
            with sim.db.session() as s:
                s.execute(update(Operation).values(
                    state="running", lease_owner=f"{engine.runner.holder.host}:{dead.pid}:deadbeef",
                    lease_expires_at=utcnow() + timedelta(minutes=10)))
            engine.run_until_idle()
            assert sim.statuses() == {"t1": "CREATE_COMPLETE"}
            # Data in the (simulated) share: its backend says how much, asked off the scrape's path.
            (sim.runtime.share_backends.get("simulated").dir(share.uuid) / "data" / "f").write_bytes(b"x" * 1234)
            end = time.monotonic() + 20
            while True:
                after = served.samples()
                used = after.get(("floe_share_used_bytes", frozenset({("project", served.project), ("share", "sh")})))
                if used is not None or time.monotonic() > end:
                    break
                time.sleep(0.05)
            assert used == 1234
    finally:
        engine.stop(wait=True)
        sim.provider.close()
        sim.db.dispose()
    project = served.project
    assert value(after, "floe_shares", project=project, status="available") == 1
    assert value(after, "floe_share_size_bytes", project=project, share="sh") == 2 * GIB
    assert value(after, "floe_quota_usage", project=project, resource="gigabytes") == 2
    assert value(after, "floe_quota_usage", project=project, resource="shares") == 1
    assert value(after, "floe_engine_queue_depth", kind="share") == 0
    assert {dict(ls)["kind"] for n, ls in after if n == "floe_engine_running"} == {"operation", "share"}

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("floe_step_duration_seconds_count", kind="share", step="create") == 1
    assert delta("floe_engine_lease_takeovers_total", kind="operation") == 1
    assert delta("floe_operations_total", kind="create", outcome="complete") == 1

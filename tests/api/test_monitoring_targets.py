"""The node targets and their service discovery (/monitoring), and /v1/floe/clusters/{c}/nodes/stats,
on the simulated provider (whose numbers are made up, and say so)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

from floe.db.models import Cluster, Node
from floe.monitoring.access import scrape_token
from floe.providers.base import NetworkSpec, NodeSpec, TLSMaterial
from floe.providers.simulated.provider import SimulatedProvider

from .conftest import Env

INFRA = "10.170.0.0/24"


def _cluster(env: Env, token: str, name: str, managers: int, workers: int, memory_mb: int | None = None) -> dict:
    """A cluster of the token's project with started nodes in the simulated provider."""
    client = TestClient(env.app, raise_server_exceptions=False, headers=env.headers(token))
    if client.get(f"/v1/clustertemplates/tpl-{name}").status_code != 200:
        assert client.post("/v1/clustertemplates", json={"coe": "swarm", "name": f"tpl-{name}"}).status_code == 201
    resp = client.post("/v1/clusters", json={"cluster_template_id": f"tpl-{name}", "name": name})
    assert resp.status_code == 202, resp.text
    uuid = resp.json()["uuid"]
    names = env.add_nodes(uuid, managers=managers, workers=workers)
    env.finish_create(uuid)
    provider: SimulatedProvider = env.runtime.provider  # type: ignore[assignment]
    with env.db.session() as s:
        c = s.scalars(select(Cluster).where(Cluster.uuid == uuid)).one()
        s.execute(update(Node).where(Node.cluster_id == c.id).values(state="ready"))
        tag = c.host_tag
    net = NetworkSpec(cluster_tag=tag, name="mgmt", subnet="10.170.1.0/24", gateway="10.170.1.1")
    provider.ensure_network(net)
    for i, n in enumerate(names):
        provider.start_node(NodeSpec(
            cluster_tag=tag, name=n, address=f"10.170.1.{i + 2}", network=net, docker_pool="10.170.64.0/23",
            tls=TLSMaterial("", "", ""), memory_mb=memory_mb, cpus=2.0,
        ))
    return {"uuid": uuid, "tag": tag, "nodes": names}


@pytest.fixture
def sim(env: Env, tmp_path: Path) -> SimulatedProvider:
    provider = SimulatedProvider(tmp_path / "sim", INFRA)
    env.runtime.provider = provider
    yield provider
    provider.close()


@pytest.fixture
def scraper(env: Env) -> TestClient:
    return TestClient(env.app, raise_server_exceptions=False,
                      headers={"Authorization": f"Bearer {scrape_token(env.runtime.settings.home)}"})


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_discovery_lists_every_node_of_every_project_with_its_labels(env: Env, sim, scraper) -> None:
    alpha, beta = env.new_project("alpha"), env.new_project("beta")
    a = _cluster(env, alpha, "alpha-c", managers=1, workers=2)
    b = _cluster(env, beta, "beta-c", managers=1, workers=1)
    with env.db.session() as s:  # a node not started yet has no target
        c = s.scalars(select(Cluster).where(Cluster.uuid == b["uuid"])).one()
        s.add(Node(cluster_id=c.id, name="beta-c-planned", role="worker", index=9, state="planned"))
    resp = scraper.get("/monitoring/sd")
    assert resp.status_code == 200, resp.text
    groups = resp.json()
    address = f"{env.runtime.settings.host}:{env.runtime.settings.port}"
    assert all(g["targets"] == [address] for g in groups)
    labels = [g["labels"] for g in groups]
    # The simulated provider measures its nodes but runs no dockerd: node targets only.
    assert {lab["source"] for lab in labels} == {"node"}
    seen = {(lab["cluster"], lab["node"]) for lab in labels}
    assert seen == {("alpha-c", n) for n in a["nodes"]} | {("beta-c", n) for n in b["nodes"]}
    with env.db.session() as s:
        uuids = dict(s.execute(select(Node.name, Node.uuid)).all())
    for lab in labels:
        cluster = a if lab["cluster"] == "alpha-c" else b
        assert lab["cluster_id"] == cluster["uuid"]
        assert lab["project"] == ("alpha" if cluster is a else "beta")
        assert lab["project_id"] == env.cluster(cluster["uuid"]).project_id
        assert lab["role"] == ("manager" if "-m" in lab["node"] else "worker")
        assert lab["nodegroup"] == ("default-master" if lab["role"] == "manager" else "default-worker")
        assert lab["__metrics_path__"] == f"/monitoring/nodes/{uuids[lab['node']]}/node"
        # Each listed target answers through floe.
        text = scraper.get(lab["__metrics_path__"]).text
        assert "floe_node_cpu_seconds_total" in text


def test_every_monitoring_route_needs_the_scrape_token(env: Env, sim) -> None:
    token = env.new_project("alpha")
    c = _cluster(env, token, "alpha-c", managers=1, workers=0)
    with env.db.session() as s:
        node_uuid = s.scalars(select(Node.uuid)).first()
    paths = ["/monitoring/sd", f"/monitoring/nodes/{node_uuid}/node", f"/monitoring/nodes/{node_uuid}/dockerd",
             f"/monitoring/clusters/{c['uuid']}/slurm"]
    good = scrape_token(env.runtime.settings.home)
    anyone = TestClient(env.app, raise_server_exceptions=False)
    for path in paths:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {good}"},
                        {"Authorization": good}, {"X-Auth-Token": env.admin_token},
                        {"Authorization": f"Bearer {env.admin_token}"}):
            resp = anyone.get(path, headers=headers)
            assert resp.status_code == 401, (path, headers, resp.status_code)
            assert resp.json()["errors"][0]["status"] == 401  # floe's top-level error shape, as /metrics's
            assert node_uuid not in resp.text and "alpha" not in resp.text
    assert anyone.get("/monitoring/sd", headers={"Authorization": f"Bearer {good}"}).status_code == 200
    # Not part of the OpenStack APIs' documents.
    assert not [p for p in env.app.openapi()["paths"] if p.startswith("/monitoring")]


def test_a_node_target_reports_the_node_in_prometheus_format(env: Env, sim, scraper) -> None:
    token = env.new_project("alpha")
    c = _cluster(env, token, "alpha-c", managers=1, workers=0, memory_mb=512)
    with env.db.session() as s:
        node_uuid = s.scalars(select(Node.uuid)).one()
    resp = scraper.get(f"/monitoring/nodes/{node_uuid}/node")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    fams = _families(resp.text)
    value = {name: f.samples[0].value for name, f in fams.items() if f.samples}
    assert value["floe_node_memory_limit_bytes"] == 512 << 20
    assert 0 < value["floe_node_memory_bytes"] <= 512 << 20
    assert value["floe_node_cpu_limit_cores"] == 2.0
    assert value["floe_node_stats_simulated"] == 1
    assert 0 < value["floe_node_disk_used_bytes"] < value["floe_node_disk_size_bytes"]
    rx = {s.labels["interface"]: s.value for s in fams["floe_node_network_receive_bytes"].samples}
    assert set(rx) == {"eth0"}
    # A stopped node's target is down (503), an unknown one 404; the dockerd target has no dockerd here.
    sim.stop_node(c["tag"], c["nodes"][0])
    resp = scraper.get(f"/monitoring/nodes/{node_uuid}/node")
    assert resp.status_code == 503 and "is not running" in resp.json()["errors"][0]["detail"]
    assert scraper.get("/monitoring/nodes/00000000-0000-0000-0000-000000000000/node").status_code == 404
    assert scraper.get(f"/monitoring/nodes/{node_uuid}/dockerd").status_code == 503
    # A Swarm cluster has no slurm target.
    assert scraper.get(f"/monitoring/clusters/{c['uuid']}/slurm").status_code == 404


def test_node_stats_route_is_project_scoped(env: Env, sim) -> None:
    alpha, beta = env.new_project("alpha"), env.new_project("beta")
    c = _cluster(env, alpha, "alpha-c", managers=1, workers=1, memory_mb=1024)
    mine = TestClient(env.app, raise_server_exceptions=False, headers=env.headers(alpha))
    theirs = TestClient(env.app, raise_server_exceptions=False, headers=env.headers(beta))
    for ident in (c["uuid"], "alpha-c"):
        resp = theirs.get(f"/v1/floe/clusters/{ident}/nodes/stats")
        assert resp.status_code == 404, resp.text
        assert "alpha-c-" not in resp.text
    first = mine.get(f"/v1/floe/clusters/{c['uuid']}/nodes/stats")
    assert first.status_code == 200, first.text
    nodes = first.json()["nodes"]
    assert [n["name"] for n in nodes] == c["nodes"]
    for n in nodes:
        assert n["memory_limit_bytes"] == 1024 << 20 and n["cpu_limit_cores"] == 2.0
        assert n["simulated"] is True and n["nodegroup"] in ("default-master", "default-worker")
        assert n["cpu_seconds"] >= 0 and n["rx_bytes"] >= 0
    # A node that does not run has no numbers.
    sim.stop_node(c["tag"], c["nodes"][1])
    after = mine.get("/v1/floe/clusters/alpha-c/nodes/stats").json()["nodes"]
    assert after[1]["cpu_seconds"] is None and after[0]["cpu_seconds"] is not None
    assert after[0]["time"] >= nodes[0]["time"]


def test_discovery_names_an_address_prometheus_can_reach(env: Env) -> None:
    from floe.api.monitoring import scrape_address

    settings = env.runtime.settings
    for host, want in (("0.0.0.0", "127.0.0.1"), ("::", "[::1]"), ("10.1.2.3", "10.1.2.3"), ("fd00::1", "[fd00::1]")):
        object.__setattr__(settings, "host", host)
        assert scrape_address(env.runtime) == f"{want}:{settings.port}"


def test_slurm_counts_from_sinfo_and_squeue_output() -> None:
    """The parsing alone, on output recorded from Slurm 22.05 (a stand-in for SlurmTools: a real
    controller runs in tests/e2e/test_node_metrics.py): a node in two partitions counts once,
    state flags (down*, idle~) are dropped."""
    import subprocess

    from floe.services.monitoring_metrics import exposition, slurm_families

    outputs = {
        "sinfo": "c-node-0|allocated|2/0/0/2\nc-node-0|allocated|2/0/0/2\nc-node-1|mixed|1/1/0/2\n"
                 "c-node-2|down*|0/0/2/2\nc-node-3|idle~|0/2/0/2\n",
        "squeue": "RUNNING\nRUNNING\nPENDING\n",
    }

    class RecordedTools:
        def run(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
            return subprocess.CompletedProcess(list(args), 0, outputs[args[0]], "")

    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(exposition(slurm_families(RecordedTools())).decode())
               for s in f.samples}
    assert samples == {
        ("slurm_nodes", (("state", "allocated"),)): 1, ("slurm_nodes", (("state", "mixed"),)): 1,
        ("slurm_nodes", (("state", "down"),)): 1, ("slurm_nodes", (("state", "idle"),)): 1,
        ("slurm_jobs", (("state", "running"),)): 2, ("slurm_jobs", (("state", "pending"),)): 1,
        ("slurm_cpus_total", ()): 8, ("slurm_cpus_allocated", ()): 3,
    }

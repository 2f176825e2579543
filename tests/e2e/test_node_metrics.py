"""Node metrics and their service discovery on real clusters: every target the discovery lists is
scraped through floe with the scrape token, as floe's Prometheus does, and says true things.

Real: the floe server, node namespaces and cgroups, each node's dockerd (its metrics served on the
node's own loopback and fetched by floe from inside the node), the docker CLI over TLS, Slurm's
controller answering sinfo/squeue.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from floe.monitoring.access import scrape_token
from tests.e2e.conftest import FloeServer, objects_of
from tests.e2e.test_swarm_cluster import _tag, docker, docker_env

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def _scraper(server: FloeServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30,
                        headers={"Authorization": f"Bearer {scrape_token(server.home)}"})


def _targets(scraper: httpx.Client, cluster: str) -> list[dict]:
    resp = scraper.get("/monitoring/sd")
    assert resp.status_code == 200, resp.text
    return [g for g in resp.json() if g["labels"]["cluster"] == cluster]


def _samples(text: str) -> dict[str, list]:
    """metric name (as exposed, e.g. floe_node_cpu_seconds_total) → its samples."""
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append(s)
    return out


def _value(samples: dict[str, list], name: str, **labels: str) -> float:
    found = [s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, samples.get(name))
    return found[0]


PROBE = """
import socket, sys
s = socket.socket()
if sys.argv[1] == "mark":
    s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, 0x466C6F65)
s.settimeout(5)
try:
    s.connect(("127.0.0.1", 9323))
    print("connected")
except OSError as exc:
    print("refused" if isinstance(exc, ConnectionError) else f"error {exc!r}")
"""


def _connect_from_host_network(env: dict[str, str], mark: bool = False) -> str:
    """What a container on the node's own network namespace gets connecting to dockerd's metrics port."""
    caps = ["--cap-add", "NET_ADMIN"] if mark else []
    python_env = {k: v for k, v in env.items() if k != "DOCKER_CONFIG"}  # floe's library/python, no credential
    return docker(python_env, "run", "--rm", "--network", "host", *caps, "python", "python", "-c", PROBE,
                  "mark" if mark else "plain").strip()


def _flavor_ram(server: FloeServer) -> dict[str, int]:
    resp = server.api("GET", "/v2.1/flavors/detail")
    assert resp.status_code == 200, resp.text
    return {f["name"]: f["ram"] << 20 for f in resp.json()["flavors"]}


def test_every_swarm_node_target_through_floe(server: FloeServer, tmp_path: Path):
    server.floe("template", "create", "mon-e2e", "--coe", "swarm", "--flavor", "m1.tiny",
                "--master-flavor", "m1.small")
    server.floe("cluster", "create", "mon", "--template", "mon-e2e", "--node-count", "2", "--wait")
    tag = _tag(server, "mon")
    scraper = _scraper(server)
    assert httpx.get(server.url + "/monitoring/sd", timeout=10).status_code == 401

    nodes = {n["name"]: n for n in server.api("GET", "/v1/floe/clusters/mon/nodes").json()["nodes"]}
    groups = _targets(scraper, "mon")
    assert {(g["labels"]["node"], g["labels"]["source"]) for g in groups} == {
        (n, s) for n in nodes for s in ("node", "dockerd")}
    project = server.api("GET", "/v1/clusters/mon").json()["project_id"]
    for g in groups:
        lab = g["labels"]
        assert g["targets"] == [f"127.0.0.1:{server.port}"]
        assert lab["project_id"] == project and lab["project"] == "admin"
        assert lab["cluster_id"] == server.cluster("mon")["uuid"]
        assert lab["role"] == nodes[lab["node"]]["role"] and lab["nodegroup"] == nodes[lab["node"]]["nodegroup"]
        assert lab["__metrics_path__"] == f"/monitoring/nodes/{nodes[lab['node']]['uuid']}/{lab['source']}"

    # Every target answers; the whole cluster's scrape is quick.
    started = time.monotonic()
    answers = {(g["labels"]["node"], g["labels"]["source"]): scraper.get(g["labels"]["__metrics_path__"])
               for g in groups}
    print(f"\nscraped {len(answers)} targets of a {len(nodes)}-node cluster in "
          f"{(time.monotonic() - started) * 1000:.0f} ms")
    assert all(r.status_code == 200 for r in answers.values()), {k: r.text for k, r in answers.items()}
    ram = _flavor_ram(server)
    for name, node in nodes.items():
        samples = _samples(answers[(name, "node")].text)
        assert _value(samples, "floe_node_cpu_seconds_total") > 0
        assert _value(samples, "floe_node_memory_limit_bytes") == ram[node["flavor"]]
        assert 0 < _value(samples, "floe_node_memory_bytes") < ram[node["flavor"]]
        assert _value(samples, "floe_node_cpu_limit_cores") == 1.0
        assert 0 < _value(samples, "floe_node_disk_used_bytes") <= _value(samples, "floe_node_disk_size_bytes")
        assert _value(samples, "floe_node_stats_simulated") == 0
        dockerd = answers[(name, "dockerd")].text
        assert "engine_daemon_engine_info" in dockerd and "swarm_" in dockerd

    # Traffic: a container pulled from the registry and run on the manager over TLS.
    manager = next(n for n, v in nodes.items() if v["role"] == "manager")
    path = next(g["labels"]["__metrics_path__"] for g in groups
                if g["labels"]["node"] == manager and g["labels"]["source"] == "node")
    before = _samples(scraper.get(path).text)
    env = docker_env(server, "mon", tmp_path)
    docker(env, "run", "-d", "--name", "metrics-probe", "busybox", "sh", "-c",
           "while :; do i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 0.2; done")
    time.sleep(2)
    after = _samples(scraper.get(path).text)
    for metric in ("floe_node_network_receive_bytes_total", "floe_node_network_transmit_bytes_total"):
        assert _value(after, metric, interface="eth0") > _value(before, metric, interface="eth0"), metric
    assert _value(after, "floe_node_cpu_seconds_total") > _value(before, "floe_node_cpu_seconds_total")
    assert _value(after, "floe_container_cpu_seconds_total", container="metrics-probe") > 0
    assert _value(after, "floe_container_memory_bytes", container="metrics-probe") > 0
    # A container sharing the node's network namespace cannot read dockerd's metrics: only floe can.
    assert _connect_from_host_network(env) == "refused"
    # The guard is what refuses it: a socket with floe's mark (which needs CAP_NET_ADMIN) gets through.
    assert _connect_from_host_network(env, mark=True) == "connected"
    assert "engine_daemon_" in scraper.get(path.removesuffix("/node") + "/dockerd").text

    # A node started before nodes had a metrics address (its daemon.json says none) keeps running and
    # being measured; its dockerd target is down and says why until the node next starts.
    worker = next(n for n, v in nodes.items() if v["role"] == "worker")
    config = server.home / "nodes" / tag / worker / "daemon.json"
    original = config.read_text()
    config.write_text(json.dumps({k: v for k, v in json.loads(original).items() if k != "metrics-addr"}))
    wpath = f"/monitoring/nodes/{nodes[worker]['uuid']}"
    resp = scraper.get(wpath + "/dockerd")
    assert resp.status_code == 503 and "without a metrics address" in resp.text, resp.text
    assert scraper.get(wpath + "/node").status_code == 200
    config.write_text(original)
    # A restarted floe adopts the running nodes: every target answers again.
    server.kill9()
    server.start()
    assert all(scraper.get(g["labels"]["__metrics_path__"]).status_code == 200 for g in groups)

    # The dashboard's reading agrees, project-scoped.
    stats = server.api("GET", "/v1/floe/clusters/mon/nodes/stats").json()["nodes"]
    assert {n["name"] for n in stats} == set(nodes)
    assert all(n["memory_limit_bytes"] == ram[nodes[n["name"]]["flavor"]] and n["rx_bytes"] > 0 for n in stats)

    server.floe("cluster", "delete", "mon", "--wait")
    assert not _targets(scraper, "mon")
    assert scraper.get(path).status_code == 404
    left = objects_of(server.home, tag)
    assert not any(left.values()), left


@pytest.mark.skipif(shutil.which("sinfo") is None, reason="needs Debian's slurm-client (make install)")
def test_a_slurm_cluster_has_a_slurm_target(server: FloeServer):
    server.floe("template", "create", "mon-slurm", "--coe", "slurm", "--flavor", "m1.tiny",
                "--master-flavor", "m1.small")
    server.floe("cluster", "create", "msl", "--template", "mon-slurm", "--node-count", "2", "--wait")
    tag = _tag(server, "msl")
    scraper = _scraper(server)
    groups = _targets(scraper, "msl")
    slurm = [g["labels"] for g in groups if g["labels"]["source"] == "slurm"]
    assert len(slurm) == 1 and slurm[0]["role"] == "controller" and slurm[0]["node"] == "msl-master-0", slurm
    assert slurm[0]["__metrics_path__"] == f"/monitoring/clusters/{server.cluster('msl')['uuid']}/slurm"
    assert len([g for g in groups if g["labels"]["source"] == "node"]) == 3
    resp = scraper.get(slurm[0]["__metrics_path__"])
    assert resp.status_code == 200, resp.text
    samples = _samples(resp.text)
    assert sum(s.value for s in samples["slurm_nodes"]) == 2
    assert _value(samples, "slurm_nodes", state="idle") == 2
    assert _value(samples, "slurm_cpus_total") == 2  # m1.tiny: 1 vCPU each
    assert _value(samples, "slurm_cpus_allocated") == 0
    server.floe("cluster", "delete", "msl", "--wait")
    assert not _targets(scraper, "msl")
    left = objects_of(server.home, tag)
    assert not any(left.values()), left

"""A user's whole journey on real clusters: create, native docker, stack, resize, delete, nothing left.

Everything here is real: the floe server process, its engine, namespaces with a dockerd each,
Swarm, the registry, the stock docker CLI talking TLS to the cluster.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import DOCKER, INFRA_IP, PREFIX, FloeServer, host_objects, objects_of

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

REPO = Path(__file__).resolve().parents[2]


def docker_env(server: FloeServer, name: str, tmp_path: Path) -> dict[str, str]:
    out = server.floe("cluster", "config", name, "--dir", str(tmp_path / f"{name}-cfg"), "--force").stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("export "))
    env = dict(os.environ)
    for kv in shlex.split(line[len("export "):]):
        k, _, v = kv.partition("=")
        env[k] = v
    return env


def docker(env: dict[str, str], *args: str, check: bool = True) -> str:
    res = subprocess.run([DOCKER, *args], env=env, capture_output=True, text=True, timeout=120)
    if check and res.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {res.stderr}")
    return res.stdout


def swarm_nodes(env) -> list[dict]:
    out = docker(env, "node", "ls", "--format", "{{json .}}")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def template(server: FloeServer) -> str:
    server.floe("template", "create", "swarm-e2e", "--coe", "swarm", "--label", "purpose=e2e")
    return "swarm-e2e"


def test_cluster_lifecycle_with_native_docker(server: FloeServer, template: str, tmp_path: Path):
    res = server.floe("cluster", "create", "c1", "--template", template, "--node-count", "2", "--wait")
    assert res.returncode == 0
    c = server.cluster("c1")
    assert c["status"] == "CREATE_COMPLETE", c
    assert len(c["master_addresses"]) == 1 and len(c["node_addresses"]) == 2
    assert c["api_address"].startswith(f"tcp://{PREFIX}") and c["api_address"].endswith(":2376")
    assert c["coe_version"]

    env = docker_env(server, "c1", tmp_path)
    nodes = swarm_nodes(env)
    assert len(nodes) == 3 and all(n["Status"] == "Ready" for n in nodes), nodes

    # Without the client certificate the daemon refuses us (per-cluster CA, --tlsverify).
    # (DOCKER_CONFIG too: docker looks for certificates in its config directory, the bundle's.)
    bare = {k: v for k, v in env.items() if k not in ("DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "DOCKER_CONFIG")}
    assert subprocess.run([DOCKER, "--tls", "node", "ls"], env=bare, capture_output=True, timeout=60).returncode != 0

    # The memo's pinger stack, four replicas over the nodes, pinging each other.
    env["PINGER_TARGETS"] = " ".join(c["master_addresses"] + c["node_addresses"])
    docker(env, "stack", "deploy", "-c", str(REPO / "examples/pinger-stack.yml"), "pinger")
    end = time.monotonic() + 120
    tasks = []
    while time.monotonic() < end:
        out = docker(env, "service", "ps", "pinger_pinger", "--filter", "desired-state=running",
                     "--format", "{{.Node}} {{.CurrentState}}")
        tasks = [ln.split()[0] for ln in out.splitlines() if " Running" in ln]
        if len(tasks) == 4:
            break
        time.sleep(0.5)
    assert len(tasks) == 4, tasks
    assert len(set(tasks)) >= 2, f"replicas not spread over nodes: {tasks}"
    end = time.monotonic() + 60
    logs = ""
    while time.monotonic() < end and " ok" not in logs:
        time.sleep(1)
        logs = docker(env, "service", "logs", "--raw", "pinger_pinger", check=False)
    assert any(f"-> {ip} ok" in logs for ip in c["node_addresses"]), logs[-2000:]

    # A user's own image: saved with docker, imported with floe, run as a service by name.
    docker(env, "pull", "busybox:latest")  # through the registry mirror
    docker(env, "tag", "busybox:latest", "e2e-tools:1")
    docker(env, "save", "-o", str(tmp_path / "img.tar"), "e2e-tools:1")
    out = server.floe("image", "import", str(tmp_path / "img.tar")).stdout
    # Into the project's namespace: `<project id>/e2e-tools:1`, pulled with the cluster's
    # credential (config.json from `floe cluster config`, passed on by --with-registry-auth).
    image = next(w for w in out.split() if w.endswith("/e2e-tools:1"))
    docker(env, "service", "create", "--detach", "--with-registry-auth", "--name", "tools", "--replicas", "3",
           "--endpoint-mode", "dnsrr", "--constraint", "node.role==worker", image, "sleep", "3600")
    end = time.monotonic() + 60
    while time.monotonic() < end:
        out = docker(env, "service", "ps", "tools", "--filter", "desired-state=running",
                     "--format", "{{.CurrentState}}")
        if out.count("Running") == 3:
            break
        time.sleep(0.5)
    assert out.count("Running") == 3, docker(env, "service", "ps", "--no-trunc", "tools")
    # The memo's `image: python` resolves to floe's shipped library/python, no credential needed.
    python_env = {k: v for k, v in env.items() if k != "DOCKER_CONFIG"}
    stack = tmp_path / "python-stack.yml"
    stack.write_text('version: "3.6"\nservices:\n  py:\n    image: python\n'
                     '    command: ["python", "-c", "import time; print(\'py ok\', flush=True); time.sleep(3600)"]\n'
                     '    deploy:\n      replicas: 2\n      endpoint_mode: dnsrr\n')
    docker(python_env, "stack", "deploy", "-c", str(stack), "pystack")
    end, logs = time.monotonic() + 90, ""
    while time.monotonic() < end and logs.count("py ok") < 2:
        time.sleep(1)
        logs = docker(env, "service", "logs", "--raw", "pystack_py", check=False)
    assert logs.count("py ok") == 2, docker(env, "service", "ps", "--no-trunc", "pystack_py")
    docker(env, "stack", "rm", "pystack")

    # Scale up to 5 workers, then down to 2: the swarm follows, services keep running.
    server.floe("cluster", "resize", "c1", "--node-count", "5", "--wait")
    c = server.cluster("c1")
    assert c["status"] == "UPDATE_COMPLETE" and c["node_count"] == 5 and len(c["node_addresses"]) == 5
    assert sum(n["Status"] == "Ready" for n in swarm_nodes(env)) == 6
    server.floe("cluster", "resize", "c1", "--node-count", "2", "--wait")
    c = server.cluster("c1")
    assert c["status"] == "UPDATE_COMPLETE" and c["node_count"] == 2
    nodes = swarm_nodes(env)
    assert len(nodes) == 3 and all(n["Status"] == "Ready" for n in nodes), nodes
    # The newest workers went first.
    names = sorted(n["Hostname"] for n in nodes)
    assert names == ["c1-master-0", "c1-node-0", "c1-node-1"], names

    tag = _tag(server, "c1")
    assert objects_of(server.home, tag)["netns"], "cluster objects should exist before delete"
    server.floe("cluster", "delete", "c1", "--wait")
    assert server.api("GET", "/v1/clusters/c1").status_code == 404
    assert not any(objects_of(server.home, tag).values()), objects_of(server.home, tag)


def test_health_reports_a_dead_node(server: FloeServer, template: str):
    server.floe("cluster", "create", "c2", "--template", template, "--node-count", "1", "--wait")
    c = server.wait_status("c2", {"CREATE_COMPLETE"})
    tag = _tag(server, "c2")
    end = time.monotonic() + 30
    while time.monotonic() < end and server.cluster("c2")["health_status"] != "HEALTHY":
        time.sleep(0.5)
    assert server.cluster("c2")["health_status"] == "HEALTHY"
    # Kill the worker's dockerd; the swarm and floe notice.
    victims = [p for p in objects_of(server.home, tag)["processes"] if "dockerd" in p and "/c2-node-0/" in p]
    assert victims, objects_of(server.home, tag)["processes"]
    for p in victims:
        try:
            os.kill(int(p.split()[0]), 9)
        except ProcessLookupError:
            pass  # docker-init goes with its dockerd
    end = time.monotonic() + 60
    while time.monotonic() < end:
        c = server.cluster("c2")
        if c["health_status"] == "UNHEALTHY":
            break
        time.sleep(0.5)
    assert c["health_status"] == "UNHEALTHY", c
    assert "c2-node-0" in json.dumps(c["health_status_reason"])
    server.floe("cluster", "delete", "c2", "--wait")
    assert not any(objects_of(server.home, tag).values())


def test_crash_mid_create_resumes(server: FloeServer, template: str):
    server.floe("cluster", "create", "c3", "--template", template, "--node-count", "2")
    # Kill the server hard as soon as nodes are being started or joined.
    end = time.monotonic() + 60
    while time.monotonic() < end:
        reason = server.api("GET", "/v1/clusters/c3").json().get("status_reason") or ""
        if reason.startswith(("step nodes", "step swarm")):
            break
        time.sleep(0.02)
    server.kill9()
    server.start()
    c = server.wait_status("c3", {"CREATE_COMPLETE", "CREATE_FAILED"}, timeout=180)
    assert c["status"] == "CREATE_COMPLETE", c
    assert len(c["node_addresses"]) == 2
    tag = _tag(server, "c3")
    server.floe("cluster", "delete", "c3", "--wait")
    assert not any(objects_of(server.home, tag).values())


def test_cleanup_removes_orphans(server: FloeServer, template: str):
    server.floe("cluster", "create", "c4", "--template", template, "--node-count", "0", "--wait")
    tag = _tag(server, "c4")
    # Make the cluster an orphan: the database forgets it while its node keeps running.
    import sqlite3

    db = sqlite3.connect(server.home / "floe.db")
    db.execute("PRAGMA foreign_keys=ON")
    cid = db.execute("SELECT id FROM clusters WHERE name='c4'").fetchone()[0]
    db.execute("DELETE FROM nodes WHERE cluster_id=?", (cid,))
    db.execute("DELETE FROM operations WHERE cluster_id=?", (cid,))
    db.execute("DELETE FROM clusters WHERE id=?", (cid,))
    db.commit()
    db.close()
    assert objects_of(server.home, tag)["netns"]
    out = server.floe("cleanup").stdout
    assert tag in out
    assert not any(objects_of(server.home, tag).values()), objects_of(server.home, tag)


def test_nothing_left_after_all(server: FloeServer):
    objs = host_objects(server.home)
    assert not any(objs.values()), objs


def test_cleanup_all_removes_floe_from_the_host(server: FloeServer):
    """Last: with the server stopped, `floe cleanup --all` takes the registry and infra network too."""
    server.floe("cluster", "create", "c5", "--template", "swarm-e2e", "--node-count", "1", "--wait")
    server.stop()
    out = server.floe("cleanup", "--all").stdout
    assert "registry" in out
    objs = host_objects(server.home)
    assert not any(objs.values()), objs
    rules = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True).stdout
    assert INFRA_IP not in rules
    addrs = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    assert PREFIX not in addrs
    assert not (server.home / "registry").exists()


def _tag(server: FloeServer, name: str) -> str:
    import sqlite3

    db = sqlite3.connect(server.home / "floe.db")
    try:
        return db.execute("SELECT host_tag FROM clusters WHERE name=?", (name,)).fetchone()[0]
    finally:
        db.close()

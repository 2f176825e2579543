"""floe's monitoring stack against a live floe: real Prometheus and Alertmanager scraping a real server.

The server is floe's own (its app under uvicorn, its engine, health round and share work, SQLite in
a tmp FLOE_HOME) on the simulated provider, floe's feature for testing the control plane without
machines: its nodes report simulated usage (providers/simulated `node_stats`), served by floe's
real node targets. Prometheus (Debian's, scraping every second) finds them through floe's HTTP
service discovery. The Grafana dashboard's expressions are all run against it (those that only
real nodes or real shares give data for are run by tests/e2e/test_monitoring_e2e.py), and a node
made to fail drives two alerts through Prometheus to Alertmanager.

Numbers (printed with -s): time from `up()` to every node target `up == 1`, Prometheus's RSS.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from floe.config import Settings
from floe.monitoring.stack import MonitoringStack
from floe.runtime import Runtime
from tests.engine.conftest import FLOE, FloeProcess, _free_port
from tests.monitoring.stack_helpers import assert_no_leak, free_ports, monitoring_pids, query, rss_mib, wait_for

pytestmark = [
    pytest.mark.skipif(not (shutil.which("prometheus") and shutil.which("prometheus-alertmanager")),
                       reason="Debian's prometheus and prometheus-alertmanager are not installed (make apt)"),
    pytest.mark.timeout(300),
]
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy/grafana/floe.json"
# Metrics only real nodes give (dockerd, Slurm): tests/e2e/test_monitoring_e2e.py runs those.
# A share's use comes from its backend, which the simulated one measures too.
REAL_ONLY = re.compile(r"\b(engine_daemon_\w+|swarm_\w+|slurm_\w+)\b")
RANGE = "10.193.0.0/16"
WORKERS = 2


@dataclass
class World:
    url: str
    token: str
    runtime: Runtime
    stack: MonitoringStack
    prometheus: str
    alertmanager: str
    project: str
    cluster: str
    nodes: list[str]
    time_to_up: float

    def api(self, method: str, path: str, **kw) -> httpx.Response:
        headers = {"X-Auth-Token": self.token, "OpenStack-API-Version": "container-infra latest",
                   "X-OpenStack-Manila-API-Version": "2.65", **kw.pop("headers", {})}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kw)


def _serve(settings: Settings):
    """floe's server as `floe serve` wires it (engine, share work, health round), in this process."""
    import uvicorn

    from floe.api.app import create_app
    from floe.engine import share_work
    from floe.monitoring.health import HealthMonitor
    from floe.server import build_runtime, make_provider
    from floe.services.identity import bootstrap_admin

    runtime = build_runtime(settings, make_provider(settings))
    token = bootstrap_admin(runtime.db, settings.admin_token_file)
    share_work.register(runtime.engine.runner, runtime)
    health = HealthMonitor(runtime, runtime.engine.drivers)
    runtime.engine.every(settings.health_interval, "health round", health.check_all)
    runtime.engine.start()
    server = uvicorn.Server(uvicorn.Config(create_app(runtime), host=settings.host, port=settings.port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, name="floe-test-server", daemon=True)
    thread.start()
    wait_for("floe's API starts", lambda: server.started, 30, 0.02)
    return runtime, token, server, thread, health


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("monitoring") / "home"
    prom_port, am_port = free_ports(2)
    settings = Settings(
        home=home, port=_free_port(), provider="simulated", address_range=RANGE, share_types=("simulated",),
        health_interval=1.0, prometheus_port=prom_port, alertmanager_port=am_port, scrape_interval=1,
    )
    runtime, token, server, thread, health = _serve(settings)
    stack = MonitoringStack(settings)
    try:
        w = World(f"http://127.0.0.1:{settings.port}", token, runtime, stack, stack.url("prometheus"),
                  stack.url("alertmanager"), "admin", "mon", [], 0.0)
        r = w.api("POST", "/v1/clustertemplates", json={"name": "sim", "coe": "swarm"})
        assert r.status_code == 201, r.text
        r = w.api("POST", "/v1/clusters", json={"name": "mon", "cluster_template_id": r.json()["uuid"],
                                                "master_count": 1, "node_count": WORKERS})
        assert r.status_code == 202, r.text
        r = w.api("POST", "/v2/shares", json={"share": {"share_proto": "LOCALFS", "size": 1, "name": "data"}})
        assert r.status_code in (200, 202), r.text
        wait_for("the cluster is built", lambda: w.api("GET", "/v1/clusters/mon").json()["status"] == "CREATE_COMPLETE",
                 60)
        w.nodes = [n["name"] for n in w.api("GET", "/v1/floe/clusters/mon/nodes").json()["nodes"]]
        w.project = w.api("GET", "/v1/clusters/mon").json().get("project_name") or _project_name(runtime)
        started = time.monotonic()
        stack.up()
        wait_for("every node target is up", lambda: len(query(w.prometheus, 'up{job="floe-nodes", cluster="mon"} == 1'))
                 == len(w.nodes), 60)
        w.time_to_up = time.monotonic() - started
        # floe's own target and the stack's are static, but their first scrape may still be due.
        wait_for("floe's and the stack's targets are up", lambda: len(query(
            w.prometheus, 'up{job=~"floe|monitoring"} == 1')) == 3, 60)
        yield w
    finally:
        stack.down()
        server.should_exit = True
        thread.join(timeout=15)
        runtime.engine.stop(wait=True)
        health.stop()
        runtime.provider.close()
        runtime.db.dispose()
        assert_no_leak(home)


def _project_name(runtime: Runtime) -> str:
    from sqlalchemy import select

    from floe.db.models import Cluster, Project

    with runtime.db.session() as s:
        return s.scalar(select(Project.name).join(Cluster, Cluster.project_id == Project.id).limit(1))


def test_every_node_of_the_cluster_is_up(world: World):
    up = query(world.prometheus, 'up{job="floe-nodes"}')
    by_node = {r["metric"]["node"]: r["value"][1] for r in up if r["metric"]["source"] == "node"}
    assert by_node == dict.fromkeys(world.nodes, "1"), by_node
    labels = next(r["metric"] for r in up)
    assert {labels["project"], labels["cluster"], labels["source"]} == {world.project, "mon", "node"}
    assert {"nodegroup", "role", "node"} <= set(labels)
    floe_up = query(world.prometheus, 'up{job="floe"}')
    assert [r["value"][1] for r in floe_up] == ["1"]
    # The stack watches itself too.
    assert sorted(r["value"][1] for r in query(world.prometheus, 'up{job="monitoring"}')) == ["1", "1"]
    print(f"\nnode targets up {world.time_to_up:.1f}s after up(); "
          f"Prometheus RSS {rss_mib(world.stack.pid('prometheus')):.0f} MiB, "
          f"Alertmanager RSS {rss_mib(world.stack.pid('alertmanager')):.0f} MiB")


def dashboard_expressions() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of the dashboard, template variables as written."""
    dash = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dash["panels"] for t in p.get("targets", [])]


def substitute(expr: str, project: str, cluster: str) -> str:
    """What Grafana sends: the chosen project and cluster, and a rate window of four scrapes."""
    return (expr.replace("$__rate_interval", "10s").replace("$project", re.escape(project))
            .replace("$cluster", re.escape(cluster)))


def test_the_dashboard_uses_its_variables_and_known_metrics():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["schemaVersion"] >= 36
    names = [v["name"] for v in dash["templating"]["list"]]
    assert names == ["DS_PROMETHEUS", "project", "cluster"]
    exprs = dashboard_expressions()
    assert len(exprs) >= 30
    spec = Path("/tmp/metrics-spec.md")
    used = {m for _, e in exprs for m in re.findall(r"\b((?:floe|slurm)_[a-z_]+?)(?:_bucket)?\b", e)}
    if spec.exists():  # the metric names contract between the helpers that wrote floe's metrics
        assert used <= set(re.findall(r"\b((?:floe|slurm)_[a-z_]+)", spec.read_text())), used
    for panel in dash["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]


def test_every_dashboard_expression_returns_data(world: World):
    # Let rates see a few scrapes after the API calls above.
    wait_for("counters have several samples", lambda: query(
        world.prometheus, 'count_over_time(floe_api_requests_total[10s]) >= 4'), 30)
    empty = []
    checked = 0
    for title, expr in dashboard_expressions():
        if REAL_ONLY.search(expr):
            continue
        promql = substitute(expr, world.project, "mon")
        checked += 1
        if not query(world.prometheus, promql):
            empty.append((title, promql))
    assert not empty, empty
    assert checked >= 25


def test_a_failed_node_fires_alerts_that_reach_alertmanager(world: World):
    tag = world.runtime.provider  # the simulated machines the server runs
    from sqlalchemy import select

    from floe.db.models import Cluster

    with world.runtime.db.session() as s:
        host_tag = s.scalar(select(Cluster.host_tag).where(Cluster.name == "mon"))
    victim = world.nodes[-1]
    tag.fail_node(host_tag, victim)

    def firing(name: str) -> list[dict]:
        alerts = httpx.get(f"{world.prometheus}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == name and a["state"] == "firing"]

    down = wait_for("FloeNodeDown fires", lambda: firing("FloeNodeDown"), 60)
    assert [a["labels"]["node"] for a in down] == [victim]
    assert down[0]["annotations"]["summary"] == f"Node {victim} of cluster {world.project}/mon is down"
    unhealthy = wait_for("FloeClusterUnhealthy fires", lambda: firing("FloeClusterUnhealthy"), 60)
    assert [a["labels"]["cluster"] for a in unhealthy] == ["mon"]

    def received() -> set[str]:
        alerts = httpx.get(f"{world.alertmanager}/api/v2/alerts", timeout=5).json()
        return {a["labels"]["alertname"] for a in alerts if a["status"]["state"] == "active"}

    wait_for("Alertmanager holds both alerts", lambda: {"FloeNodeDown", "FloeClusterUnhealthy"} <= received(), 60)
    # Only what is wrong fires: floe itself and the other nodes are fine.
    assert not firing("FloeDown") and not firing("FloeShareNearlyFull")


@pytest.mark.timeout(180)
def test_floe_server_with_floe_monitoring_starts_and_stops_the_stack(tmp_path: Path):
    home = tmp_path / "home"
    prom_port, am_port = free_ports(2)
    env = {"FLOE_MONITORING": "1", "FLOE_PROMETHEUS_PORT": str(prom_port), "FLOE_ALERTMANAGER_PORT": str(am_port),
           "FLOE_SCRAPE_INTERVAL": "1", "FLOE_ADDRESS_RANGE": RANGE}
    server = FloeProcess(home, **env)
    server.start()
    try:
        prometheus = f"http://127.0.0.1:{prom_port}"
        wait_for("floe's own target is up", lambda: query(prometheus, 'up{job="floe"} == 1'), 60)
        status = subprocess.run([FLOE, "monitoring", "status"], env={**server.env}, capture_output=True, text=True,
                                timeout=30)
        assert status.returncode == 0 and status.stdout.count("running (pid") == 2, status
        assert len(monitoring_pids(home)) == 2
    finally:
        server.stop()
    assert server.proc is not None and server.proc.returncode in (0, -signal.SIGTERM)
    assert_no_leak(home)  # the stack the server started does not outlive it (killed and failed if it does)
    assert not os.path.exists(home / "monitoring/prometheus/prometheus.pid")

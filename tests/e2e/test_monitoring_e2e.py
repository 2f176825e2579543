"""floe's Prometheus on real clusters: the dashboard's expressions that only real nodes give data for.

Real: the floe server (tests/e2e/conftest.py), a Swarm cluster's nodes with their dockerd (its
engine_daemon_* and swarm_* metrics) and a container (floe_container_*), a Slurm cluster's
controller (slurm_*), Debian's Prometheus and Alertmanager run by floe's MonitoringStack on
loopback ports 19590-19599. tests/monitoring/test_stack.py runs the other expressions against a
server on the simulated provider.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from floe.config import Settings
from floe.monitoring.stack import MonitoringStack
from tests.e2e.conftest import FloeServer
from tests.e2e.test_swarm_cluster import docker, docker_env
from tests.monitoring.stack_helpers import assert_no_leak, free_ports, query, wait_for
from tests.monitoring.test_stack import REAL_ONLY, dashboard_expressions, substitute

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not shutil.which("prometheus"), reason="Debian's prometheus is not installed (make apt)"),
    pytest.mark.timeout(900),
]
# Per-node panels run here too, on real nodes' numbers (cgroups, network namespaces, containers).
NODE_LEVEL = re.compile(r"\b(floe_node_\w+|floe_container_\w+)\b")


def test_real_node_expressions_return_data(server: FloeServer, tmp_path: Path):
    slurm = shutil.which("sinfo") is not None
    server.floe("template", "create", "pmon-t", "--coe", "swarm", "--flavor", "m1.tiny", "--master-flavor", "m1.tiny")
    server.floe("cluster", "create", "pmon", "--template", "pmon-t", "--node-count", "1", "--wait")
    if slurm:
        server.floe("template", "create", "pslurm-t", "--coe", "slurm", "--flavor", "m1.tiny",
                    "--master-flavor", "m1.tiny")
        server.floe("cluster", "create", "pslurm", "--template", "pslurm-t", "--node-count", "1", "--wait")
        server.floe("job", "submit", "pslurm", "-N", "1", "--", "sleep", "300")  # slurm_jobs{state="running"}
    env = docker_env(server, "pmon", tmp_path)
    docker(env, "run", "-d", "--name", "busy", "busybox", "sh", "-c", "while :; do sleep 0.1; done")

    prom_port, am_port = free_ports(2)
    stack = MonitoringStack(Settings(home=server.home, port=server.port, prometheus_port=prom_port,
                                     alertmanager_port=am_port, scrape_interval=1))
    try:
        started = time.monotonic()
        stack.up()
        prometheus = stack.url("prometheus")
        nodes = 2 + (2 if slurm else 0)
        wait_for("every node target is up", lambda: len(query(
            prometheus, 'up{job="floe-nodes", source="node", cluster=~"pmon|pslurm"} == 1')) == nodes, 120)
        print(f"\n{nodes} real node targets up {time.monotonic() - started:.1f}s after up()")
        wait_for("dockerd and slurm targets are up", lambda: {r["metric"]["source"] for r in query(
            prometheus, 'up{job="floe-nodes", source!="node"} == 1')} >= ({"dockerd", "slurm"} if slurm
                                                                            else {"dockerd"}), 120)
        time.sleep(12)  # rates over 10 s need samples across it
        empty, checked = [], set()
        for title, expr in dashboard_expressions():
            names = set(REAL_ONLY.findall(expr)) | set(NODE_LEVEL.findall(expr))
            if not names or (not slurm and any(n.startswith("slurm_") for n in names)):
                continue
            cluster = "pslurm" if any(n.startswith("slurm_") for n in names) else "pmon"
            promql = substitute(expr, "admin", cluster)
            checked |= names
            if not query(prometheus, promql):
                empty.append((title, promql))
        assert not empty, empty
        assert {"engine_daemon_container_states_containers", "swarm_manager_nodes", "floe_container_cpu_seconds_total",
                "floe_node_network_receive_bytes_total"} <= checked
        assert not slurm or {"slurm_nodes", "slurm_jobs", "slurm_cpus_total"} <= checked
    finally:
        stack.down()
        docker(env, "rm", "-f", "busy", check=False)
        server.floe("cluster", "delete", "pmon", "--wait", check=False)
        if slurm:
            server.floe("cluster", "delete", "pslurm", "--wait", check=False)
    assert_no_leak(server.home)

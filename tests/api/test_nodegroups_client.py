"""The stock `openstack coe nodegroup …` commands (python-openstackclient with python-magnumclient
5.0) against a real floe server whose engine runs on the simulated provider.

The server is the real app under uvicorn with the real engine; the simulated provider and COE
driver stand in for the machines (floe's own test provider: nothing is made on the host), so
operations really start, run their steps and end. Commands are the ones a user types, with
the admin_token auth type pointing the CLI straight at floe (see test_openstack_cli.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from floe.api.app import create_app
from floe.config import Settings
from floe.runtime import Runtime
from floe.server import build_runtime, make_provider
from floe.services import identity

from .conftest import free_port

OPENSTACK = Path(sys.executable).parent / "openstack"
LATEST = {"OpenStack-API-Version": "container-infra latest"}
# Simulated nodes touch nothing on the host; the range only feeds floe's address table.
RANGE = "10.0.0.0/8"
WAIT = 120.0

pytestmark = pytest.mark.skipif(not OPENSTACK.exists(), reason="python-openstackclient is not installed")


@dataclass
class Server:
    url: str
    token: str
    runtime: Runtime

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, headers={"X-Auth-Token": self.token, **LATEST},
                             timeout=30, **kw)

    def openstack(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(OPENSTACK), "--os-auth-type", "admin_token", "--os-endpoint", f"{self.url}/v1",
               "--os-token", self.token, *args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc

    def show(self, *args: str) -> Any:
        return json.loads(self.openstack(*args, "-f", "json").stdout)

    def until(self, what: str, probe: Callable[[], Any], timeout: float = WAIT) -> Any:
        """`probe()` until it returns something true; fails naming `what` (and the last value)."""
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            last = probe()
            if last:
                return last
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}: last saw {last!r}")

    def group(self, cluster: str, name: str) -> dict | None:
        resp = self.api("GET", f"/v1/clusters/{cluster}/nodegroups/{name}")
        return resp.json() if resp.status_code == 200 else None

    def settled_group(self, cluster: str, name: str, status: str) -> dict:
        """Until the group has `status` and its cluster runs no operation (FAILED ends the wait)."""
        def probe() -> dict | None:
            g = self.group(cluster, name)
            assert g is None or not g["status"].endswith("FAILED"), g
            c = self.api("GET", f"/v1/clusters/{cluster}").json()
            assert not c["status"].endswith("FAILED"), c
            return g if g and g["status"] == status and not c["status"].endswith("IN_PROGRESS") else None
        return self.until(f"nodegroup {name} {status}", probe)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """floe (API + engine) on the simulated provider, under uvicorn on 127.0.0.1."""
    home = tmp_path_factory.mktemp("nodegroups-home")
    settings = Settings(home=home, provider="simulated", address_range=RANGE)
    provider = make_provider(settings)
    runtime = build_runtime(settings, provider)
    token = identity.bootstrap_admin(runtime.db, settings.admin_token_file)
    assert token
    runtime.engine.start()  # type: ignore[union-attr]
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, name="floe-nodegroups-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield Server(f"http://127.0.0.1:{port}", token, runtime)
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
        runtime.engine.stop(wait=True)  # type: ignore[union-attr]
        provider.close()
        runtime.db.dispose()


@pytest.fixture(scope="module")
def cluster(server: Server) -> Iterator[str]:
    """A cluster made with the openstack CLI, CREATE_COMPLETE; deleted (and gone) afterwards."""
    name = f"ngc-{uuid.uuid4().hex[:6]}"
    server.openstack("coe", "cluster", "template", "create", "--coe", "swarm-mode", "--image", "floe-node",
                     "--external-network", "none", f"{name}-tpl")
    server.openstack("coe", "cluster", "create", "--cluster-template", f"{name}-tpl", "--node-count", "1",
                     "--labels", "team=astro", name)
    server.until(f"cluster {name} CREATE_COMPLETE",
                 lambda: server.api("GET", f"/v1/clusters/{name}").json()["status"] == "CREATE_COMPLETE")
    yield name
    server.openstack("coe", "cluster", "delete", name)
    server.until(f"cluster {name} deleted", lambda: server.api("GET", f"/v1/clusters/{name}").status_code == 404)
    server.openstack("coe", "cluster", "template", "delete", f"{name}-tpl")


def test_the_default_groups_as_the_cli_lists_them(server: Server, cluster: str) -> None:
    rows = server.show("coe", "nodegroup", "list", cluster)
    assert [(r["name"], r["role"], r["node_count"], r["status"]) for r in rows] == [
        ("default-master", "master", 1, "CREATE_COMPLETE"), ("default-worker", "worker", 1, "CREATE_COMPLETE")]
    shown = server.show("coe", "nodegroup", "show", cluster, "default-worker")
    assert shown["is_default"] is True and shown["labels"] == {"team": "astro"}
    masters = server.show("coe", "nodegroup", "list", cluster, "--role", "master")
    assert [r["name"] for r in masters] == ["default-master"]


def test_nodegroup_lifecycle(server: Server, cluster: str) -> None:
    out = server.openstack("coe", "nodegroup", "create", cluster, "gpu", "--node-count", "2", "--min-nodes", "1",
                           "--max-nodes", "4", "--flavor", "m1.tiny", "--labels", "a=b", "--node-labels", "x=y",
                           "--node-taints", "k=v:NoSchedule").stdout
    assert "Request to create nodegroup" in out and "accepted" in out
    listed = server.show("coe", "nodegroup", "list", cluster)
    assert "gpu" in [r["name"] for r in listed]

    # The engine builds its nodes.
    server.settled_group(cluster, "gpu", "CREATE_COMPLETE")
    shown = server.show("coe", "nodegroup", "show", cluster, "gpu")
    assert (shown["node_count"], shown["min_node_count"], shown["max_node_count"]) == (2, 1, 4)
    assert shown["flavor_id"] == "m1.tiny" and shown["role"] == "worker" and shown["is_default"] is False
    assert shown["labels"] == {"a": "b"} and shown["labels_added"] == {"a": "b"}
    assert shown["labels_skipped"] == {"team": "astro"}
    assert shown["node_labels"] == {"x": "y"}
    assert shown["node_taints"] == [{"key": "k", "value": "v", "effect": "NoSchedule"}]
    assert len(shown["node_addresses"]) == 2

    # python-magnumclient 5.0 spells `update … replace min_node_count=2` as --min-nodes.
    out = server.openstack("coe", "nodegroup", "update", cluster, "gpu", "--min-nodes", "2").stdout
    assert "accepted" in out
    assert server.show("coe", "nodegroup", "show", cluster, "gpu")["min_node_count"] == 2

    server.openstack("coe", "cluster", "resize", "--nodegroup", "gpu", cluster, "3")
    grown = server.settled_group(cluster, "gpu", "UPDATE_COMPLETE")
    assert grown["node_count"] == 3 and len(grown["node_addresses"]) == 3
    # Outside the bounds (min 2): refused, and the CLI says why.
    failed = server.openstack("coe", "cluster", "resize", "--nodegroup", "gpu", cluster, "1", check=False)
    assert failed.returncode != 0 and "outside the allowed range" in failed.stderr

    out = server.openstack("coe", "nodegroup", "delete", cluster, "gpu").stdout
    assert "Request to delete nodegroup gpu has been accepted" in out
    server.until("nodegroup gpu gone", lambda: server.group(cluster, "gpu") is None)
    rows = server.show("coe", "nodegroup", "list", cluster)
    assert [r["name"] for r in rows] == ["default-master", "default-worker"]


def test_node_labels_and_taints_change_with_update(server: Server, cluster: str) -> None:
    server.openstack("coe", "nodegroup", "create", cluster, "infra", "--node-count", "1")
    server.settled_group(cluster, "infra", "CREATE_COMPLETE")
    server.openstack("coe", "nodegroup", "update", cluster, "infra", "--node-labels", "workload=db",
                     "--node-taints", "dedicated=db:NoExecute,spot:PreferNoSchedule")
    shown = server.settled_group(cluster, "infra", "UPDATE_COMPLETE")
    assert shown["node_labels"] == {"workload": "db"}
    assert shown["node_taints"] == [{"key": "dedicated", "value": "db", "effect": "NoExecute"},
                                    {"key": "spot", "value": "", "effect": "PreferNoSchedule"}]
    server.openstack("coe", "nodegroup", "delete", cluster, "infra")
    server.until("nodegroup infra gone", lambda: server.group(cluster, "infra") is None)


def test_refusals_reach_the_user(server: Server, cluster: str) -> None:
    cases = [
        (("coe", "nodegroup", "create", cluster, "bad", "--min-nodes", "3", "--max-nodes", "2"), "HTTP 400"),
        (("coe", "nodegroup", "create", cluster, "bad", "--role", "master"), "master nodegroup"),
        (("coe", "nodegroup", "create", cluster, "bad", "--flavor", "m9.huge"), "m9.huge"),
        (("coe", "nodegroup", "create", cluster, "default-worker"), "HTTP 409"),
        (("coe", "nodegroup", "show", cluster, "nope"), "HTTP 404"),
    ]
    for args, fragment in cases:
        proc = server.openstack(*args, check=False)
        assert proc.returncode != 0, args
        assert fragment in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
    # The plugin reports a failed delete but exits 0: the message is what the user sees.
    proc = server.openstack("coe", "nodegroup", "delete", cluster, "default-worker", check=False)
    assert "Deleting a default nodegroup is not supported" in proc.stdout + proc.stderr
    rows = server.show("coe", "nodegroup", "list", cluster)
    assert [r["name"] for r in rows] == ["default-master", "default-worker"]

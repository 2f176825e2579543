"""Shares on real clusters: create, allow, attach, write on one node and read on another, the size
limit, read-only access, detach, a scale-up that sees the share, and the data outliving the
cluster, a new cluster and `floe cleanup --all`; nothing of it left on the host at the end.

Runs before test_swarm_cluster.py (whose last test stops the shared server), on the same
server and range (10.180.0.0/16).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import DOCKER, FloeServer
from tests.e2e.test_swarm_cluster import docker, docker_env

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def floe_json(server: FloeServer, *args: str) -> dict | list:
    return json.loads(server.floe(*args, "-f", "json").stdout)


def node_env(server: FloeServer, cluster: str, node: str, tmp_path: Path) -> dict[str, str]:
    """The cluster's docker client settings pointed at one node's own dockerd (TLS, same CA)."""
    env = docker_env(server, cluster, tmp_path)
    (address,) = [n["address"] for n in floe_json(server, "cluster", "nodes", cluster) if n["name"] == node]
    return {**env, "DOCKER_HOST": f"tcp://{address}:2376"}


def run(env: dict[str, str], script: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    """A busybox container on the node `env` points at, with /mnt/data bound at /data."""
    for _ in range(3):  # a loaded host may drop the first TLS connection to a fresh node
        res = subprocess.run(
            [DOCKER, "run", "--rm", "--mount", "type=bind,src=/mnt/data,dst=/data", *extra, "busybox", "sh", "-c",
             script],
            env=env, capture_output=True, text=True, timeout=180,
        )
        if "Cannot connect to the Docker daemon" not in res.stderr:
            break
        time.sleep(2)
    if check and res.returncode != 0:
        raise AssertionError(f"container failed ({res.returncode}): {res.stdout}\n{res.stderr}")
    return res


def loops_of(home: Path) -> list[str]:
    out = subprocess.run(["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"],
                         capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(home) in line]


def mounts_of(path: Path) -> list[str]:
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4].startswith(str(path))]


def wait_share(server: FloeServer, name: str, want: str, timeout: float = 60) -> dict:
    end = time.monotonic() + timeout
    share: dict = {}
    while time.monotonic() < end:
        res = server.floe("share", "show", name, "-f", "json", check=False)
        if res.returncode == 0:
            share = json.loads(res.stdout)
            if share["status"] == want:
                return share
        time.sleep(0.3)
    raise AssertionError(f"share {name} did not become {want}: {share}")


@pytest.fixture(scope="module")
def template(server: FloeServer) -> str:
    server.floe("template", "create", "swarm-shares", "--coe", "swarm")
    return "swarm-shares"


def test_share_journey(server: FloeServer, template: str, tmp_path: Path) -> None:
    # A share, allowed to a cluster that does not exist yet, attached when the cluster is created.
    started = time.monotonic()
    share = floe_json(server, "share", "create", "1", "--name", "data", "--wait")
    print(f"\nshare create (CLI, --wait): {time.monotonic() - started:.2f}s")
    assert share["status"] == "available" and share["size"] == 1
    image = server.home / "storage/local/images" / f"{share['id']}.img"
    assert image.stat().st_size == 2**30
    server.floe("share", "access", "allow", "data", "--cluster", "sh1")
    server.floe("cluster", "create", "sh1", "--template", template, "--node-count", "1", "--share", "data", "--wait")
    (m,) = floe_json(server, "cluster", "shares", "sh1")
    assert m["path"] == "/mnt/data" and m["access_level"] == "rw" and m["state"] == "attached", m
    assert sorted(m["nodes"]) == ["sh1-master-0", "sh1-node-0"]

    # A swarm service on node A writes; a container on node B reads.
    env = docker_env(server, "sh1", tmp_path)
    docker(env, "service", "create", "--detach", "--name", "writer", "--mode", "replicated-job", "--no-resolve-image",
           "--constraint", "node.hostname==sh1-master-0", "--mount", "type=bind,src=/mnt/data,dst=/data",
           "busybox", "sh", "-c", "echo written-on-A > /data/hello.txt")
    end = time.monotonic() + 60
    while "Complete" not in docker(env, "service", "ps", "writer", "--format", "{{.CurrentState}}"):
        assert time.monotonic() < end, docker(env, "service", "ps", "writer", "--no-trunc")
        time.sleep(0.5)
    node_b = node_env(server, "sh1", "sh1-node-0", tmp_path)
    assert run(node_b, "cat /data/hello.txt").stdout.strip() == "written-on-A"

    # The size is a hard limit: ENOSPC before 1 GiB is written, and the space comes back.
    full = run(node_b, "dd if=/dev/zero of=/data/big bs=1M count=1100; echo rc=$?; rm /data/big", check=False)
    assert "No space left on device" in full.stderr + full.stdout and "rc=1" in full.stdout, full

    # A node added later sees the share too.
    server.floe("cluster", "resize", "sh1", "--node-count", "2", "--wait")
    node_c = node_env(server, "sh1", "sh1-node-1", tmp_path)
    assert run(node_c, "cat /data/hello.txt").stdout.strip() == "written-on-A"

    # Detach: the nodes no longer have it; attach again read-only: readable, not writable.
    server.floe("cluster", "detach", "sh1", "--share", "data", "--wait")
    gone = subprocess.run([DOCKER, "run", "--rm", "--mount", "type=bind,src=/mnt/data,dst=/data", "busybox", "true"],
                          env=node_b, capture_output=True, text=True, timeout=60)
    assert gone.returncode != 0 and "/mnt/data" in gone.stderr  # the bind source is gone
    assert floe_json(server, "share", "mounts", "data") == []
    m = floe_json(server, "cluster", "attach", "sh1", "--share", "data", "--ro", "--wait")
    assert m["access_level"] == "ro" and m["state"] == "attached"
    ro = run(node_c, "cat /data/hello.txt; echo x > /data/new", check=False)
    assert "written-on-A" in ro.stdout and "Read-only file system" in ro.stderr, ro

    # In use: no plain delete. The cluster goes while the share is attached; the data stays.
    refused = server.floe("share", "delete", "data", check=False)
    assert refused.returncode == 1 and "in use by sh1" in refused.stderr
    server.floe("cluster", "delete", "sh1", "--wait")
    assert floe_json(server, "share", "mounts", "data") == []
    assert floe_json(server, "share", "show", "data")["status"] == "available"
    assert [m for m in mounts_of(server.home / "nodes") if m.endswith("/.mnt/data")] == []
    assert Path(floe_json(server, "share", "show", "data")["export_locations"][0], "hello.txt").exists()

    # A new cluster with read-only access reads what the first one wrote.
    server.floe("share", "access", "allow", "data", "--cluster", "sh2", "--level", "ro")
    server.floe("cluster", "create", "sh2", "--template", template, "--node-count", "0", "--share", "data", "--wait")
    (m,) = floe_json(server, "cluster", "shares", "sh2")
    assert m["access_level"] == "ro" and m["state"] == "attached"
    sh2 = docker_env(server, "sh2", tmp_path)
    ro = run(sh2, "cat /data/hello.txt; touch /data/x", check=False)
    assert "written-on-A" in ro.stdout and "Read-only file system" in ro.stderr, ro

    # Denying access detaches.
    server.floe("share", "access", "deny", "data", "--cluster", "sh2")
    end = time.monotonic() + 30
    while floe_json(server, "share", "mounts", "data") or "sh2" in [
        r["access_to"] for r in floe_json(server, "share", "access", "list", "data")
    ]:
        assert time.monotonic() < end
        time.sleep(0.3)
    server.floe("share", "access", "allow", "data", "--cluster", "sh2", "--level", "ro")
    server.floe("cluster", "attach", "sh2", "--share", "data", "--wait")

    # `floe cleanup --all` with the share attached: clusters go, the share goes offline, its data stays.
    server.stop()
    server.floe("cleanup", "--all")
    assert image.exists() and loops_of(server.home) == [] and mounts_of(server.home) == []  # everything went
    server.start()
    shown = wait_share(server, "data", "available")
    (location,) = shown["export_locations"]
    assert Path(location, "hello.txt").read_text().strip() == "written-on-A"  # online again on its own

    # Force-delete detaches it everywhere and deletes its data; the cluster goes too: nothing is left.
    server.floe("share", "delete", "data", "--force", "--wait")
    server.floe("cluster", "delete", "sh2", "--wait")
    assert not image.exists()
    assert loops_of(server.home) == []
    # Other modules' clusters may still have their own share directories; none holds this share.
    storage = server.home / "storage"
    assert [p for p in mounts_of(server.home) if p.endswith("/.mnt/data") or p.startswith(f"{storage}/")] == []
    left = [p for p in (server.home / "storage").rglob("*") if p.is_file()]
    assert left == [], left

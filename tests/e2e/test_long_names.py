"""The longest cluster name the API accepts (63 characters) makes a working cluster on the real provider.

A real `floe server` (the shared e2e server: its home under pytest's temporary directory is
long enough that the nodes' full directory paths would overflow a unix socket's 108 bytes),
the floe CLI, the stock docker client over TLS. Also the shortest name, all digits.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import DOCKER, FloeServer, objects_of
from tests.e2e.test_swarm_cluster import _tag, docker_env

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(os.geteuid() != 0, reason="needs root"), pytest.mark.timeout(240)]

LONGEST = "long-" + "0123456789" * 5 + "abcdef-z"  # 63: the longest DNS label
SHORTEST = "7"  # one character, all digits


def _docker(env: dict[str, str], *args: str) -> str:
    res = subprocess.run([DOCKER, *args], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"docker {' '.join(args)}: {res.stderr}"
    return res.stdout


def _swarm_hostnames(env: dict[str, str]) -> dict[str, str]:
    out = _docker(env, "node", "ls", "--format", "{{json .}}")
    return {n["Hostname"]: n["Status"] for n in map(json.loads, filter(str.strip, out.splitlines()))}


def _leftovers(server: FloeServer, tag: str) -> dict[str, list[str]]:
    found = {k: v for k, v in objects_of(server.home, tag).items() if v}
    cgroups = [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/floe-{tag}-*")]
    if cgroups:
        found["cgroups"] = cgroups
    if (server.home / "nodes" / tag).exists():
        found["directory"] = [str(server.home / "nodes" / tag)]
    return found


def _wait_running(env: dict[str, str], service: str, want: int, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    out = ""
    while time.monotonic() < end:
        out = _docker(env, "service", "ps", service, "--filter", "desired-state=running",
                      "--format", "{{.CurrentState}}")
        if out.count("Running") == want:
            return
        time.sleep(0.3)
    raise AssertionError(f"{service}: {out}")


def test_longest_and_shortest_names_make_working_clusters(server: FloeServer, tmp_path: Path):
    started = time.monotonic()
    assert len(LONGEST) == 63
    server.floe("template", "create", "names-e2e", "--coe", "swarm")
    # One name too long is refused and leaves nothing behind.
    r = server.api("POST", "/v1/clusters", json={"name": LONGEST + "x", "cluster_template_id": "names-e2e"})
    assert r.status_code == 400, r.text
    assert server.api("GET", f"/v1/clusters/{LONGEST}x").status_code == 404

    server.floe("cluster", "create", LONGEST, "--template", "names-e2e", "--node-count", "1")
    server.floe("cluster", "create", SHORTEST, "--template", "names-e2e", "--node-count", "0")
    c = server.wait_status(LONGEST, {"CREATE_COMPLETE", "CREATE_FAILED"}, timeout=120)
    assert c["status"] == "CREATE_COMPLETE", c.get("status_reason")
    short = server.wait_status(SHORTEST, {"CREATE_COMPLETE", "CREATE_FAILED"}, timeout=120)
    assert short["status"] == "CREATE_COMPLETE", short.get("status_reason")
    base = LONGEST[:40]
    master, worker = f"{base}-master-0", f"{base}-node-0"

    env = docker_env(server, LONGEST, tmp_path)
    assert env["DOCKER_TLS_VERIFY"] == "1" and env["DOCKER_HOST"].startswith("tcp://")
    assert _swarm_hostnames(env) == {master: "Ready", worker: "Ready"}
    # The nodes' directories had to be shortened here, and their sockets fit.
    tag = _tag(server, LONGEST)
    dirs = sorted(d.name for d in (server.home / "nodes" / tag).iterdir() if not d.name.startswith("."))
    assert len(dirs) == 2 and all("_" in d for d in dirs), dirs
    assert all(len(str(server.home / "nodes" / tag / d / "docker.sock")) <= 107 for d in dirs)
    assert len(str(server.home / "nodes" / tag / master / "docker.sock")) > 107
    # The node's hostname is its full name, inside the node too.
    assert _docker(env, "run", "--rm", "--network", "host", "busybox", "hostname").strip() == master

    _docker(env, "service", "create", "--detach", "--no-resolve-image", "--name", "names-svc", "--replicas", "2",
            "--endpoint-mode", "dnsrr", "busybox", "sleep", "3600")
    _wait_running(env, "names-svc", 2)

    server.floe("cluster", "resize", LONGEST, "--node-count", "2", "--wait")
    c = server.cluster(LONGEST)
    assert c["status"] == "UPDATE_COMPLETE" and c["node_count"] == 2, c
    assert _swarm_hostnames(env) == {master: "Ready", worker: "Ready", f"{base}-node-1": "Ready"}
    _docker(env, "service", "scale", "--detach", "names-svc=3")
    _wait_running(env, "names-svc", 3)

    short_env = docker_env(server, SHORTEST, tmp_path)
    assert _swarm_hostnames(short_env) == {"7-master-0": "Ready"}
    short_tag = _tag(server, SHORTEST)

    server.floe("cluster", "delete", LONGEST, "--wait")
    server.floe("cluster", "delete", SHORTEST, "--wait")
    assert server.api("GET", f"/v1/clusters/{LONGEST}").status_code == 404
    assert server.api("GET", f"/v1/clusters/{SHORTEST}").status_code == 404
    assert _leftovers(server, tag) == {}
    assert _leftovers(server, short_tag) == {}
    print(f"\nlong/short names e2e: {time.monotonic() - started:.1f}s")

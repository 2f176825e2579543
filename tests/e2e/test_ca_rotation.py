"""CA rotation on a real cluster (`openstack coe ca rotate`, PATCH /v1/certificates/{cluster}).

After a rotation every node refuses client certificates of the old CA, a certificate from
POST /v1/certificates works, `floe cluster config` renews a bundle of the old CA by itself, and
the workload is untouched: each node's TLS endpoint is floe's proxy, which reloads its
certificates, so dockerd and every container (swarm tasks and plain ones) keep running, the
same ids started at the same time. A rotation whose server is killed mid-way resumes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from floe import pki
from tests.e2e.conftest import DOCKER, FloeServer
from tests.e2e.test_swarm_cluster import docker, docker_env

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

NAME = "rot"


def _with_host(env: dict[str, str], address: str, cert_dir: Path | None = None) -> dict[str, str]:
    out = dict(env, DOCKER_HOST=f"tcp://{address}:2376")
    if cert_dir is not None:
        out["DOCKER_CERT_PATH"] = str(cert_dir)
    return out


def _refused(env: dict[str, str]) -> bool:
    res = subprocess.run([DOCKER, "version", "--format", "{{.Server.Version}}"], env=env, capture_output=True,
                         text=True, timeout=60)
    return res.returncode != 0


def _running(env: dict[str, str]) -> dict[str, str]:
    """id -> start time of every running container of the node env points at."""
    ids = docker(env, "ps", "-q", "--no-trunc").split()
    if not ids:
        return {}
    out = docker(env, "inspect", "--format", "{{.Id}} {{.State.StartedAt}}", *ids)
    return dict(line.split(" ", 1) for line in out.splitlines() if line.strip())


def _old_cert_new_ca(old_dir: Path, new_dir: Path, tmp: Path) -> Path:
    """The old client certificate and key with the new CA: only the nodes' verdict on the client counts."""
    d = tmp / "old-cert-new-ca"
    d.mkdir(exist_ok=True)
    shutil.copy(new_dir / "ca.pem", d / "ca.pem")
    shutil.copy(old_dir / "cert.pem", d / "cert.pem")
    shutil.copy(old_dir / "key.pem", d / "key.pem")
    return d


def _rotate(server: FloeServer) -> float:
    t0 = time.monotonic()
    resp = server.api("PATCH", f"/v1/certificates/{NAME}")
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"uuid": server.cluster(NAME)["uuid"]}
    c = server.wait_status(NAME, {"UPDATE_COMPLETE", "UPDATE_FAILED"}, timeout=180)
    assert c["status"] == "UPDATE_COMPLETE", c
    return time.monotonic() - t0


def _check_rotated(server: FloeServer, old_env, old_dir: Path, before: dict, tmp: Path, label: str) -> dict:
    c = server.cluster(NAME)
    addresses = c["master_addresses"] + c["node_addresses"]
    ca_now = server.api("GET", f"/v1/certificates/{NAME}").json()["pem"]
    # `floe cluster config` run again on a bundle of the old CA renews it, no --force needed.
    renew = tmp / f"{label}-renew"
    shutil.copytree(old_dir, renew)
    res = server.floe("cluster", "config", NAME, "--dir", str(renew))
    assert "renewed" in res.stderr and "CA changed" in res.stderr, res.stderr
    assert pki.issued_by((renew / "cert.pem").read_text(), ca_now)
    assert not _refused(_with_host(old_env, addresses[0], renew))
    new_env = docker_env(server, NAME, tmp)  # a fresh bundle too
    new_dir = Path(new_env["DOCKER_CERT_PATH"])
    assert (new_dir / "ca.pem").read_text() == ca_now
    assert (new_dir / "ca.pem").read_text() != (old_dir / "ca.pem").read_text()
    mixed = _old_cert_new_ca(old_dir, new_dir, tmp)
    for address in addresses:
        assert _refused(_with_host(old_env, address)), f"{address} still accepts the old bundle"
        assert _refused(_with_host(new_env, address, mixed)), f"{address} accepts a client cert of the old CA"
        assert not _refused(_with_host(new_env, address)), f"{address} refuses the new certificate"
    # The workload: the very same containers, never restarted.
    after = {a: _running(_with_host(new_env, a)) for a in addresses}
    assert after == before, (before, after)
    assert "web" in docker(new_env, "service", "ls", "--format", "{{.Name}}")
    return new_env


def test_rotate_keeps_workloads_and_revokes_old_certs(server: FloeServer, tmp_path: Path):
    server.floe("template", "create", "swarm-rot", "--coe", "swarm")
    server.floe("cluster", "create", NAME, "--template", "swarm-rot", "--node-count", "1", "--wait")
    c = server.cluster(NAME)
    addresses = c["master_addresses"] + c["node_addresses"]
    env = docker_env(server, NAME, tmp_path)
    old_dir = tmp_path / "first-old"  # docker_env overwrites its directory later
    shutil.copytree(env["DOCKER_CERT_PATH"], old_dir)
    env["DOCKER_CERT_PATH"] = str(old_dir)
    # The expiry floe set (FLOE_CLIENT_CERT_DAYS, 30 by default).
    begins, ends = pki.validity((old_dir / "cert.pem").read_text())
    assert 29.9 < (ends - begins).total_seconds() / 86400 < 30.1
    # A service on both nodes, a plain container with a named volume, stdin through the proxy.
    docker(env, "service", "create", "--name", "web", "--replicas", "2", "--endpoint-mode", "dnsrr",
           "--detach", "busybox", "sleep", "1d")
    docker(env, "run", "-d", "--name", "plain", "-v", "keep:/data", "busybox", "sh", "-c",
           "echo kept > /data/f && sleep 1d")
    res = subprocess.run([DOCKER, "run", "-i", "--rm", "busybox", "cat"], input="through the proxy\n", env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.stdout == "through the proxy\n", res.stderr
    end = time.monotonic() + 120
    while time.monotonic() < end:
        tasks = docker(env, "service", "ps", "web", "--filter", "desired-state=running", "--format",
                       "{{.CurrentState}}")
        if tasks.count("Running") == 2:
            break
        time.sleep(1)
    before = {a: _running(_with_host(env, a)) for a in addresses}
    assert sum(len(v) for v in before.values()) == 3, before

    seconds = _rotate(server)
    print(f"\nCA rotation of a 2-node cluster: {seconds:.2f}s")
    new_env = _check_rotated(server, env, old_dir, before, tmp_path, "first")
    assert docker(new_env, "exec", "plain", "cat", "/data/f").strip() == "kept"

    # The server dies once the nodes serve the new CA but before that is recorded; it resumes.
    second_dir = Path(new_env["DOCKER_CERT_PATH"])
    kept = tmp_path / "second-old"
    shutil.copytree(second_dir, kept)
    server.stop()
    server.start(FLOE_FAILPOINTS="rotate_ca:node_certs:after")
    assert server.api("PATCH", f"/v1/certificates/{NAME}").status_code == 202
    assert server.wait_exit() == -9, "the server did not crash at rotate_ca:node_certs:after"
    server.start()
    c = server.wait_status(NAME, {"UPDATE_COMPLETE", "UPDATE_FAILED"}, timeout=180)
    assert c["status"] == "UPDATE_COMPLETE", c
    _check_rotated(server, _with_host(new_env, addresses[0], kept), kept, before, tmp_path, "second")

    server.floe("cluster", "delete", NAME, "--wait")

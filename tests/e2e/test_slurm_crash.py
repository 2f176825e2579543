"""`kill -9` of the server at every step of a Slurm cluster's create, resize and delete, and a host
restart with jobs queued: every operation finishes, Slurm's view matches floe's, the queue comes
back, and a delete leaves nothing on the host (the cluster's munged and daemons included).

The crash is a failpoint (FLOE_FAILPOINTS, see floe/engine/failpoints.py), as in test_crash.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import FloeServer, objects_of
from tests.e2e.test_crash import crash_during
from tests.e2e.test_recovery import simulate_reboot, wait_for
from tests.e2e.test_slurm_cluster import node_states, slurm, slurm_env, submit_saved
from tests.e2e.test_swarm_cluster import _tag

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("srun") is None, reason="needs Debian's slurm-client (make install)"),
]

SLURM_STEPS = ["slurm_munge", "slurm_probe", "slurm_config", "slurm_accounting", "slurm_controller", "slurm_nodes",
               "slurm_ready", "slurm_accounts"]
CREATE_STEPS = ["plan", "registry", "network", "nodes", *SLURM_STEPS, "finish"]
# (step, new worker count): grows and shrinks so every step meets real work.
UPDATE_STEPS = [("plan", 2), ("nodes", 3), ("slurm_munge", 2), ("slurm_probe", 3), ("slurm_config", 4),
                ("slurm_controller", 2), ("slurm_nodes", 3), ("slurm_ready", 4), ("remove_nodes", 2),
                ("remove_nodes", 1), ("finish", 2)]
DELETE_STEPS = ["nodes", "network", "purge", "release"]


@pytest.fixture(scope="module")
def template(server: FloeServer) -> str:
    server.floe("template", "create", "slurm-crash", "--coe", "slurm", "--flavor", "m1.tiny",
                "--master-flavor", "m1.tiny")
    return "slurm-crash"


def assert_slurm_matches(server: FloeServer, name: str, workers: int, tmp_path: Path) -> dict[str, str]:
    """floe's nodes, Slurm's nodes and a job across all of them agree."""
    c = server.cluster(name)
    assert c["node_count"] == workers and len(c["node_addresses"]) == workers, c
    nodes = server.api("GET", f"/v1/floe/clusters/{name}/nodes").json()["nodes"]
    assert len(nodes) == workers + 1 and all(n["state"] == "ready" for n in nodes), nodes
    env = slurm_env(server, name, tmp_path / f"cfg-{name}")
    want = {f"{name}-node-{i}" for i in range(workers)}
    assert node_states(env) == dict.fromkeys(want, "idle")
    assert set(slurm(env, "srun", "-N", str(workers), "hostname").split()) == want
    return env


@pytest.mark.parametrize("i,step", list(enumerate(CREATE_STEPS)))
def test_crash_during_slurm_create(server: FloeServer, template: str, i: int, step: str, tmp_path: Path):
    when = "before" if i % 2 == 0 else "after"
    name = f"sc{i}"
    crash_during(server, f"create:{step}:{when}", "cluster", "create", name, "--template", template,
                 "--node-count", "2")
    c = server.wait_status(name, {"CREATE_COMPLETE", "CREATE_FAILED"}, timeout=180)
    assert c["status"] == "CREATE_COMPLETE", c
    assert_slurm_matches(server, name, 2, tmp_path)
    tag = _tag(server, name)
    server.floe("cluster", "delete", name, "--wait")
    assert not any(objects_of(server.home, tag).values()), objects_of(server.home, tag)


def test_crash_during_every_slurm_resize_step(server: FloeServer, template: str, tmp_path: Path):
    server.floe("cluster", "create", "sr", "--template", template, "--node-count", "1", "--wait")
    for i, (step, target) in enumerate(UPDATE_STEPS):
        when = "before" if i % 2 == 0 else "after"
        crash_during(server, f"update:{step}:{when}", "cluster", "resize", "sr", "--node-count", str(target))
        c = server.wait_status("sr", {"UPDATE_COMPLETE", "UPDATE_FAILED"}, timeout=180)
        assert c["status"] == "UPDATE_COMPLETE", (step, c)
        assert_slurm_matches(server, "sr", target, tmp_path)
    tag = _tag(server, "sr")
    server.floe("cluster", "delete", "sr", "--wait")
    assert not any(objects_of(server.home, tag).values()), objects_of(server.home, tag)


@pytest.mark.parametrize("i,step", list(enumerate(DELETE_STEPS)))
def test_crash_during_slurm_delete(server: FloeServer, template: str, i: int, step: str):
    name = f"sd{i}"
    server.floe("cluster", "create", name, "--template", template, "--node-count", "1", "--wait")
    tag = _tag(server, name)
    crash_during(server, f"delete:{step}:{'before' if i % 2 == 0 else 'after'}", "cluster", "delete", name)
    server.wait_status(name, {"DELETED"}, timeout=180)
    assert not any(objects_of(server.home, tag).values()), objects_of(server.home, tag)


def test_host_restart_brings_back_the_cluster_and_its_queue(server: FloeServer, template: str, tmp_path: Path):
    """A reboot leaves only FLOE_HOME: floe restarts munged, slurmctld and every slurmd, and the
    jobs that were queued are still queued (slurmctld's state lives in the cluster's files)."""
    server.floe("cluster", "create", "sq", "--template", template, "--node-count", "2", "--wait")
    env = slurm_env(server, "sq", tmp_path / "cfg")
    held = submit_saved(server, _tag(server, "sq"), env, "--hold", "-N", "1", "--wrap", "hostname")
    simulate_reboot(server)
    server.start()
    wait_for(lambda: server.cluster("sq")["status"] == "UPDATE_COMPLETE"
             and server.cluster("sq")["health_status"] == "HEALTHY", 180, "the cluster back after the restart")
    assert_slurm_matches(server, "sq", 2, tmp_path)
    out = slurm(env, "squeue", "-h", "-j", held, "-o", "%i %T %r")
    assert out.split()[:2] == [held, "PENDING"], out
    slurm(env, "scontrol", "release", held)
    wait_for(lambda: "COMPLETED" in slurm(env, "scontrol", "show", "job", held), 60, "the held job to run")
    tag = _tag(server, "sq")
    server.floe("cluster", "delete", "sq", "--wait")
    assert not any(objects_of(server.home, tag).values()), objects_of(server.home, tag)
    subprocess.run(["true"], check=True)

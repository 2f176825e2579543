"""Slurm clusters end to end on real nodes, used from the host with Debian's stock Slurm tools.

Everything is real: the floe server, node namespaces, the cluster's munged on the host, slurmctld
in the controller node, slurmd in each compute node, srun/sbatch/sinfo from the host, containers
from floe's registry inside jobs, OpenMPI over PMIx, a share written by a job and read after the
cluster is gone from a Swarm cluster, resize with a running job, health and auto-healing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from floe.providers.local.provider import CLUSTER_FILES_DIR
from tests.e2e.conftest import FloeServer, objects_of
from tests.e2e.test_recovery import wait_for
from tests.e2e.test_swarm_cluster import _tag, docker, docker_env

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("srun") is None, reason="needs Debian's slurm-client (make install)"),
]

MPI_HELLO = r"""
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int rank, size, sum = 0; char host[256];
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  gethostname(host, sizeof host);
  MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  const char *placed = getenv("SLURMD_NODENAME");
  printf("rank=%d size=%d host=%s placed=%s sum=%d\n", rank, size, host, placed ? placed : "?", sum);
  MPI_Finalize();
  return 0;
}
"""


def slurm(env: dict[str, str], *args: str, timeout: float = 120, check: bool = True) -> str:
    res = subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({res.returncode}): {res.stdout}\n{res.stderr}")
    return res.stdout


def slurm_env(server: FloeServer, cluster: str, directory: Path) -> dict[str, str]:
    """What `eval $(floe cluster config NAME)` gives a shell: SLURM_CONF (and the Docker bundle)."""
    line = server.floe("cluster", "config", cluster, "--dir", str(directory)).stdout.strip()
    assert line.startswith("export ") and "SLURM_CONF=" in line, line
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM", "DOCKER"))}
    for part in line.removeprefix("export ").split():
        key, _, value = part.partition("=")
        env[key] = value.strip("'")
    assert Path(env["SLURM_CONF"]).read_text().startswith("# Written by floe")
    return env


def node_states(env: dict[str, str]) -> dict[str, str]:
    out = slurm(env, "sinfo", "-N", "-h", "-o", "%N %T")
    return dict(line.split() for line in out.splitlines())


def daemon_pid(server: FloeServer, tag: str, node: str, daemon: str) -> int:
    """The daemon's own pid (the child of the nsenter floe keeps)."""
    nsenter = int((server.home / "nodes" / tag / node / "daemons" / f"{daemon}.pid").read_text())
    return int(Path(f"/proc/{nsenter}/task/{nsenter}/children").read_text().split()[0])


def submit_saved(server: FloeServer, tag: str, env: dict[str, str], *args: str) -> str:
    """sbatch, then wait until slurmctld has written its queue to StateSaveLocation. It saves in
    a thread of its own, usually within milliseconds; on a host busy writing, its fsync takes
    seconds, and a job not yet saved dies with a killed controller (as in any Slurm). Tests
    that kill controllers submit this way: without it they failed under disk load."""
    saved = server.home / "nodes" / tag / CLUSTER_FILES_DIR / "state" / "job_state"
    before = saved.stat().st_mtime_ns if saved.exists() else None
    job = slurm(env, "sbatch", "--parsable", *args).strip()
    wait_for(lambda: saved.exists() and saved.stat().st_mtime_ns != before, 30, "the queue to be saved")
    return job


@pytest.fixture(scope="module")
def template(server: FloeServer) -> str:
    server.floe("template", "create", "slurm-e2e", "--coe", "slurm", "--flavor", "m1.tiny",
                "--master-flavor", "m1.small", "--label", "auto_healing_enabled=true")
    return "slurm-e2e"


def test_slurm_cluster_journey(server: FloeServer, template: str, tmp_path: Path):
    started = time.monotonic()
    server.floe("cluster", "create", "sl", "--template", template, "--node-count", "3", "--wait")
    print(f"\nslurm cluster 1+3 created in {time.monotonic() - started:.1f}s")
    c = server.cluster("sl")
    assert c["status"] == "CREATE_COMPLETE" and c["coe_version"].startswith("slurm 22."), c
    tag = _tag(server, "sl")
    env = slurm_env(server, "sl", tmp_path / "cfg")

    # The stock tools from the host: three compute nodes, each declared as its flavor has it.
    assert node_states(env) == {"sl-node-0": "idle", "sl-node-1": "idle", "sl-node-2": "idle"}
    hosts = slurm(env, "srun", "-N", "3", "hostname").split()
    assert sorted(hosts) == ["sl-node-0", "sl-node-1", "sl-node-2"]
    node0 = slurm(env, "scontrol", "show", "node", "sl-node-0")
    assert "CPUTot=1 " in node0 and "RealMemory=512 " in node0, node0  # m1.tiny: 1 vCPU, 512 MiB

    # A container on every allocated node, from floe's registry, on the node's own dockerd.
    out = slurm(env, "srun", "-N", "3", "docker", "run", "--rm", "--network", "host", "busybox",
                "sh", "-c", "echo container on $(hostname)")
    assert sorted(out.split("\n")[:-1]) == [f"container on sl-node-{i}" for i in range(3)], out

    # A share attached to the cluster, written by a job: one file per rank.
    server.floe("share", "create", "1", "--name", "results", "--wait")
    server.floe("share", "access", "allow", "results", "--cluster", "sl")
    server.floe("cluster", "attach", "sl", "--share", "results", "--wait")
    slurm(env, "srun", "-N", "3", "sh", "-c",
          "echo rank $SLURM_PROCID on $(hostname) > /mnt/results/rank-$SLURM_PROCID")

    # Resize up: Slurm schedules on the new nodes.
    server.floe("cluster", "resize", "sl", "--node-count", "5", "--wait")
    assert node_states(env) == {f"sl-node-{i}": "idle" for i in range(5)}
    assert len(set(slurm(env, "srun", "-N", "5", "hostname").split())) == 5

    # MPI across 4 nodes: every rank reports from the node Slurm placed it on.
    src = tmp_path / "hello.c"
    src.write_text(MPI_HELLO)
    subprocess.run(["mpicc", "-o", str(tmp_path / "hello"), str(src)], check=True)
    out = slurm(env, "srun", "--mpi=pmix", "-N", "4", "--ntasks-per-node=1", str(tmp_path / "hello"))
    ranks = [dict(kv.split("=") for kv in line.split()) for line in out.splitlines() if line.startswith("rank=")]
    assert sorted(int(r["rank"]) for r in ranks) == [0, 1, 2, 3], out
    assert all(r["host"] == r["placed"] and r["size"] == "4" and r["sum"] == "6" for r in ranks), out
    assert len({r["host"] for r in ranks}) == 4, out

    # Resize down with a running job on a node that goes: it finishes, then the node leaves.
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    job = slurm(env, "sbatch", "--parsable", "-N", "1", "-w", "sl-node-4", "-o", str(jobs / "%j.out"),
                "--wrap", "sleep 4; echo finished on $(hostname)").strip()
    wait_for(lambda: slurm(env, "squeue", "-h", "-j", job, "-o", "%T").strip() == "RUNNING", 30, "job to run")
    server.floe("cluster", "resize", "sl", "--node-count", "2", "--wait")
    assert (jobs / f"{job}.out").read_text() == "finished on sl-node-4\n"
    state = slurm(env, "scontrol", "show", "job", job)
    assert "JobState=COMPLETED" in state and "ExitCode=0:0" in state, state
    assert node_states(env) == {"sl-node-0": "idle", "sl-node-1": "idle"}
    nodes = json.loads(server.floe("cluster", "nodes", "sl", "-f", "json").stdout)
    assert sorted(n["name"] for n in nodes) == ["sl-master-0", "sl-node-0", "sl-node-1"]
    assert not (server.home / "nodes" / tag / "sl-node-4").exists()

    # A forced removal: the jobs of the node that goes are requeued rather than waited for.
    server.floe("cluster", "resize", "sl", "--node-count", "3", "--wait")
    long = [slurm(env, "sbatch", "--parsable", "-N", "1", "-o", "/dev/null", "--wrap", "sleep 600").strip()
            for _ in range(3)]
    wait_for(lambda: slurm(env, "squeue", "-h", "-t", "RUNNING", "-o", "%i").split() != [] and
             len(slurm(env, "squeue", "-h", "-t", "RUNNING", "-o", "%i").split()) == 3, 30, "three running jobs")
    on_node2 = slurm(env, "squeue", "-h", "-w", "sl-node-2", "-o", "%i").strip()
    started = time.monotonic()
    server.floe("cluster", "resize", "sl", "--node-count", "2", "--requeue", "--wait")
    assert time.monotonic() - started < 60
    requeued = slurm(env, "scontrol", "show", "job", on_node2)
    assert "JobState=PENDING" in requeued and "Restarts=1" in requeued, requeued
    slurm(env, "scancel", *long)
    wait_for(lambda: not slurm(env, "squeue", "-h"), 30, "the queue to empty")

    # Auto-healing: a compute node whose slurmd died gets it back, and Slurm schedules on it.
    dead = daemon_pid(server, tag, "sl-node-1", "slurmd")
    os.kill(dead, 9)
    healed = wait_for(lambda: "auto-healing sl-node-1" in (c := server.cluster("sl"))["status_reason"]
                      and c["status"] == "UPDATE_COMPLETE" and c, 120, "auto-healing")
    assert healed["health_status"] == "HEALTHY", healed
    assert daemon_pid(server, tag, "sl-node-1", "slurmd") != dead
    assert sorted(slurm(env, "srun", "-N", "2", "hostname").split()) == ["sl-node-0", "sl-node-1"]

    # Delete: nothing of the cluster is left on the host (its munged included).
    server.floe("cluster", "delete", "sl", "--wait")
    assert not any(objects_of(server.home, tag).values()), objects_of(server.home, tag)
    assert not [p for p in os.listdir("/proc") if p.isdigit() and f"nodes/{tag}" in _cmdline(p)]

    # The share's data outlives the cluster: a Swarm cluster reads what the ranks wrote.
    server.floe("template", "create", "slurm-e2e-swarm", "--coe", "swarm")
    server.floe("share", "access", "allow", "results", "--cluster", "reader")
    server.floe("cluster", "create", "reader", "--template", "slurm-e2e-swarm", "--node-count", "0", "--wait")
    server.floe("cluster", "attach", "reader", "--share", "results", "--wait")
    denv = docker_env(server, "reader", tmp_path / "reader")
    out = docker(denv, "run", "--rm", "-v", "/mnt/results:/data", "busybox", "sh", "-c", "cat /data/rank-*")
    ranks = sorted(line.split() for line in out.splitlines())
    assert [r[1] for r in ranks] == ["0", "1", "2"], out
    assert sorted(r[3] for r in ranks) == ["sl-node-0", "sl-node-1", "sl-node-2"], out
    server.floe("cluster", "delete", "reader", "--wait")
    server.floe("share", "delete", "results")


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_own_munge_keys_and_health(server: FloeServer, tmp_path: Path):
    """A client of one cluster cannot talk to another (each has its own munge key), and a node
    that Slurm cannot use makes its cluster UNHEALTHY with the node named."""
    server.floe("template", "create", "slurm-keys", "--coe", "slurm", "--flavor", "m1.tiny",
                "--master-flavor", "m1.tiny")
    server.floe("cluster", "create", "ka", "--template", "slurm-keys", "--node-count", "1")
    server.floe("cluster", "create", "kb", "--template", "slurm-keys", "--node-count", "1")
    server.wait_status("ka", {"CREATE_COMPLETE"})
    server.wait_status("kb", {"CREATE_COMPLETE"})
    a, b = slurm_env(server, "ka", tmp_path / "a"), slurm_env(server, "kb", tmp_path / "b")
    assert slurm(a, "srun", "-N", "1", "hostname").strip() == "ka-node-0"
    assert slurm(b, "srun", "-N", "1", "hostname").strip() == "kb-node-0"
    ta, tb = _tag(server, "ka"), _tag(server, "kb")
    key_a = (server.home / "nodes" / ta / ".cluster" / "munge.key").read_bytes()
    key_b = (server.home / "nodes" / tb / ".cluster" / "munge.key").read_bytes()
    assert len(key_a) == 1024 and key_a != key_b
    # Cluster ka's controller with kb's munge daemon signing: refused.
    live = Path(Path(a["SLURM_CONF"]).read_text().split("Include ")[1].strip())
    mixed = live.read_text().replace(f"/nodes/{ta}/.cluster/munge", f"/nodes/{tb}/.cluster/munge")
    conf = tmp_path / "mixed.conf"
    conf.write_text(mixed)
    res = subprocess.run(["sinfo"], env={**a, "SLURM_CONF": str(conf)}, capture_output=True, text=True, timeout=60)
    assert res.returncode != 0, res.stdout

    # Health (no auto-healing here): a drained node, then a dead slurmd, each named.
    slurm(b, "scontrol", "update", "NodeName=kb-node-0", "State=DRAIN", "Reason=maintenance")
    seen = wait_for(lambda: (c := server.cluster("kb"))["health_status"] == "UNHEALTHY" and c, 60, "unhealthy")
    assert "DRAIN" in seen["health_status_reason"]["kb-node-0.Ready"], seen
    assert "maintenance" in seen["health_status_reason"]["kb-node-0.Ready"], seen
    slurm(b, "scontrol", "update", "NodeName=kb-node-0", "State=RESUME")
    wait_for(lambda: server.cluster("kb")["health_status"] == "HEALTHY", 60, "healthy again")
    os.kill(daemon_pid(server, tb, "kb-node-0", "slurmd"), 9)
    seen = wait_for(lambda: (c := server.cluster("kb"))["health_status"] == "UNHEALTHY" and c, 60, "unhealthy")
    assert seen["health_status_reason"]["kb-node-0.Ready"] == "False: slurmd is not running", seen
    assert seen["status"] == "CREATE_COMPLETE"  # nothing healed it: the template did not ask
    for name in ("ka", "kb"):
        server.floe("cluster", "delete", name, "--wait")


def test_backup_controller_takes_over_with_the_queue(server: FloeServer, tmp_path: Path):
    """master_count 2: a backup slurmctld on the second master shares the controller's state (the
    cluster's files), so when the primary dies it serves the same queue."""
    server.floe("template", "create", "slurm-ha", "--coe", "slurm", "--flavor", "m1.tiny",
                "--master-flavor", "m1.tiny")
    bad = server.floe("cluster", "create", "ha3", "--template", "slurm-ha", "--master-count", "3", check=False)
    assert bad.returncode != 0 and "at most one backup" in bad.stderr, bad.stderr
    server.floe("cluster", "create", "ha", "--template", "slurm-ha", "--node-count", "2", "--master-count", "2",
                "--wait")
    env = slurm_env(server, "ha", tmp_path / "cfg")
    out = slurm(env, "scontrol", "ping")
    assert "primary) at ha-master-0 is UP" in out and "backup) at ha-master-1 is UP" in out, out
    tag = _tag(server, "ha")
    held = submit_saved(server, tag, env, "--hold", "-N", "1", "--wrap", "hostname")
    os.kill(daemon_pid(server, tag, "ha-master-0", "slurmctld"), 9)
    seen: dict[str, str] = {}

    def taken_over() -> bool:
        seen["squeue"] = slurm(env, "squeue", "-h", "-j", held, "-o", "%T", check=False)
        seen["ping"] = slurm(env, "scontrol", "ping", check=False)
        return "PENDING" in seen["squeue"] and "backup) at ha-master-1 is UP" in seen["ping"]

    # SlurmctldTimeout is 10 s: the backup takes control, with the held job still queued.
    try:
        wait_for(taken_over, 60, "takeover")
    except AssertionError:
        logs = {n: p.read_text(errors="replace")[-3000:] if p.exists() else "(no log)"
                for n in ("ha-master-0", "ha-master-1")
                for p in [server.home / "nodes" / tag / n / "daemons" / "slurmctld.log"]}
        raise AssertionError(f"no takeover; last seen {seen}; slurmctld logs {logs}") from None
    slurm(env, "scontrol", "release", held)
    wait_for(lambda: "COMPLETED" in slurm(env, "scontrol", "show", "job", held, check=False), 60, "the job to run")
    assert sorted(slurm(env, "srun", "-N", "2", "hostname").split()) == ["ha-node-0", "ha-node-1"]
    server.floe("cluster", "delete", "ha", "--wait")

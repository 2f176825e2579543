"""`floe job …` end to end: a real floe server, a real 1+3 Slurm cluster (slurmctld and slurmd in
node namespaces), jobs submitted through floe's API with sbatch, run with srun on the nodes (in
containers of the nodes' own dockerd with --image), a share written by a job, a cancel, and the
jobs' rows going with the cluster."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from tests.e2e.conftest import FloeServer

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("sbatch") is None, reason="needs Debian's slurm-client (make install)"),
]

CLUSTER = "jobs1"
WORKERS = [f"{CLUSTER}-node-{i}" for i in range(3)]


def _job(server: FloeServer, job: str) -> dict:
    return json.loads(server.floe("job", "show", CLUSTER, job, "-f", "json").stdout)


def _wait_state(server: FloeServer, job: str, want: set[str], timeout: float = 60) -> dict:
    end = time.monotonic() + timeout
    while True:
        found = _job(server, job)
        if found["state"] in want:
            return found
        assert time.monotonic() < end, f"job {job} did not reach {want}: {found}"
        time.sleep(0.2)


def test_jobs_across_nodes_with_images_shares_and_cancel(server: FloeServer) -> None:
    server.floe("template", "create", "slurm-jobs", "--coe", "slurm", "--flavor", "m1.tiny",
                "--master-flavor", "m1.small")
    server.floe("cluster", "create", CLUSTER, "--template", "slurm-jobs", "--node-count", "3", "--wait")
    try:
        # A plain command on 3 nodes: each node runs it once.
        start = time.monotonic()
        done = server.floe("job", "submit", CLUSTER, "--nodes", "3", "--wait", "--", "hostname")
        took = time.monotonic() - start
        assert "COMPLETED (exit code 0)" in done.stderr, done.stderr
        print(f"submit --wait of `hostname` on 3 nodes: {took:.2f}s")
        assert sorted(done.stdout.split()) == WORKERS, done.stdout
        first = json.loads(server.floe("job", "list", CLUSTER, "-f", "json").stdout)[0]
        logs = server.floe("job", "logs", CLUSTER, first["id"]).stdout
        assert sorted(logs.split()) == WORKERS, logs
        shown = _job(server, first["id"])
        assert (shown["state"], shown["exit_code"], shown["nodes"], shown["name"]) == ("COMPLETED", 0, 3, "hostname")
        assert sorted(shown["node_names"]) == WORKERS and shown["node_list"]
        assert shown["started_at"] and shown["finished_at"] and shown["finished_at"] >= shown["started_at"]

        # An image from floe's registry with a share mounted at /mnt/results, on 2 nodes.
        server.floe("share", "create", "1", "--name", "jobres", "--wait")
        server.floe("share", "access", "allow", "jobres", "--cluster", CLUSTER)
        server.floe("cluster", "attach", CLUSTER, "--share", "jobres", "--wait")
        in_image = server.floe(
            "job", "submit", CLUSTER, "-N", "2", "--image", "busybox", "--share", "jobres", "--name", "writer",
            "--wait", "--", "sh", "-c", 'echo "rank $SLURM_PROCID on $(hostname)" > /mnt/jobres/r-$SLURM_PROCID '
                                       "&& cat /mnt/jobres/r-$SLURM_PROCID")
        lines = sorted(line for line in in_image.stdout.splitlines() if line.startswith("rank"))
        assert lines == [f"rank 0 on {WORKERS[0]}", f"rank 1 on {WORKERS[1]}"], in_image.stdout
        reader = server.floe("job", "submit", CLUSTER, "-N", "1", "--image", "busybox", "--share", "jobres",
                             "--wait", "--", "cat", "/mnt/jobres/r-0", "/mnt/jobres/r-1")
        assert reader.stdout.split("\n")[:2] == [f"rank 0 on {WORKERS[0]}", f"rank 1 on {WORKERS[1]}"], reader.stdout

        # A failing command: FAILED, its exit code, and the CLI exits with it.
        failed = server.floe("job", "submit", CLUSTER, "-N", "2", "--wait", "--", "sh", "-c", "exit 3", check=False)
        assert failed.returncode == 3 and "FAILED" in failed.stderr, failed.stderr

        # Cancel a long job in a container on all 3 nodes: it ends CANCELLED and frees the nodes.
        sleeper = json.loads(server.floe("job", "submit", CLUSTER, "-N", "3", "--image", "busybox", "--name",
                                         "sleeper", "-f", "json", "--", "sleep", "600").stdout)
        assert sleeper["state"] == "PENDING" and sleeper["command"] == ["sleep", "600"]
        _wait_state(server, sleeper["id"], {"RUNNING"})
        time.sleep(1)  # the containers start
        start = time.monotonic()
        server.floe("job", "cancel", CLUSTER, sleeper["id"])
        cancelled = _wait_state(server, sleeper["id"], {"CANCELLED"}, timeout=30)
        print(f"cancel to CANCELLED: {time.monotonic() - start:.2f}s")
        assert cancelled["finished_at"]
        # The nodes are free again (the containers stopped with the job): a 3-node job runs now.
        after = server.floe("job", "submit", CLUSTER, "-N", "3", "--wait", "--", "true", timeout=60)
        assert "COMPLETED" in after.stderr

        listed = json.loads(server.floe("job", "list", CLUSTER, "-f", "json").stdout)
        assert [j["state"] for j in listed] == ["COMPLETED", "COMPLETED", "COMPLETED", "FAILED", "CANCELLED",
                                                "COMPLETED"], listed
        assert [j["name"] for j in listed][1:] == ["writer", "cat", "sh", "sleeper", "true"]
        assert listed[1]["image"] == "busybox" and listed[1]["shares"] == ["jobres"] and listed[1]["nodes"] == 2
        assert len({j["id"] for j in listed}) == 6
        table = server.floe("job", "list", CLUSTER).stdout
        assert "sleeper" in table and "CANCELLED" in table
    finally:
        server.floe("cluster", "delete", CLUSTER, "--wait", check=False)
        server.floe("share", "delete", "jobres", "--wait", check=False)
    gone = server.floe("job", "list", CLUSTER, check=False)
    assert gone.returncode != 0 and f"Cluster {CLUSTER} could not be found" in gone.stderr

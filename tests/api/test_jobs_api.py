"""Batch jobs through the real API (/v1/floe/clusters/{ident}/jobs) on a real SQLite database.

No Slurm runs here (the API tests' env has no provider, or the simulated one): these tests cover
what is decided before Slurm is asked (validation, tenancy, the cluster's kind and state, the
provider's capability) and reading recorded jobs; tests/e2e/test_slurm_jobs.py submits real ones.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from floe.coe.slurm.jobs import JobSpec, batch_script, parse_status
from floe.db.models import Cluster, Job, Share, ShareAttachment
from floe.providers.simulated.provider import SimulatedProvider

from .conftest import Env, assert_error


def _cluster(env: Env, client: TestClient, name: str, coe: str = "slurm", workers: int = 3,
             token: str | None = None, finish: bool = True) -> str:
    headers = env.headers(token)
    resp = client.post("/v1/clustertemplates", json={"coe": coe, "name": f"tpl-{name}"}, headers=headers)
    assert resp.status_code == 201, resp.text
    resp = client.post("/v1/clusters", json={"cluster_template_id": f"tpl-{name}", "name": name,
                                             "node_count": workers}, headers=headers)
    assert resp.status_code == 202, resp.text
    uuid = resp.json()["uuid"]
    env.add_nodes(uuid, 1, workers)
    if finish:
        env.finish_create(uuid)
    return uuid


def _jobs(env: Env) -> int:
    with env.db.session() as s:
        return s.scalar(select(func.count()).select_from(Job))


def _record(env: Env, cluster: str, slurm_id: str, **fields) -> None:
    """A job row as a submit leaves it (no Slurm here to submit to)."""
    with env.db.session() as s:
        c = s.scalars(select(Cluster).where(Cluster.uuid == cluster)).one()
        s.add(Job(project_id=c.project_id, cluster_id=c.id, slurm_job_id=slurm_id, name=fields.pop("name", "j"),
                  nodes=fields.pop("nodes", 2), command=fields.pop("command", ["hostname"]), **fields))


def _submit(client: TestClient, cluster: str, **body) -> object:
    return client.post(f"/v1/floe/clusters/{cluster}/jobs", json={"command": ["hostname"], **body})


@pytest.mark.parametrize(("body", "fragments"), [
    ({"command": []}, ("command",)),
    ({"command": [""]}, ("command",)),
    ({"command": ["a\u0000b"]}, ("NUL",)),
    ({"nodes": 0}, ("nodes",)),
    ({"nodes": 4}, ("Invalid node count 4", "3 compute node")),
    ({"nodes": True}, ("nodes",)),
    ({"image": "Busybox"}, ("Invalid image reference",)),
    ({"image": "-v/:/host busybox"}, ("Invalid image reference",)),
    ({"image": "busybox:latest@sha256:abc"}, ("Invalid image reference",)),
    ({"name": "a b"}, ("Invalid job name",)),
    ({"name": "x JobState=COMPLETED"}, ("Invalid job name",)),
    ({"name": "n" * 65}, ("name",)),
    ({"shares": ["nope"]}, ("Share nope is not attached to cluster sj",)),
    ({"image": "busybox", "mpi": True}, ("--mpi",)),
    ({"extra": 1}, ("extra",)),
])
def test_bad_submissions_are_refused_and_change_nothing(env: Env, client: TestClient, body, fragments) -> None:
    _cluster(env, client, "sj")
    before = env.snapshot(), _jobs(env)
    assert_error(_submit(client, "sj", **body), 400, *fragments)
    assert (env.snapshot(), _jobs(env)) == before


def test_the_largest_valid_request_passes_validation(env: Env, client: TestClient) -> None:
    """3 workers, a 64-character name, a registry image with tag and digest: only the provider is missing."""
    _cluster(env, client, "big")
    image = "10.160.0.1:5000/p1/tool_x-y.z:1.0@sha256:" + "a" * 64
    resp = _submit(client, "big", nodes=3, name="n" * 64, image=image, command=["sh", "-c", "echo $'x' ' y'"])
    assert_error(resp, 409, "runs no Slurm daemons")


def test_another_projects_cluster_is_not_found(env: Env, client: TestClient) -> None:
    uuid = _cluster(env, client, "mine")
    _record(env, uuid, "7")
    other = env.new_project("other")
    for method, path in (("POST", ""), ("GET", ""), ("GET", "/7"), ("DELETE", "/7"), ("GET", "/7/output")):
        for ident in ("mine", uuid):
            resp = client.request(method, f"/v1/floe/clusters/{ident}/jobs{path}", headers=env.headers(other),
                                  json={"command": ["hostname"]} if method == "POST" else None)
            assert_error(resp, 404, f"Cluster {ident} could not be found")
    assert _jobs(env) == 1


def test_a_swarm_cluster_or_a_busy_one_or_the_simulated_provider_gives_409(env: Env, client: TestClient,
                                                                           tmp_path: Path) -> None:
    _cluster(env, client, "sw", coe="swarm")
    assert_error(_submit(client, "sw"), 409, "Cluster sw runs swarm, not Slurm")
    _cluster(env, client, "busy", finish=False)
    assert_error(_submit(client, "busy"), 409, "Cluster busy is CREATE_IN_PROGRESS")
    _cluster(env, client, "sim")
    env.runtime.provider = SimulatedProvider(tmp_path / "sim", "10.170.0.0/24")
    assert_error(_submit(client, "sim", nodes=2), 409, "The simulated provider runs no Slurm daemons")
    assert _jobs(env) == 0


def test_recorded_jobs_are_listed_shown_and_a_finished_one_is_not_cancelled(env: Env, client: TestClient) -> None:
    uuid = _cluster(env, client, "rec")
    _record(env, uuid, "12", name="done", state="COMPLETED", exit_code=0, node_list="rec-w[0-1]",
            image="busybox", shares=["results"])
    _record(env, uuid, "13", name="gone", state="FAILED", exit_code=3)
    listed = client.get("/v1/floe/clusters/rec/jobs")
    assert listed.status_code == 200, listed.text
    jobs = listed.json()["jobs"]
    assert [(j["id"], j["name"], j["state"], j["exit_code"]) for j in jobs] == [
        ("12", "done", "COMPLETED", 0), ("13", "gone", "FAILED", 3)]
    first = jobs[0]
    assert first["cluster_uuid"] == uuid and first["cluster_name"] == "rec" and first["nodes"] == 2
    assert first["node_list"] == "rec-w[0-1]" and first["image"] == "busybox" and first["shares"] == ["results"]
    assert first["command"] == ["hostname"] and first["created_at"]
    shown = client.get(f"/v1/floe/clusters/{uuid}/jobs/12").json()
    assert shown["uuid"] == first["uuid"] and shown["state"] == "COMPLETED"
    assert client.get(f"/v1/floe/clusters/rec/jobs/{first['uuid']}").json()["id"] == "12"
    # Ended: a cancel changes nothing and needs no Slurm.
    cancelled = client.delete("/v1/floe/clusters/rec/jobs/13")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "FAILED"
    out = client.get("/v1/floe/clusters/rec/jobs/12/output")
    assert out.status_code == 200 and out.content == b"" and out.headers["x-floe-job-state"] == "COMPLETED"
    for missing in ("14", "x", "0" * 40, "-1"):
        assert_error(client.get(f"/v1/floe/clusters/rec/jobs/{missing}"), 404, "could not be found in cluster rec")
    assert_error(client.get("/v1/floe/clusters/rec/jobs/12/output?offset=-1"), 400)


def test_a_share_that_is_still_attaching_is_a_conflict(env: Env, client: TestClient) -> None:
    uuid = _cluster(env, client, "sh")
    with env.db.session() as s:
        c = s.scalars(select(Cluster).where(Cluster.uuid == uuid)).one()
        share = Share(project_id=c.project_id, name="results", share_type="local", share_proto="LOCALFS", size=1)
        s.add(share)
        s.flush()
        s.add(ShareAttachment(share_id=share.id, cluster_id=c.id, mount_name="results", state="attaching"))
    assert_error(_submit(client, "sh", shares=["results"]), 409, "Share results is attaching")
    with env.db.session() as s:
        s.scalars(select(ShareAttachment)).one().state = "attached"
    # Attached: validation passes; only the missing provider stops it.
    assert_error(_submit(client, "sh", shares=["results"]), 409, "provider")


def test_the_batch_script_quotes_every_argument() -> None:
    script = batch_script(JobSpec("j", 2, ("sh", "-c", "echo $HOME; rm -rf /tmp/x'"), image="busybox",
                                  shares=("results",)))
    last = script.splitlines()[-1]
    assert last.startswith("exec srun docker run --rm --init --quiet --network host ")
    assert "-v /mnt/results:/mnt/results busybox sh -c 'echo $HOME; rm -rf /tmp/x'\"'\"''" in last
    assert batch_script(JobSpec("j", 1, ("a b",), mpi=True)).splitlines()[-1] == "exec srun --mpi=pmix 'a b'"


def test_scontrol_records_become_states() -> None:
    done = parse_status({"JobId": "4", "JobState": "CANCELLED", "ExitCode": "0:15", "NodeList": "c-node-[0-1]",
                         "Reason": "None", "SubmitTime": "2026-12-07T04:24:22", "StartTime": "2026-12-07T04:24:23",
                         "EndTime": "2026-12-07T04:25:00"})
    assert (done.state, done.exit_code, done.signal, done.final, done.reason) == ("CANCELLED", 0, 15, True, "")
    assert done.finished_at is not None and done.started_at is not None and done.started_at < done.finished_at
    waiting = parse_status({"JobState": "PENDING", "ExitCode": "0:0", "NodeList": "(null)", "Reason": "Resources",
                            "StartTime": "2027-01-01T00:00:00", "EndTime": "2027-01-01T00:00:00"})
    assert (waiting.exit_code, waiting.node_list, waiting.started_at, waiting.finished_at, waiting.reason) == (
        None, "", None, None, "Resources")

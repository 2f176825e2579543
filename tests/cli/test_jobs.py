"""`floe job …` against the real API with no provider (so no Slurm: submissions stop at the API's
409 after validation; jobs to list, show and read are recorded rows), and its one-line errors.
Real submissions are in tests/e2e/test_slurm_jobs.py."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from floe.client import FloeClient
from tests.cli.conftest import LiveServer, assert_one_line_error


@pytest.fixture
def api(live_server: LiveServer) -> Iterator[FloeClient]:
    with FloeClient(live_server.url, live_server.token) as client:
        before = {c["uuid"] for c in client.list_clusters()}
        yield client
        for c in client.list_clusters():
            if c["uuid"] not in before:
                live_server.drop_cluster(c["uuid"])


def _cluster(live_server: LiveServer, api: FloeClient, name: str, coe: str = "slurm") -> str:
    template = f"tpl-cli-jobs-{coe}"
    try:
        api.get_template(template)
    except Exception:  # noqa: BLE001 - made once per session
        api.create_template(template, coe)
    uuid = api.create_cluster(name, template, node_count=2)
    from floe.db.models import Cluster, Node

    with live_server.runtime.db.session() as s:
        c = s.scalars(select(Cluster).where(Cluster.uuid == uuid)).one()
        for i in range(2):
            s.add(Node(cluster_id=c.id, name=f"{name}-node-{i}", role="worker", index=i))
    live_server.finish(uuid)
    return uuid


def _record(live_server: LiveServer, cluster: str, slurm_id: str, **fields) -> None:
    from floe.db.models import Cluster, Job

    with live_server.runtime.db.session() as s:
        c = s.scalars(select(Cluster).where(Cluster.uuid == cluster)).one()
        s.add(Job(project_id=c.project_id, cluster_id=c.id, slurm_job_id=slurm_id, nodes=2, **fields))


def test_submit_errors_are_one_line(floe, live_server: LiveServer, api: FloeClient) -> None:
    _cluster(live_server, api, "cj-slurm")
    _cluster(live_server, api, "cj-swarm", coe="swarm")
    assert_one_line_error(floe("job", "submit", "cj-slurm"), "give the command to run after `--`")
    assert floe("job", "submit", "cj-slurm", "--nodes", "0", "--", "hostname").exit_code == 2
    assert_one_line_error(floe("job", "submit", "nope", "--", "hostname"), "Cluster nope could not be found")
    assert_one_line_error(floe("job", "submit", "cj-swarm", "--", "hostname"), "runs swarm, not Slurm")
    assert_one_line_error(floe("job", "submit", "cj-slurm", "-N", "3", "--", "hostname"),
                          "Invalid node count 3", "2 compute node")
    assert_one_line_error(floe("job", "submit", "cj-slurm", "--image", "Bad", "--", "hostname"),
                          "Invalid image reference 'Bad'")
    assert_one_line_error(floe("job", "submit", "cj-slurm", "--share", "results", "--", "hostname"),
                          "Share results is not attached to cluster cj-slurm")
    assert_one_line_error(floe("job", "submit", "cj-slurm", "--name", "a b", "--", "hostname"), "Invalid job name")
    # After `--` everything is the command: --image Bad is not read as an option (validation passes,
    # and only the missing provider stops the job).
    assert_one_line_error(floe("job", "submit", "cj-slurm", "-N", "2", "--", "echo", "--image", "Bad"),
                          "runs no Slurm daemons")
    assert api.list_jobs("cj-slurm") == []


def test_list_show_logs_cancel_of_recorded_jobs(floe, live_server: LiveServer, api: FloeClient) -> None:
    uuid = _cluster(live_server, api, "cj-rec")
    _record(live_server, uuid, "21", name="hello", command=["echo", "hi there"], state="COMPLETED", exit_code=0,
            node_list="cj-rec-node-[0-1]")
    _record(live_server, uuid, "22", name="boom", command=["false"], state="FAILED", exit_code=1, image="busybox")
    listed = floe("job", "list", "cj-rec")
    assert listed.exit_code == 0, listed.output
    for expected in ("21", "hello", "COMPLETED", "echo hi there", "cj-rec-node-[0-1]", "22", "FAILED", "busybox"):
        assert expected in listed.stdout
    as_json = json.loads(floe("job", "list", "cj-rec", "-f", "json").stdout)
    assert [(j["id"], j["state"], j["exit_code"]) for j in as_json] == [("21", "COMPLETED", 0), ("22", "FAILED", 1)]
    shown = json.loads(floe("job", "show", "cj-rec", "22", "-f", "json").stdout)
    assert shown == api.get_job("cj-rec", "22") and shown["command"] == ["false"]
    assert "FAILED" in floe("job", "show", "cj-rec", shown["uuid"]).stdout
    logs = floe("job", "logs", "cj-rec", "21", "--follow")  # ended: returns at once, nothing recorded here
    assert logs.exit_code == 0 and logs.stdout == ""
    cancelled = floe("job", "cancel", "cj-rec", "22")
    assert cancelled.exit_code == 0 and "FAILED" in cancelled.stdout
    assert_one_line_error(floe("job", "show", "cj-rec", "23"), "Job 23 could not be found in cluster cj-rec")
    assert_one_line_error(floe("job", "logs", "cj-rec", "x"), "Job x could not be found")

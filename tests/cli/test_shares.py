"""`floe share …` and `floe cluster attach|detach|shares` against the real API with a real storage
worker (local backend: loop devices and mounts, so root), and their one-line errors."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import httpx
import pytest

from floe.engine import share_work
from floe.engine.runner import Runner
from floe.host import mounts
from floe.storage.local import LocalBackend
from tests.cli.conftest import LiveServer, assert_one_line_error

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the local share backend needs root (loop devices, mounts)"),
    pytest.mark.timeout(120),
]


@pytest.fixture(scope="module")
def worker(live_server: LiveServer) -> Iterator[Runner]:
    engine = live_server.runtime.engine
    w, _ = share_work.standalone(live_server.runtime, poll=0.1)
    w.start()
    yield w
    w.stop()
    live_server.runtime.engine = engine
    LocalBackend(live_server.home / "storage").purge(delete_data=True)
    mounts.unmount_tree(live_server.home)


def test_share_commands(floe, live_server: LiveServer, worker) -> None:
    created = floe("share", "create", "1", "--name", "cli-data", "--wait", "-f", "json")
    assert created.exit_code == 0, created.output
    share = json.loads(created.stdout)
    assert share["status"] == "available" and share["share_type_name"] == "local"
    listed = floe("share", "list")
    assert "cli-data" in listed.stdout and "available" in listed.stdout
    shown = json.loads(floe("share", "show", "cli-data", "-f", "json").stdout)
    assert shown["export_locations"] == [str(live_server.home / "storage/local/mnt" / share["id"])]
    assert shown["mounts"] == []
    types = floe("share", "types")
    assert "local" in types.stdout and "LOCALFS" in types.stdout

    rule = json.loads(floe("share", "access", "allow", "cli-data", "--cluster", "cli-c1", "--level", "ro",
                           "-f", "json").stdout)
    assert rule["access_to"] == "cli-c1" and rule["access_level"] == "ro"
    rules = json.loads(floe("share", "access", "list", "cli-data", "-f", "json").stdout)
    assert [r["id"] for r in rules] == [rule["id"]]
    assert floe("share", "access", "deny", "cli-data", "--cluster", "cli-c1").exit_code == 0

    assert floe("share", "extend", "cli-data", "2", "--wait").stdout.strip().endswith("2 GiB")
    assert floe("share", "delete", "cli-data", "--wait").exit_code == 0
    assert_one_line_error(floe("share", "show", "cli-data"), "could not be found")


def test_share_errors_are_one_line(floe, live_server: LiveServer, worker) -> None:
    assert_one_line_error(floe("share", "create", "0"), "SIZE_GB must be > 0")
    assert_one_line_error(floe("share", "create", "1", "--type", "ceph"), "ceph")
    assert_one_line_error(floe("share", "access", "allow", "nope", "--cluster", "c"), "could not be found")
    assert_one_line_error(floe("share", "access", "allow", "x"), "exactly one of --cluster or --ip")
    assert_one_line_error(floe("cluster", "attach", "no-such-cluster", "--share", "x"), "could not be found")


def test_attach_on_a_server_that_cannot_mount(floe, live_server: LiveServer, worker) -> None:
    """With no infra provider, an attach fails with the reason (and `--wait` says it in one line)."""
    headers = {"X-Auth-Token": live_server.token, "OpenStack-API-Version": "container-infra latest"}
    httpx.post(live_server.url + "/v1/clustertemplates", json={"name": "cli-sh-t", "coe": "swarm"},
               headers=headers, timeout=10).raise_for_status()
    httpx.post(live_server.url + "/v1/clusters", json={"name": "cli-sh-c", "cluster_template_id": "cli-sh-t"},
               headers=headers, timeout=10).raise_for_status()
    live_server.update_cluster("cli-sh-c", status="CREATE_COMPLETE")
    assert floe("share", "create", "1", "--name", "cli-att", "--wait").exit_code == 0
    assert_one_line_error(floe("cluster", "attach", "cli-sh-c", "--share", "cli-att"), "has no access")
    floe("share", "access", "allow", "cli-att", "--cluster", "cli-sh-c")
    failed = floe("cluster", "attach", "cli-sh-c", "--share", "cli-att", "--wait")
    assert_one_line_error(failed, "cannot mount shares")
    listed = json.loads(floe("cluster", "shares", "cli-sh-c", "-f", "json").stdout)
    assert [(m["share_name"], m["state"]) for m in listed] == [("cli-att", "error")]
    assert_one_line_error(floe("share", "delete", "cli-att"), "in use by cli-sh-c")
    assert floe("cluster", "detach", "cli-sh-c", "--share", "cli-att", "--wait").exit_code == 0
    assert floe("share", "delete", "cli-att", "--wait").exit_code == 0

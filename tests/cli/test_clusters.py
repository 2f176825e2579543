"""`floe cluster ...` against the real API (no engine: the tests move statuses themselves)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from floe.client import FloeClient
from tests.cli.conftest import LiveServer, assert_one_line_error


@pytest.fixture(scope="module")
def template(live_server: LiveServer) -> Iterator[str]:
    with FloeClient(live_server.url, live_server.token) as client:
        client.create_template("tpl-clusters", "swarm", labels={"purpose": "cli-tests"})
    yield "tpl-clusters"


def _later(action: Callable[[], None], delay: float = 0.8) -> threading.Thread:
    """Run `action` in the background after `delay`, while the CLI under test is polling."""

    def run() -> None:
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _when(condition: Callable[[], bool], action: Callable[[], None], timeout: float = 20) -> threading.Thread:
    def run() -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end and not condition():
            time.sleep(0.05)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_create_list_show_delete(floe, live_server: LiveServer, template: str):
    result = floe(
        "cluster", "create", "cl-basic", "--template", template, "--node-count", "2", "--label", "team=a"
    )
    assert result.exit_code == 0, result.output
    assert "cl-basic" in result.stdout and "accepted" in result.stdout

    shown = json.loads(floe("cluster", "show", "cl-basic", "-f", "json").stdout)
    # Nothing runs the engine here, so the cluster waits in CREATE_IN_PROGRESS.
    assert shown["status"] == "CREATE_IN_PROGRESS"
    assert shown["node_count"] == 2 and shown["master_count"] == 1
    assert shown["labels"].get("team") == "a"
    with FloeClient(live_server.url, live_server.token) as client:
        assert shown["cluster_template_id"] == client.get_template(template)["uuid"]
        assert shown == client.get_cluster(shown["uuid"])

    table = floe("cluster", "list")
    assert table.exit_code == 0 and "cl-basic" in table.stdout and "CREATE_IN_PROGRESS" in table.stdout
    listed = json.loads(floe("cluster", "list", "-f", "json").stdout)
    assert shown["uuid"] in [c["uuid"] for c in listed]
    text = floe("cluster", "show", shown["uuid"])
    assert text.exit_code == 0 and "cl-basic" in text.stdout and "status" in text.stdout

    nodes = floe("cluster", "nodes", "cl-basic", "-f", "json")
    assert nodes.exit_code == 0, nodes.output
    assert isinstance(json.loads(nodes.stdout), list)
    assert floe("cluster", "nodes", "cl-basic").exit_code == 0

    deleted = floe("cluster", "delete", "cl-basic")
    assert deleted.exit_code == 0, deleted.output
    assert live_server.cluster_status(shown["uuid"]) in (None, "DELETE_IN_PROGRESS")


def test_create_wait_until_complete(floe, live_server: LiveServer, template: str):
    # Play the engine: finish the create shortly after the CLI starts waiting.
    engine = _when(
        lambda: live_server.cluster_status("cl-wait") is not None,
        lambda: (time.sleep(0.8), live_server.finish("cl-wait", api_address="tcp://10.160.9.2:2376")),
    )
    result = floe("cluster", "create", "cl-wait", "--template", template, "--wait")
    engine.join()
    assert result.exit_code == 0, result.output
    assert "CREATE_COMPLETE" in result.stdout and "tcp://10.160.9.2:2376" in result.stdout
    assert "CREATE_IN_PROGRESS" in result.stderr  # progress went to stderr


def test_create_wait_reports_failure(floe, live_server: LiveServer, template: str):
    engine = _when(
        lambda: live_server.cluster_status("cl-fail") is not None,
        lambda: (time.sleep(0.8), live_server.update_cluster(
            "cl-fail", status="CREATE_FAILED", status_reason="step nodes: dockerd on cl-fail-1 did not start"
        )),
    )
    result = floe("cluster", "create", "cl-fail", "--template", template, "--wait")
    engine.join()
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: CREATE_FAILED: step nodes: dockerd on cl-fail-1 did not start"]
    assert result.stderr.strip().splitlines()[-1] == errors[0]


def test_delete_wait_until_gone(floe, live_server: LiveServer, template: str):
    assert floe("cluster", "create", "cl-del", "--template", template).exit_code == 0
    uuid = json.loads(floe("cluster", "show", "cl-del", "-f", "json").stdout)["uuid"]
    # Play the engine: once the delete is accepted, the rows go away.
    engine = _when(
        lambda: live_server.cluster_status(uuid) in (None, "DELETE_IN_PROGRESS"),
        lambda: live_server.cluster_status(uuid) and live_server.drop_cluster(uuid),
    )
    result = floe("cluster", "delete", "cl-del", "--wait")
    engine.join()
    assert result.exit_code == 0, result.output
    assert "deleted" in result.stdout
    assert_one_line_error(floe("cluster", "show", uuid), "404")


def test_resize(floe, live_server: LiveServer, template: str):
    assert floe("cluster", "create", "cl-resize", "--template", template).exit_code == 0
    live_server.finish("cl-resize")
    result = floe("cluster", "resize", "cl-resize", "--node-count", "3")
    assert result.exit_code == 0, result.output
    shown = json.loads(floe("cluster", "show", "cl-resize", "-f", "json").stdout)
    assert shown["node_count"] == 3 or shown["status"].startswith("UPDATE_"), shown
    # A node the cluster does not have is refused before anything is sent.
    assert_one_line_error(
        floe("cluster", "resize", "cl-resize", "--node-count", "1", "--remove", "no-such-node"), "no-such-node"
    )


def test_resize_wait(floe, live_server: LiveServer, template: str):
    assert floe("cluster", "create", "cl-grow", "--template", template).exit_code == 0
    live_server.finish("cl-grow")
    # The API sets UPDATE_IN_PROGRESS as it accepts the resize; the "engine" then completes it.
    engine = _when(
        lambda: live_server.cluster_status("cl-grow") == "UPDATE_IN_PROGRESS",
        lambda: (time.sleep(0.8), live_server.finish("cl-grow", "UPDATE_COMPLETE", node_count=4)),
    )
    result = floe("cluster", "resize", "cl-grow", "--node-count", "4", "--wait")
    engine.join()
    assert result.exit_code == 0, result.output
    assert "UPDATE_COMPLETE" in result.stdout and "4 nodes" in result.stdout

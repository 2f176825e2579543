"""`floe network …` and `floe cluster network …` against the real API (no engine: the tests move
the cluster's status themselves), and their one-line errors."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest

from floe.client import FloeClient
from tests.cli.conftest import LiveServer, assert_one_line_error


@pytest.fixture
def api(live_server: LiveServer) -> Iterator[FloeClient]:
    """A client for setup, and for removing what each test made (the server lives for the session)."""
    with FloeClient(live_server.url, live_server.token) as client:
        before = {n["uuid"] for n in client.list_networks()}
        yield client
        made = [n for n in client.list_networks() if n["uuid"] not in before]
        for cluster in {c for n in made for c in n["clusters"]}:
            live_server.drop_cluster(cluster)
        for n in made:
            client.delete_network(n["uuid"])


def _cluster(live_server: LiveServer, api: FloeClient, name: str) -> str:
    try:
        api.get_template("tpl-cli-networks")
    except Exception:  # noqa: BLE001 - made once per session
        api.create_template("tpl-cli-networks", "swarm")
    uuid = api.create_cluster(name, "tpl-cli-networks", node_count=1)
    live_server.finish(uuid)
    return uuid


def test_network_commands(floe, api: FloeClient) -> None:
    created = floe("network", "create", "cn-data", "-f", "json")
    assert created.exit_code == 0, created.output
    net = json.loads(created.stdout)
    assert net["name"] == "cn-data" and net["cidr"].endswith("/24") and net["clusters"] == []
    chosen = json.loads(floe("network", "create", "cn-chosen", "--cidr", "10.170.8.0/28", "-f", "json").stdout)
    assert chosen["cidr"] == "10.170.8.0/28"

    table = floe("network", "create", "cn-table")
    assert table.exit_code == 0 and "cn-table" in table.stdout and "cidr" in table.stdout
    listed = floe("network", "list")
    assert listed.exit_code == 0
    for expected in ("cn-data", "cn-chosen", "10.170.8.0/28", net["uuid"], "ACTIVE"):
        assert expected in listed.stdout
    as_json = json.loads(floe("network", "list", "-f", "json").stdout)
    assert {"cn-data", "cn-chosen", "cn-table"} <= {n["name"] for n in as_json}
    shown = json.loads(floe("network", "show", "cn-data", "-f", "json").stdout)
    assert shown == net == api.get_network(net["uuid"])
    assert net["uuid"] in floe("network", "show", net["uuid"]).stdout

    deleted = floe("network", "delete", "cn-data")
    assert deleted.exit_code == 0 and "deleted" in deleted.stdout
    assert_one_line_error(floe("network", "show", "cn-data"), "Network cn-data could not be found")
    assert_one_line_error(floe("network", "delete", "cn-data"), "could not be found")


def test_network_errors_are_one_line(floe, api: FloeClient) -> None:
    assert floe("network", "create", "cn-dup").exit_code == 0
    assert_one_line_error(floe("network", "create", "cn-dup"), "already exists")
    assert_one_line_error(floe("network", "create", "cn-x", "--cidr", "10.170.8.1/24"), "did you mean 10.170.8.0/24")
    assert_one_line_error(floe("network", "create", "cn-x", "--cidr", "192.168.0.0/24"), "address range")
    assert_one_line_error(floe("network", "create", "cn-x", "--cidr", "10.170.8.0/30"), "/16 to /29")
    assert_one_line_error(floe("network", "create", "n" * 256), "255")
    assert "cn-x" not in floe("network", "list").stdout


def test_names_are_shown_as_typed(floe, api: FloeClient) -> None:
    """A name that looks like Rich markup is printed as it is, never interpreted."""
    name = "[bold red]cn-markup-网络"
    assert floe("network", "create", name).exit_code == 0
    assert name in floe("network", "list").stdout
    assert name in floe("network", "show", name).stdout
    assert floe("network", "delete", name).exit_code == 0


def test_cluster_network_attach_list_and_wait(floe, live_server: LiveServer, api: FloeClient) -> None:
    uuid = _cluster(live_server, api, "cn-cluster")
    api.create_network("cn-front")
    api.create_network("cn-back")
    attached = floe("cluster", "network", "attach", "cn-cluster", "cn-front")
    assert attached.exit_code == 0, attached.output
    assert "eth1" in attached.stdout and "accepted" in attached.stdout
    assert live_server.cluster_status(uuid) == "UPDATE_IN_PROGRESS"
    assert_one_line_error(floe("cluster", "network", "attach", "cn-cluster", "cn-back"), "operation in progress")
    assert_one_line_error(floe("network", "delete", "cn-front"), "attached to cluster(s) cn-cluster")
    live_server.finish(uuid, "UPDATE_COMPLETE")
    assert_one_line_error(floe("cluster", "network", "attach", "cn-cluster", "cn-front"), "already attached")
    assert_one_line_error(floe("cluster", "network", "attach", "cn-cluster", "cn-nope"), "could not be found")
    assert_one_line_error(floe("cluster", "network", "attach", "cn-nope", "cn-front"), "could not be found")

    # --wait follows the cluster until the engine (played here) finishes the update.
    def finish_soon() -> None:
        time.sleep(1.0)
        live_server.finish(uuid, "UPDATE_COMPLETE")

    helper = threading.Thread(target=finish_soon, daemon=True)
    helper.start()
    waited = floe("cluster", "network", "attach", "cn-cluster", "cn-back", "--wait")
    helper.join()
    assert waited.exit_code == 0, waited.output
    assert "eth2" in waited.stdout and "UPDATE_COMPLETE" in waited.stdout

    listed = json.loads(floe("cluster", "network", "list", "cn-cluster", "-f", "json").stdout)
    assert [(a["interface"], a["network_name"]) for a in listed] == [("eth1", "cn-front"), ("eth2", "cn-back")]
    table = floe("cluster", "network", "list", uuid)
    assert table.exit_code == 0 and "eth2" in table.stdout and "cn-back" in table.stdout
    assert json.loads(floe("network", "show", "cn-back", "-f", "json").stdout)["clusters"] == ["cn-cluster"]


def test_attach_wait_reports_a_failed_update(floe, live_server: LiveServer, api: FloeClient) -> None:
    uuid = _cluster(live_server, api, "cn-failing")
    api.create_network("cn-broken")

    def fail_soon() -> None:
        time.sleep(1.0)
        live_server.finish(uuid, "UPDATE_FAILED", status_reason="attach_network: bridge refused")

    helper = threading.Thread(target=fail_soon, daemon=True)
    helper.start()
    result = floe("cluster", "network", "attach", "cn-failing", "cn-broken", "--wait")
    helper.join()
    # Progress lines on stderr, then the one error line, last; no traceback.
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[-1] == "error: UPDATE_FAILED: attach_network: bridge refused"

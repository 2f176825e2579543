"""/v1/clusters: create (queued), show, list, patch node_count, resize, delete and every refusal."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from .conftest import Env, assert_error

SUMMARY = {
    "uuid", "name", "cluster_template_id", "keypair", "docker_volume_size", "labels", "node_count",
    "master_count", "status", "health_status", "master_flavor_id", "flavor_id", "create_timeout", "stack_id",
    "links",
}
DETAIL = SUMMARY | {
    "status_reason", "health_status_reason", "discovery_url", "api_address", "master_addresses",
    "node_addresses", "coe_version", "container_version", "project_id", "user_id", "faults", "fixed_network",
    "fixed_subnet", "floating_ip_enabled", "master_lb_enabled", "labels_overridden", "labels_added",
    "labels_skipped", "created_at", "updated_at",
}


@pytest.fixture
def template(client: TestClient) -> dict:
    # fixed_network names a project network: it must exist when a cluster is made from the template.
    assert client.post("/v1/floe/networks", json={"name": "net"}).status_code == 201
    resp = client.post(
        "/v1/clustertemplates",
        json={"name": "tpl", "coe": "swarm-mode", "labels": {"a": "1", "b": "2"}, "flavor_id": "m1.small",
              "master_flavor_id": "m1.medium", "keypair_id": "kp", "docker_volume_size": 3, "fixed_network": "net",
              "fixed_subnet": "sub", "master_lb_enabled": True},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def create(client: TestClient, **fields) -> str:
    resp = client.post("/v1/clusters", json={"cluster_template_id": "tpl", **fields})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert list(body) == ["uuid"]
    return body["uuid"]


def test_create_queues_an_operation_and_wakes_the_engine(client: TestClient, env: Env, template: dict) -> None:
    env.engine_woken()
    uuid = create(client, name="web", node_count=2, master_count=3)
    assert env.engine_woken()
    c = env.cluster(uuid)
    assert (c.name, c.node_count, c.master_count, c.status) == ("web", 2, 3, "CREATE_IN_PROGRESS")
    assert c.coe == "swarm-mode" and c.cluster_template_id == template["uuid"]
    assert re.fullmatch(r"[0-9a-f]{8}", c.host_tag)
    (op,) = env.operations(uuid)
    assert (op.kind, op.state) == ("create", "pending")
    assert op.deadline_at is not None
    assert env.snapshot()["nodes"] == []  # the engine plans nodes, not the API


def test_create_inherits_from_the_template(client: TestClient, env: Env, template: dict) -> None:
    uuid = create(client, name="inherit")
    body = client.get(f"/v1/clusters/{uuid}").json()
    assert set(body) == DETAIL
    assert body["keypair"] == "kp" and body["flavor_id"] == "m1.small" and body["master_flavor_id"] == "m1.medium"
    assert body["docker_volume_size"] == 3 and body["fixed_network"] == "net" and body["fixed_subnet"] == "sub"
    assert body["master_lb_enabled"] is True and body["floating_ip_enabled"] is False
    assert body["labels"] == {"a": "1", "b": "2"}
    assert body["labels_added"] == body["labels_overridden"] == body["labels_skipped"] == {}
    assert (body["node_count"], body["master_count"], body["create_timeout"]) == (1, 1, 60)
    assert body["status"] == "CREATE_IN_PROGRESS" and body["health_status"] == "UNKNOWN"
    assert body["project_id"] == env.cluster(uuid).project_id and body["user_id"] == env.admin_user_id
    assert body["faults"] == {} and body["master_addresses"] == [] and body["api_address"] is None
    # Explicit values win over the template's (a flavor by id: "4" is m1.large).
    uuid = create(client, name="explicit", keypair="mine", flavor_id="4", docker_volume_size=9,
                  master_lb_enabled=False, floating_ip_enabled=True)
    body = client.get(f"/v1/clusters/{uuid}").json()
    assert (body["keypair"], body["flavor_id"], body["docker_volume_size"]) == ("mine", "4", 9)
    assert body["master_lb_enabled"] is False and body["floating_ip_enabled"] is True


def test_labels_follow_magnums_merge_rules(client: TestClient, template: dict) -> None:
    replaced = client.get(f"/v1/clusters/{create(client, name='r', labels={'b': '3', 'c': '4'})}").json()
    assert replaced["labels"] == {"b": "3", "c": "4"}
    assert replaced["labels_overridden"] == {"b": "2"}  # the template's value
    assert replaced["labels_added"] == {"c": "4"}
    assert replaced["labels_skipped"] == {"a": "1"}
    merged = client.get(
        f"/v1/clusters/{create(client, name='m', labels={'b': '3', 'c': '4'}, merge_labels=True)}"
    ).json()
    assert merged["labels"] == {"a": "1", "b": "3", "c": "4"}
    assert merged["labels_skipped"] == {} and merged["labels_added"] == {"c": "4"}
    empty = client.get(f"/v1/clusters/{create(client, name='e', labels={})}").json()
    assert empty["labels"] == {"a": "1", "b": "2"}


def test_a_name_is_generated_and_host_tags_are_unique(client: TestClient, env: Env, template: dict) -> None:
    uuids = [create(client) for _ in range(5)]
    names = {client.get(f"/v1/clusters/{u}").json()["name"] for u in uuids}
    assert len(names) == 5 and all(n.endswith("-cluster") for n in names)
    assert len({env.cluster(u).host_tag for u in uuids}) == 5


def test_clients_may_send_nulls_for_defaults(client: TestClient, env: Env, template: dict) -> None:
    uuid = create(client, name="nulls", create_timeout=None, node_count=None, master_count=None,
                  discovery_url=None, keypair=None, labels=None)
    c = env.cluster(uuid)
    assert (c.create_timeout, c.node_count, c.master_count, c.keypair) == (60, 1, 1, "kp")


@pytest.mark.parametrize(
    ("body", "status", "fragments"),
    [
        ({"cluster_template_id": "nope"}, 400, ("ClusterTemplate nope could not be found",)),
        ({}, 400, ("cluster_template_id", "missing")),
        ({"cluster_template_id": "tpl", "master_count": 0}, 400, ("master_count",)),
        ({"cluster_template_id": "tpl", "master_count": 2}, 400, ("master_count", "odd")),
        ({"cluster_template_id": "tpl", "master_count": 4}, 400, ("master_count",)),
        ({"cluster_template_id": "tpl", "node_count": -1}, 400, ("node_count",)),
        ({"cluster_template_id": "tpl", "node_count": "two"}, 400, ("node_count",)),
        ({"cluster_template_id": "tpl", "node_count": 1.5}, 400, ("node_count",)),
        ({"cluster_template_id": "tpl", "node_count": True}, 400, ("node_count",)),
        ({"cluster_template_id": "tpl", "create_timeout": -1}, 400, ("create_timeout",)),
        ({"cluster_template_id": "tpl", "docker_volume_size": 0}, 400, ("docker_volume_size",)),
        ({"cluster_template_id": "tpl", "colour": "blue"}, 400, ("colour",)),
        ({"cluster_template_id": "tpl", "labels": "a=b"}, 400, ("labels",)),
        ({"cluster_template_id": "tpl", "name": "My_Cluster"}, 400, ("name", "DNS")),
        ({"cluster_template_id": "tpl", "name": "x" * 64}, 400, ("name",)),
        ({"cluster_template_id": "tpl", "name": "ends-"}, 400, ("name",)),
        ({"cluster_template_id": "tpl", "name": "taken"}, 409, ("taken",)),
    ],
)
def test_create_refusals(client: TestClient, env: Env, template: dict, body: dict, status: int,
                         fragments: tuple[str, ...]) -> None:
    create(client, name="taken")
    before = env.snapshot()
    env.engine_woken()
    assert_error(client.post("/v1/clusters", json=body), status, *fragments)
    assert env.snapshot() == before
    assert not env.engine_woken()


def test_another_projects_private_template_is_unknown(client: TestClient, env: Env, template: dict) -> None:
    team = env.headers(env.new_project("team"))
    before = env.snapshot()
    resp = client.post("/v1/clusters", json={"cluster_template_id": template["uuid"]}, headers=team)
    assert_error(resp, 400, template["uuid"])
    assert env.snapshot() == before


def test_show_by_uuid_or_name_and_unknown(client: TestClient, template: dict) -> None:
    uuid = create(client, name="shown")
    assert client.get("/v1/clusters/shown").json()["uuid"] == uuid
    assert client.get(f"/v1/clusters/{uuid}").json()["name"] == "shown"
    assert_error(client.get("/v1/clusters/missing"), 404, "Cluster missing could not be found")


def test_failed_clusters_show_faults(client: TestClient, env: Env, template: dict) -> None:
    uuid = create(client, name="broken")
    env.finish_create(uuid, status="CREATE_FAILED", status_reason="step nodes: dockerd did not start")
    body = client.get(f"/v1/clusters/{uuid}").json()
    assert body["faults"] == {"cluster": "step nodes: dockerd did not start"}


def test_list_is_a_summary_and_detail_is_full(client: TestClient, template: dict) -> None:
    uuids = [create(client, name=f"c{i}") for i in range(3)]
    body = client.get("/v1/clusters").json()
    assert list(body) == ["clusters"]
    assert [c["uuid"] for c in body["clusters"]] == uuids
    assert all(set(c) == SUMMARY for c in body["clusters"])
    detail = client.get("/v1/clusters/detail").json()
    assert [c["uuid"] for c in detail["clusters"]] == uuids
    assert all(set(c) == DETAIL for c in detail["clusters"])


def test_patch_node_count_queues_an_update(client: TestClient, env: Env, template: dict) -> None:
    uuid = create(client, name="grow", node_count=1)
    env.finish_create(uuid)
    env.engine_woken()
    resp = client.patch("/v1/clusters/grow", json=[{"op": "replace", "path": "/node_count", "value": 4}])
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"uuid": uuid}
    assert env.engine_woken()
    op = env.operations(uuid)[-1]
    assert (op.kind, op.state, op.params) == ("update", "pending", {"node_count": 4})
    c = env.cluster(uuid)
    assert c.status == "UPDATE_IN_PROGRESS" and c.node_count == 1  # the engine sets node_count when done


@pytest.mark.parametrize(
    ("patch", "fragments"),
    [
        ([{"op": "replace", "path": "/name", "value": "other"}], ("name", "node_count")),
        ([{"op": "replace", "path": "/master_count", "value": 3}], ("master_count",)),
        ([{"op": "add", "path": "/labels/x", "value": "y"}], ("labels",)),
        ([{"op": "replace", "path": "/api_address", "value": "x"}], ("/api_address", "internal")),
        ([{"op": "replace", "path": "/uuid", "value": "x"}], ("/uuid",)),
        ([{"op": "remove", "path": "/node_count"}], ("/node_count", "mandatory")),
        ([{"op": "replace", "path": "/node_count", "value": -1}], ("node_count",)),
        ([{"op": "replace", "path": "/node_count", "value": "many"}], ("node_count",)),
        ([{"op": "replace", "path": "/node_count", "value": True}], ("node_count",)),
        ([{"op": "replace", "path": "/node_count"}], ("value",)),
        ([{"op": "copy", "path": "/node_count", "from": "/master_count"}], ("op",)),
        ([], ("empty",)),
        ({"op": "replace", "path": "/node_count", "value": 2}, ()),
    ],
)
def test_patch_refusals(client: TestClient, env: Env, template: dict, patch, fragments: tuple[str, ...]) -> None:
    uuid = create(client, name="fixed")
    env.finish_create(uuid)
    before = env.snapshot()
    assert_error(client.patch("/v1/clusters/fixed", json=patch), 400, *fragments)
    assert env.snapshot() == before


def test_one_operation_at_a_time(client: TestClient, env: Env, template: dict) -> None:
    create(client, name="busy")
    before = env.snapshot()
    resp = client.patch("/v1/clusters/busy", json=[{"op": "replace", "path": "/node_count", "value": 2}])
    assert_error(resp, 409, "in progress")
    assert_error(client.post("/v1/clusters/busy/actions/resize", json={"node_count": 2}), 409)
    assert env.snapshot() == before


def test_resize_with_nodes_to_remove(client: TestClient, env: Env, template: dict) -> None:
    uuid = create(client, name="rs", node_count=3)
    names = env.add_nodes(uuid, managers=1, workers=3)
    env.finish_create(uuid)
    nodes = client.get("/v1/floe/clusters/rs/nodes").json()["nodes"]
    by_name = {n["name"]: n["uuid"] for n in nodes}
    resp = client.post("/v1/clusters/rs/actions/resize",
                       json={"node_count": 1, "nodes_to_remove": [names[1], by_name[names[3]]]})
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"uuid": uuid}
    op = env.operations(uuid)[-1]
    assert op.kind == "update"
    assert op.params == {"node_count": 1, "nodes_to_remove": [by_name[names[1]], by_name[names[3]]]}
    assert env.cluster(uuid).status == "UPDATE_IN_PROGRESS"


def test_resize_without_nodes_and_with_default_nodegroup(client: TestClient, env: Env, template: dict) -> None:
    uuid = create(client, name="rs2")
    env.finish_create(uuid)
    resp = client.post("/v1/clusters/rs2/actions/resize/", json={"node_count": 5, "nodegroup": "default-worker"})
    assert resp.status_code == 202, resp.text
    assert env.operations(uuid)[-1].params == {"node_count": 5, "nodes_to_remove": []}


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ({"node_count": 1, "nodes_to_remove": ["ghost"]}, ("ghost", "not a node")),
        ({"node_count": 1, "nodes_to_remove": ["@manager"]}, ("manager", "only workers")),
        ({"node_count": 2, "nodes_to_remove": ["@w0", "@w1"]}, ("removes 1",)),
        ({"node_count": 4, "nodes_to_remove": ["@w0"]}, ("removes 0",)),
        ({"node_count": -1}, ("node_count",)),
        ({"node_count": "3"}, ("node_count",)),
        ({}, ("node_count", "missing")),
        ({"node_count": 1, "nodegroup": "default-master"}, ("default-master",)),
        # A nodegroup the cluster does not have: 404, as Magnum (NodeGroupNotFound).
        ({"node_count": 1, "nodegroup": "gpu"}, (404, "gpu")),
        ({"node_count": 1, "nodes_to_remove": "w0"}, ("nodes_to_remove",)),
        ({"node_count": 1, "extra": 1}, ("extra",)),
    ],
)
def test_resize_refusals(client: TestClient, env: Env, template: dict, body: dict,
                         fragments: tuple[str, ...]) -> None:
    uuid = create(client, name="rz", node_count=3)
    names = env.add_nodes(uuid, managers=1, workers=3)
    env.finish_create(uuid)
    aliases = {"@manager": names[0], "@w0": names[1], "@w1": names[2]}
    if "nodes_to_remove" in body and isinstance(body["nodes_to_remove"], list):
        body = dict(body, nodes_to_remove=[aliases.get(n, n) for n in body["nodes_to_remove"]])
    before = env.snapshot()
    status = fragments[0] if isinstance(fragments[0], int) else 400
    fragments = tuple(f for f in fragments if isinstance(f, str))
    assert_error(client.post("/v1/clusters/rz/actions/resize", json=body), status, *fragments)
    assert env.snapshot() == before


def test_delete_queues_a_delete_that_supersedes(client: TestClient, env: Env, template: dict) -> None:
    uuid = create(client, name="bye")
    env.engine_woken()
    resp = client.delete("/v1/clusters/bye")
    assert resp.status_code == 204 and resp.content == b""
    assert env.engine_woken()
    create_op, delete_op = env.operations(uuid)
    assert (create_op.kind, create_op.state) == ("create", "superseded")
    assert (delete_op.kind, delete_op.state) == ("delete", "pending")
    assert env.cluster(uuid).status == "DELETE_IN_PROGRESS"
    # Deleting again while it runs is accepted and queues nothing new.
    assert client.delete(f"/v1/clusters/{uuid}/").status_code == 204
    assert len(env.operations(uuid)) == 2
    assert_error(client.delete("/v1/clusters/never-was"), 404)

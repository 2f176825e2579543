"""Magnum's nodegroup API (/v1/clusters/{id}/nodegroups): shapes per microversion, validation
(bounds, taints, node labels, names), refusals that change nothing, paging, and the resize
action naming a nodegroup.

The real app on a real SQLite database, no engine: what the engine would do when an operation
ends (`settle`) is written to the rows directly, as the other API tests do.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, or_, select

from floe.db.models import Cluster, NodeGroup, Operation, Quota

from .conftest import Env, assert_error

LATEST = {"OpenStack-API-Version": "container-infra latest"}
SUMMARY = {"uuid", "name", "flavor_id", "image_id", "node_count", "role", "is_default", "status", "stack_id"}
FULL_1_9 = SUMMARY | {
    "cluster_id", "project_id", "docker_volume_size", "labels", "node_addresses", "min_node_count",
    "max_node_count", "status_reason", "version", "links", "created_at", "updated_at",
}
LABELS_DIFF = {"labels_overridden", "labels_added", "labels_skipped"}
NODE_METADATA = {"node_labels", "node_taints"}


def v(version: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"container-infra {version}"}


def state(env: Env) -> list:
    """Every row a nodegroup request could write (nodegroups beside the API's usual tables)."""
    with env.db.session() as s:
        groups = s.scalars(select(NodeGroup).order_by(NodeGroup.id)).all()
        cols = [c.key for c in NodeGroup.__table__.columns]
        rows = [tuple(getattr(g, k) for k in cols) for g in groups]
    return [rows, env.snapshot()]


def settle(env: Env, ident: str) -> None:
    """End the cluster's operations as the engine would: groups reach their target and *_COMPLETE,
    deleted groups go, the cluster is UPDATE_COMPLETE (CREATE_COMPLETE after its create)."""
    with env.db.session() as s:
        c = s.scalars(select(Cluster).where(or_(Cluster.uuid == ident, Cluster.name == ident))).one()
        for op in s.scalars(select(Operation).where(Operation.cluster_id == c.id,
                                                    Operation.state.in_(("pending", "running")))):
            op.state = "complete"
            params = op.params or {}
            group = s.scalars(select(NodeGroup).where(NodeGroup.uuid == params.get("nodegroup"))).first()
            if group is not None and params.get("delete_nodegroup"):
                s.execute(delete(NodeGroup).where(NodeGroup.id == group.id))
            elif group is not None:
                group.node_count = params["node_count"]
        for g in s.scalars(select(NodeGroup).where(NodeGroup.cluster_id == c.id)):
            g.status = g.status.replace("_IN_PROGRESS", "_COMPLETE")
        c.status = c.status.replace("_IN_PROGRESS", "_COMPLETE")


@pytest.fixture
def cluster(env: Env, client: TestClient) -> str:
    """A settled cluster (1 manager, 1 worker, labels a=1 b=2) with its two default nodegroups."""
    assert client.post("/v1/clustertemplates", json={"coe": "swarm", "name": "tpl"}).status_code == 201
    resp = client.post("/v1/clusters", json={"cluster_template_id": "tpl", "name": "c1", "node_count": 1,
                                             "labels": {"a": "1", "b": "2"}})
    assert resp.status_code == 202, resp.text
    uuid = resp.json()["uuid"]
    settle(env, uuid)
    return uuid


def create(client: TestClient, cluster: str = "c1", expect: int = 202, headers: dict | None = None,
           **body: Any) -> dict:
    resp = client.post(f"/v1/clusters/{cluster}/nodegroups", json=body, headers=headers or LATEST)
    assert resp.status_code == expect, resp.text
    return resp.json()


def refused(client: TestClient, env: Env, method: str, url: str, status: int, *fragments: str,
            headers: dict | None = None, **kw: Any) -> dict:
    """`method url` answers a Magnum error with `status` and changes nothing."""
    before = state(env)
    resp = client.request(method, url, headers=headers or LATEST, **kw)
    err = assert_error(resp, status, *fragments)
    assert state(env) == before
    return err


def group(env: Env, name: str) -> NodeGroup:
    with env.db.session() as s:
        return s.scalars(select(NodeGroup).where(NodeGroup.name == name)).one()


# ---------------------------------------------------------------------------
# Reads and shapes


def test_every_cluster_lists_its_two_default_groups(client: TestClient, cluster: str) -> None:
    body = client.get(f"/v1/clusters/{cluster}/nodegroups", headers=LATEST).json()
    assert set(body) == {"nodegroups"}
    groups = body["nodegroups"]
    assert [(g["name"], g["role"], g["is_default"], g["node_count"]) for g in groups] == [
        ("default-master", "master", True, 1), ("default-worker", "worker", True, 1)]
    assert all(set(g) == SUMMARY for g in groups)
    masters = client.get("/v1/clusters/c1/nodegroups", params={"role": "master"}, headers=LATEST).json()
    assert [g["name"] for g in masters["nodegroups"]] == ["default-master"]
    none = client.get("/v1/clusters/c1/nodegroups", params={"role": "gpu"}, headers=LATEST).json()
    assert none["nodegroups"] == []


@pytest.mark.parametrize(("version", "extra"), [
    ("1.9", set()), ("1.11", set()), ("1.12", LABELS_DIFF), ("1.13", LABELS_DIFF),
    ("1.14", LABELS_DIFF | NODE_METADATA), ("latest", LABELS_DIFF | NODE_METADATA),
])
def test_show_fields_per_microversion(client: TestClient, cluster: str, version: str, extra: set) -> None:
    shown = client.get(f"/v1/clusters/{cluster}/nodegroups/default-worker", headers=v(version))
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert set(body) == FULL_1_9 | extra
    assert body["cluster_id"] == cluster and body["labels"] == {"a": "1", "b": "2"}
    assert body["links"][0]["href"] == f"http://testserver/v1/clusters/{cluster}/nodegroups/{body['uuid']}"
    # The bookmark is unversioned, and served too.
    bookmark = body["links"][1]["href"].removeprefix("http://testserver")
    assert bookmark == f"/clusters/{cluster}/nodegroups/{body['uuid']}"
    assert client.get(bookmark, headers=v(version)).json()["uuid"] == body["uuid"]
    # By name or uuid.
    assert client.get(f"/v1/clusters/c1/nodegroups/{body['uuid']}", headers=v(version)).json() == body


@pytest.mark.parametrize("version", ["1.1", "1.8"])
def test_before_1_9_there_are_no_nodegroups(client: TestClient, env: Env, cluster: str, version: str) -> None:
    url = f"/v1/clusters/{cluster}/nodegroups"
    for method, path, kw in (("GET", url, {}), ("GET", url + "/default-worker", {}),
                             ("POST", url, {"json": {"name": "x"}}),
                             ("PATCH", url + "/default-worker", {"json": [
                                 {"op": "replace", "path": "/max_node_count", "value": 3}]}),
                             ("DELETE", url + "/default-worker", {})):
        err = refused(client, env, method, path, 406, f"Version {version} was requested", "1.9",
                      headers=v(version), **kw)
        assert "nodegroups" in err["title"]


def test_cluster_id_is_shown_from_1_13(client: TestClient, cluster: str) -> None:
    for version, shown in (("1.12", False), ("1.13", True), ("latest", True)):
        one = client.get(f"/v1/clusters/{cluster}", headers=v(version)).json()
        listed = client.get("/v1/clusters", headers=v(version)).json()["clusters"][0]
        detail = client.get("/v1/clusters/detail", headers=v(version)).json()["clusters"][0]
        for body in (one, listed, detail):
            assert ("cluster_id" in body) is shown, (version, body)
            if shown:
                assert body["cluster_id"] == body["stack_id"]  # no Heat stack behind a floe cluster


# ---------------------------------------------------------------------------
# Create


def test_create_records_the_group_and_queues_its_nodes(client: TestClient, env: Env, cluster: str) -> None:
    env.engine_woken()
    body = create(client, name="gpu", node_count=2, min_node_count=1, max_node_count=4, flavor_id="m1.tiny",
                  labels={"c": "3"}, node_labels={"x": "y"},
                  node_taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}, "dedicated:NoExecute"])
    assert set(body) == FULL_1_9 | LABELS_DIFF | NODE_METADATA
    assert body["status"] == "CREATE_IN_PROGRESS" and body["role"] == "worker" and not body["is_default"]
    assert (body["node_count"], body["min_node_count"], body["max_node_count"]) == (2, 1, 4)
    assert body["flavor_id"] == "m1.tiny" and body["image_id"] == "floe-node"  # the template's image
    assert body["labels"] == {"c": "3"} and body["labels_added"] == {"c": "3"}
    assert body["labels_skipped"] == {"a": "1", "b": "2"}
    assert body["node_labels"] == {"x": "y"}
    assert body["node_taints"] == [{"key": "k", "value": "v", "effect": "NoSchedule"},
                                   {"key": "dedicated", "value": "", "effect": "NoExecute"}]
    assert group(env, "gpu").node_taints == ["k=v:NoSchedule", "dedicated=:NoExecute"]
    (op,) = [o for o in env.operations(cluster) if o.state == "pending"]
    assert op.kind == "update" and op.params == {"nodegroup": body["uuid"], "node_count": 2}
    assert env.cluster(cluster).status == "UPDATE_IN_PROGRESS"
    assert env.engine_woken()
    # What the stock clients show for a group being built.
    listed = client.get("/v1/clusters/c1/nodegroups", headers=LATEST).json()["nodegroups"]
    assert [g["name"] for g in listed] == ["default-master", "default-worker", "gpu"]


def test_left_out_fields_come_from_the_cluster(client: TestClient, env: Env, cluster: str) -> None:
    # What python-magnumclient sends for `openstack coe nodegroup create c1 small`: nulls included.
    body = create(client, name="small", node_count=1, max_node_count=None, min_node_count=0, role="worker",
                  labels=None, flavor_id=None, image_id=None, docker_volume_size=None, node_labels=None,
                  node_taints=None, merge_labels=None)
    assert body["labels"] == {"a": "1", "b": "2"} and body["labels_added"] == {} == body["labels_skipped"]
    assert body["max_node_count"] is None and body["node_labels"] == {} and body["node_taints"] == []
    assert body["image_id"] == "floe-node" and body["flavor_id"] == env.cluster(cluster).flavor_id


def test_merge_labels(client: TestClient, env: Env, cluster: str) -> None:
    merged = create(client, name="merged", labels={"b": "3", "c": "4"}, merge_labels=True)
    assert merged["labels"] == {"a": "1", "b": "3", "c": "4"}
    assert merged["labels_overridden"] == {"b": "2"} and merged["labels_added"] == {"c": "4"}
    assert merged["labels_skipped"] == {}
    settle(env, cluster)
    alone = create(client, name="alone", labels={"b": "3"})
    assert alone["labels"] == {"b": "3"} and alone["labels_skipped"] == {"a": "1"}


def test_a_name_of_255_characters_in_any_script(client: TestClient, env: Env, cluster: str) -> None:
    name = ("ноды-GPU-東京-" * 30)[:255]
    body = create(client, name=name)
    assert body["name"] == name
    shown = client.get(f"/v1/clusters/c1/nodegroups/{quote(name, safe='')}", headers=LATEST)
    assert shown.status_code == 200 and shown.json()["uuid"] == body["uuid"]
    settle(env, cluster)
    refused(client, env, "POST", "/v1/clusters/c1/nodegroups", 409, "already exists", json={"name": name})


@pytest.mark.parametrize(("body", "fragments"), [
    ({"name": "x" * 256}, ("name",)),
    ({"name": ""}, ("name",)),
    ({"name": "a/b"}, ("'/'",)),
    ({"name": " gpu"}, ("spaces",)),
    ({"name": "tab\there"}, ("printable",)),
    ({}, ("name", "missing")),
    ({"name": "g", "role": "master"}, ("master nodegroup",)),
    ({"name": "g", "node_count": -1}, ("node_count",)),
    ({"name": "g", "node_count": "2"}, ("node_count",)),
    ({"name": "g", "node_count": True}, ("node_count",)),
    ({"name": "g", "node_count": 1 << 17}, ("node_count",)),
    ({"name": "g", "min_node_count": 3, "max_node_count": 2, "node_count": 2}, ("min_node_count (3)",)),
    ({"name": "g", "node_count": 1, "min_node_count": 2}, ("below its min_node_count",)),
    ({"name": "g", "node_count": 5, "max_node_count": 4}, ("above its max_node_count",)),
    ({"name": "g", "flavor_id": "m9.huge"}, ("m9.huge",)),
    ({"name": "g", "docker_volume_size": 0}, ("docker_volume_size",)),
    ({"name": "g", "labels": {"k": {"nested": 1}}}, ("labels",)),
    ({"name": "g", "node_labels": {"floe.nodegroup": "x"}}, ("reserved",)),
    ({"name": "g", "node_labels": {"k": "v" * 256}}, ("at most 255",)),
    ({"name": "g", "node_labels": {"a b": "v"}}, ("without spaces",)),
    ({"name": "g", "node_labels": {"k": {"x": 1}}}, ("must be text",)),
    ({"name": "g", "node_taints": ["k=v"]}, ("KEY[=VALUE]:EFFECT",)),
    ({"name": "g", "node_taints": ["k=v:Sometimes"]}, ("NoSchedule, PreferNoSchedule, NoExecute",)),
    ({"name": "g", "node_taints": ["k=v:NoSchedule", "k=w:NoSchedule"]}, ("given twice",)),
    ({"name": "g", "node_taints": ["k=v:NoSchedule", "k:NoExecute"]}, ("floe.taint.k",)),
    ({"name": "g", "node_taints": [{"key": "k", "effect": "NoSchedule", "extra": 1}]}, ("key, value and effect",)),
    ({"name": "g", "node_taints": [":NoSchedule"]}, ("taint key",)),
    ({"name": "g", "node_taints": "k=v:NoSchedule"}, ("node_taints",)),
    ({"name": "g", "unknown": 1}, ("Unknown attribute 'unknown'",)),
    ({"name": "g", "project_id": "someone-else"}, ("read-only",)),
])
def test_bad_creates_are_400_and_change_nothing(client: TestClient, env: Env, cluster: str, body: dict,
                                               fragments: tuple[str, ...]) -> None:
    refused(client, env, "POST", "/v1/clusters/c1/nodegroups", 400, *fragments, json=body)


@pytest.mark.parametrize(("version", "field", "value"), [
    ("1.11", "merge_labels", True), ("1.13", "node_labels", {"x": "y"}), ("1.13", "node_taints", []),
])
def test_fields_of_later_microversions_are_refused(client: TestClient, env: Env, cluster: str, version: str,
                                                   field: str, value: Any) -> None:
    refused(client, env, "POST", "/v1/clusters/c1/nodegroups", 400, f"Unknown attribute '{field}'", "1.1",
            headers=v(version), json={"name": "g", field: value})


def test_empty_groups_from_1_10(client: TestClient, env: Env, cluster: str) -> None:
    refused(client, env, "POST", "/v1/clusters/c1/nodegroups", 400, "1.10", headers=v("1.9"),
            json={"name": "empty", "node_count": 0})
    body = create(client, headers=v("1.10"), name="empty", node_count=0)
    assert body["node_count"] == 0 and "node_labels" not in body


def test_a_busy_or_deleting_cluster_takes_no_new_group(client: TestClient, env: Env, cluster: str) -> None:
    create(client, name="first")
    refused(client, env, "POST", "/v1/clusters/c1/nodegroups", 409, "operation in progress", json={"name": "second"})
    settle(env, cluster)
    assert client.delete("/v1/clusters/c1").status_code == 204
    refused(client, env, "POST", "/v1/clusters/c1/nodegroups", 409, "being deleted", json={"name": "third"})


def test_quotas_count_the_new_nodes_at_their_flavor(client: TestClient, env: Env, cluster: str) -> None:
    with env.db.session() as s:
        project = s.scalars(select(Cluster.project_id).where(Cluster.uuid == cluster)).one()
        s.add(Quota(project_id=project, resource="cores", hard_limit=2 + 4))  # 2 nodes of m1.small use 2
    # m1.medium has 2 vCPUs: two nodes (4) fit exactly, three do not.
    refused(client, env, "POST", "/v1/clusters/c1/nodegroups", 403, "Quota exceeded for Cores", "6 requested",
            json={"name": "big", "node_count": 3, "flavor_id": "m1.medium"})
    create(client, name="big", node_count=2, flavor_id="m1.medium")


def test_another_projects_cluster_is_not_found(client: TestClient, env: Env, cluster: str) -> None:
    other = {"X-Auth-Token": env.new_project("other"), **LATEST}
    url = f"/v1/clusters/{cluster}/nodegroups"
    for method, path, kw in (("GET", url, {}), ("GET", url + "/default-worker", {}),
                             ("POST", url, {"json": {"name": "stolen"}}),
                             ("PATCH", url + "/default-worker", {"json": [
                                 {"op": "replace", "path": "/max_node_count", "value": 3}]}),
                             ("DELETE", url + "/default-worker", {})):
        refused(client, env, method, path, 404, cluster, headers=other, **kw)
    refused(client, env, "POST", f"/v1/clusters/{cluster}/actions/resize", 404, headers=other,
            json={"node_count": 2, "nodegroup": "default-worker"})


def test_unknown_groups_are_404(client: TestClient, env: Env, cluster: str) -> None:
    refused(client, env, "GET", "/v1/clusters/c1/nodegroups/nope", 404, "Nodegroup nope could not be found")
    refused(client, env, "DELETE", "/v1/clusters/c1/nodegroups/nope", 404, "nope")
    refused(client, env, "GET", "/v1/clusters/no-such/nodegroups", 404, "Cluster no-such could not be found")


# ---------------------------------------------------------------------------
# Update (JSON patch)


def patch(client: TestClient, ng: str, *ops: dict, expect: int = 202, headers: dict | None = None) -> dict:
    resp = client.patch(f"/v1/clusters/c1/nodegroups/{ng}", json=list(ops), headers=headers or LATEST)
    assert resp.status_code == expect, resp.text
    return resp.json()


def test_bounds_change_at_once(client: TestClient, env: Env, cluster: str) -> None:
    create(client, name="gpu", node_count=2, min_node_count=1, max_node_count=4)
    settle(env, cluster)
    ops_before = len(env.operations(cluster))
    # python-magnumclient 5.0's `nodegroup update --min-nodes 2 --max-nodes 6`.
    body = patch(client, "gpu", {"op": "replace", "path": "/min_node_count", "value": 2},
                 {"op": "replace", "path": "/max_node_count", "value": 6})
    assert (body["min_node_count"], body["max_node_count"], body["status"]) == (2, 6, "CREATE_COMPLETE")
    assert len(env.operations(cluster)) == ops_before  # nothing for the engine to do
    # Older clients send values as text; remove means "no bound".
    body = patch(client, "gpu", {"op": "replace", "path": "/min_node_count", "value": "1"},
                 {"op": "remove", "path": "/max_node_count"})
    assert (body["min_node_count"], body["max_node_count"]) == (1, None)


def test_a_new_node_count_queues_a_resize(client: TestClient, env: Env, cluster: str) -> None:
    gpu = create(client, name="gpu", node_count=2, min_node_count=1, max_node_count=4)
    settle(env, cluster)
    body = patch(client, "gpu", {"op": "replace", "path": "/node_count", "value": 3})
    assert body["status"] == "UPDATE_IN_PROGRESS" and body["node_count"] == 2  # the engine moves it
    assert env.operations(cluster)[-1].params == {"nodegroup": gpu["uuid"], "node_count": 3, "nodes_to_remove": []}
    # One operation at a time, and nothing is changed by the refusal.
    refused(client, env, "PATCH", "/v1/clusters/c1/nodegroups/gpu", 409, "operation in progress",
            json=[{"op": "replace", "path": "/max_node_count", "value": 10}])
    settle(env, cluster)
    assert group(env, "gpu").node_count == 3


def test_node_labels_and_taints_as_python_magnumclient_sends_them(client: TestClient, env: Env,
                                                                  cluster: str) -> None:
    gpu = create(client, name="gpu")
    settle(env, cluster)
    # `nodegroup update c1 gpu --node-labels workload=gpu --node-taints workload=gpu:NoSchedule`
    body = patch(client, "gpu",
                 {"op": "replace", "path": "/node_labels", "value": str({"workload": "gpu"})},
                 {"op": "replace", "path": "/node_taints",
                  "value": str([{"key": "workload", "value": "gpu", "effect": "NoSchedule"}])})
    assert body["node_labels"] == {"workload": "gpu"}
    assert body["node_taints"] == [{"key": "workload", "value": "gpu", "effect": "NoSchedule"}]
    assert body["status"] == "UPDATE_IN_PROGRESS"  # the nodes get the new labels
    assert env.operations(cluster)[-1].params == {"nodegroup": gpu["uuid"], "node_count": 1, "nodes_to_remove": []}
    settle(env, cluster)
    # `--node-labels ''` clears them (str({}) and str([]))
    body = patch(client, "gpu", {"op": "replace", "path": "/node_labels", "value": "{}"},
                 {"op": "replace", "path": "/node_taints", "value": "[]"})
    assert body["node_labels"] == {} and body["node_taints"] == []
    settle(env, cluster)
    # The same labels again: nothing to do.
    ops_before = len(env.operations(cluster))
    body = patch(client, "gpu", {"op": "replace", "path": "/node_labels", "value": {}})
    assert body["status"] == "UPDATE_COMPLETE" and len(env.operations(cluster)) == ops_before


@pytest.mark.parametrize(("ops", "status", "fragments"), [
    ([], 400, ("empty",)),
    ([{"op": "replace", "path": "/name", "value": "x"}], 400, ("internal attribute",)),
    ([{"op": "replace", "path": "/labels", "value": {"a": "b"}}], 400, ("internal attribute",)),
    ([{"op": "replace", "path": "/flavor_id", "value": "m1.large"}], 400, ("internal attribute",)),
    ([{"op": "replace", "path": "/bogus", "value": 1}], 400, ("only node_count",)),
    ([{"op": "remove", "path": "/node_count"}], 400, ("mandatory",)),
    ([{"op": "replace", "path": "/max_node_count"}], 400, ("need a value",)),
    ([{"op": "replace", "path": "/max_node_count", "value": 1}], 400, ("above its max_node_count",)),
    ([{"op": "replace", "path": "/min_node_count", "value": 3}], 400, ("must be at most max_node_count",)),
    ([{"op": "replace", "path": "/max_node_count", "value": 9},
      {"op": "replace", "path": "/min_node_count", "value": 3}], 400, ("below its min_node_count",)),
    ([{"op": "replace", "path": "/min_node_count", "value": -1}], 400, ("whole number",)),
    ([{"op": "replace", "path": "/min_node_count", "value": "²"}], 400, ("whole number",)),
    ([{"op": "replace", "path": "/max_node_count", "value": True}], 400, ("whole number",)),
    ([{"op": "replace", "path": "/node_count", "value": 99}], 400, ("above its max_node_count",)),
    ([{"op": "replace", "path": "/node_taints", "value": "[{'key': 'k', 'effect': 'Never'}]"}], 400, ("effect",)),
    ([{"op": "replace", "path": "/node_labels", "value": "not a dict"}], 400, ("node_labels",)),
    ([{"op": "replace", "path": "/node_labels", "value": "{'floe.flavor': 'x'}"}], 400, ("reserved",)),
    ([{"op": "move", "path": "/node_count", "value": 1}], 400, ("op",)),
])
def test_bad_patches_are_refused_and_change_nothing(client: TestClient, env: Env, cluster: str, ops: list,
                                                    status: int, fragments: tuple[str, ...]) -> None:
    create(client, name="gpu", node_count=2, min_node_count=1, max_node_count=2)
    settle(env, cluster)
    refused(client, env, "PATCH", "/v1/clusters/c1/nodegroups/gpu", status, *fragments, json=ops)


def test_node_metadata_patches_need_1_14(client: TestClient, env: Env, cluster: str) -> None:
    refused(client, env, "PATCH", "/v1/clusters/c1/nodegroups/default-worker", 400, "node_labels",
            headers=v("1.13"), json=[{"op": "replace", "path": "/node_labels", "value": {"a": "b"}}])


def test_the_managers_cannot_be_resized(client: TestClient, env: Env, cluster: str) -> None:
    refused(client, env, "PATCH", "/v1/clusters/c1/nodegroups/default-master", 400, "master nodegroup",
            json=[{"op": "replace", "path": "/node_count", "value": 3}])


# ---------------------------------------------------------------------------
# Delete


def test_default_groups_cannot_be_deleted(client: TestClient, env: Env, cluster: str) -> None:
    for name in ("default-master", "default-worker"):
        refused(client, env, "DELETE", f"/v1/clusters/c1/nodegroups/{name}", 400,
                "Deleting a default nodegroup is not supported")


def test_delete_queues_the_removal(client: TestClient, env: Env, cluster: str) -> None:
    gpu = create(client, name="gpu", node_count=2)
    refused(client, env, "DELETE", "/v1/clusters/c1/nodegroups/gpu", 409, "CREATE_IN_PROGRESS")
    settle(env, cluster)
    env.engine_woken()
    assert client.delete(f"/v1/clusters/c1/nodegroups/{gpu['uuid']}", headers=LATEST).status_code == 204
    assert group(env, "gpu").status == "DELETE_IN_PROGRESS"
    assert env.operations(cluster)[-1].params == {"nodegroup": gpu["uuid"], "node_count": 0,
                                                  "delete_nodegroup": True}
    assert env.engine_woken()
    # A client repeating its delete is answered the same, and nothing more is queued.
    ops = len(env.operations(cluster))
    assert client.delete("/v1/clusters/c1/nodegroups/gpu", headers=LATEST).status_code == 204
    assert len(env.operations(cluster)) == ops
    settle(env, cluster)
    assert client.get("/v1/clusters/c1/nodegroups/gpu", headers=LATEST).status_code == 404


# ---------------------------------------------------------------------------
# The resize action naming a nodegroup


def resize(client: TestClient, body: dict, expect: int = 202) -> dict:
    resp = client.post("/v1/clusters/c1/actions/resize", json=body, headers=LATEST)
    assert resp.status_code == expect, resp.text
    return resp.json()


def test_resize_names_a_group_by_name_or_uuid(client: TestClient, env: Env, cluster: str) -> None:
    gpu = create(client, name="gpu", node_count=2, min_node_count=1, max_node_count=4)
    settle(env, cluster)
    assert resize(client, {"node_count": 3, "nodegroup": "gpu"}) == {"uuid": cluster}
    assert env.operations(cluster)[-1].params == {"nodegroup": gpu["uuid"], "node_count": 3, "nodes_to_remove": []}
    assert group(env, "gpu").status == "UPDATE_IN_PROGRESS"
    settle(env, cluster)
    resize(client, {"node_count": 1, "nodegroup": gpu["uuid"]})
    assert env.operations(cluster)[-1].params["node_count"] == 1
    settle(env, cluster)
    # The default worker group by its uuid takes the cluster's own way.
    worker = client.get("/v1/clusters/c1/nodegroups/default-worker", headers=LATEST).json()
    resize(client, {"node_count": 2, "nodegroup": worker["uuid"]})
    assert env.operations(cluster)[-1].params == {"node_count": 2, "nodes_to_remove": []}


def test_resize_keeps_the_groups_bounds(client: TestClient, env: Env, cluster: str) -> None:
    create(client, name="gpu", node_count=2, min_node_count=1, max_node_count=4)
    settle(env, cluster)
    url = "/v1/clusters/c1/actions/resize"
    refused(client, env, "POST", url, 400, "outside the allowed range", "max_node_count = 4",
            json={"node_count": 5, "nodegroup": "gpu"})
    refused(client, env, "POST", url, 400, "min_node_count = 1", json={"node_count": 0, "nodegroup": "gpu"})
    refused(client, env, "POST", url, 400, "master", json={"node_count": 3, "nodegroup": "default-master"})
    refused(client, env, "POST", url, 404, "nope", json={"node_count": 3, "nodegroup": "nope"})
    # default-worker's bounds hold for a plain resize too
    patch(client, "default-worker", {"op": "replace", "path": "/max_node_count", "value": 2})
    refused(client, env, "POST", url, 400, "default-worker outside the allowed range", json={"node_count": 3})
    refused(client, env, "POST", url, 400, "default-worker outside", json={"node_count": 3,
                                                                           "nodegroup": "default-worker"})


def test_resize_removes_only_the_groups_own_nodes(client: TestClient, env: Env, cluster: str) -> None:
    names = env.add_nodes(cluster, managers=1, workers=1)
    create(client, name="gpu", node_count=1)
    settle(env, cluster)
    worker = [n for n in names if "-w" in n][0]
    url = "/v1/clusters/c1/actions/resize"
    refused(client, env, "POST", url, 400, f"node {worker} is not a node of nodegroup gpu",
            json={"node_count": 0, "nodegroup": "gpu", "nodes_to_remove": [worker]})


# ---------------------------------------------------------------------------
# Paging


def test_paging_sorting_and_the_next_link(client: TestClient, env: Env, cluster: str) -> None:
    for name in ("delta", "alpha", "charlie", "bravo"):
        create(client, name=name)
        settle(env, cluster)
    body = client.get("/v1/clusters/c1/nodegroups", params={"limit": 2}, headers=LATEST).json()
    assert [g["name"] for g in body["nodegroups"]] == ["default-master", "default-worker"]
    nxt = urlsplit(body["next"])
    assert nxt.path == f"/v1/clusters/{cluster}/nodegroups"
    assert parse_qs(nxt.query) == {"sort_key": ["id"], "sort_dir": ["asc"], "limit": ["2"],
                                   "marker": [body["nodegroups"][1]["uuid"]]}
    names = []
    url = "/v1/clusters/c1/nodegroups?sort_key=name&sort_dir=desc&limit=2&role=worker"
    while url:
        page = client.get(url, headers=LATEST).json()
        names += [g["name"] for g in page["nodegroups"]]
        url = page.get("next", "").removeprefix("http://testserver")
        assert not url or "role=worker" in url
    assert names == ["delta", "default-worker", "charlie", "bravo", "alpha"]
    for params, fragment in (({"limit": 0}, "Limit"), ({"sort_dir": "up"}, "sort direction"),
                             ({"sort_key": "secret"}, "sort_key"), ({"marker": "nope"}, "marker")):
        refused(client, env, "GET", "/v1/clusters/c1/nodegroups", 400, fragment, params=params)


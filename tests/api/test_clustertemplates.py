"""/v1/clustertemplates: create, show, list, patch, delete and every refusal."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from .conftest import Env, assert_error

FIELDS = {
    "uuid", "name", "coe", "image_id", "flavor_id", "master_flavor_id", "dns_nameserver", "keypair_id",
    "external_network_id", "fixed_network", "fixed_subnet", "network_driver", "volume_driver", "apiserver_port",
    "docker_volume_size", "docker_storage_driver", "cluster_distro", "http_proxy", "https_proxy", "no_proxy",
    "insecure_registry", "labels", "tls_disabled", "public", "hidden", "registry_enabled", "master_lb_enabled",
    "floating_ip_enabled", "server_type", "tags", "driver", "project_id", "user_id", "links", "created_at",
    "updated_at",
}


def make(client: TestClient, **fields) -> dict:
    resp = client.post("/v1/clustertemplates", json={"coe": "swarm", **fields})
    assert resp.status_code == 201, resp.text
    return resp.json()


def make_cluster(client: TestClient, template: str, name: str) -> str:
    resp = client.post("/v1/clusters", json={"cluster_template_id": template, "name": name})
    assert resp.status_code == 202, resp.text
    return resp.json()["uuid"]


def test_create_returns_the_full_object(client: TestClient, env: Env) -> None:
    resp = client.post(
        "/v1/clustertemplates",
        json={"name": "web", "coe": "swarm-mode", "labels": {"a": "1", "n": 2}, "flavor_id": "m1.small",
              "docker_volume_size": 5, "tags": "x,y", "dns_nameserver": "1.1.1.1,8.8.8.8"},
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert set(body) == FIELDS
    assert body["coe"] == "swarm-mode"  # stored as given
    assert body["image_id"] == "floe-node"
    assert body["labels"] == {"a": "1", "n": 2}
    assert body["tls_disabled"] is False and body["public"] is False and body["hidden"] is False
    assert body["server_type"] == "vm" and body["driver"] == "floe"
    assert body["user_id"] == env.admin_user_id
    assert body["created_at"].endswith("+00:00") and body["updated_at"] is None
    assert body["links"] == [
        {"href": f"http://testserver/v1/clustertemplates/{body['uuid']}", "rel": "self"},
        {"href": f"http://testserver/clustertemplates/{body['uuid']}", "rel": "bookmark"},
    ]
    assert resp.headers["location"] == body["links"][0]["href"]
    assert client.get(f"/v1/clustertemplates/{body['uuid']}").json() == body
    assert client.get("/v1/clustertemplates/web").json() == body


def test_nulls_from_clients_mean_defaults(client: TestClient) -> None:
    body = make(client, name="nulls", image_id=None, server_type=None, labels=None, tls_disabled=None,
                keypair_id=None, public=None)
    assert body["image_id"] == "floe-node" and body["server_type"] == "vm" and body["labels"] == {}


def test_a_name_is_generated_when_absent(client: TestClient) -> None:
    name = make(client)["name"]
    assert name.endswith("-template")
    assert client.get(f"/v1/clustertemplates/{name}").status_code == 200


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ({"coe": "kubernetes"}, ("coe", "kubernetes", "swarm, swarm-mode")),
        ({"coe": "mesos"}, ("swarm, swarm-mode",)),
        ({}, ("coe", "missing")),
        ({"coe": "swarm", "tls_disabled": True}, ("tls_disabled", "TLS")),
        ({"coe": "swarm", "flavour": "big"}, ("flavour",)),
        ({"coe": "swarm", "name": "Web_Server"}, ("name", "DNS")),
        ({"coe": "swarm", "name": "-web"}, ("name",)),
        ({"coe": "swarm", "name": "a" * 64}, ("name",)),
        ({"coe": "swarm", "docker_volume_size": 0}, ("docker_volume_size",)),
        ({"coe": "swarm", "apiserver_port": 80}, ("apiserver_port",)),
        ({"coe": "swarm", "server_type": "container"}, ("server_type",)),
        ({"coe": "swarm", "network_driver": "flannel"}, ("network_driver", "docker")),
        ({"coe": "swarm", "dns_nameserver": "not-an-ip"}, ("dns_nameserver",)),
        ({"coe": "swarm", "labels": ["a"]}, ("labels",)),
        ({"coe": "swarm", "driver": "heat"}, ("driver",)),
    ],
)
def test_create_refusals(client: TestClient, env: Env, body: dict, fragments: tuple[str, ...]) -> None:
    before = env.snapshot()
    assert_error(client.post("/v1/clustertemplates", json=body), 400, *fragments)
    assert env.snapshot() == before


def test_duplicate_name_is_409(client: TestClient, env: Env) -> None:
    make(client, name="dup")
    before = env.snapshot()
    assert_error(client.post("/v1/clustertemplates", json={"coe": "swarm", "name": "dup"}), 409, "dup")
    assert env.snapshot() == before


def test_only_admins_publish(client: TestClient, env: Env) -> None:
    member = env.new_project("team")
    before = env.snapshot()
    for flag in ("public", "hidden"):
        resp = client.post("/v1/clustertemplates", json={"coe": "swarm", flag: True}, headers=env.headers(member))
        assert_error(resp, 403, "public or hidden")
    assert env.snapshot() == before
    make(client, name="shared", public=True)


def test_visibility_between_projects(client: TestClient, env: Env) -> None:
    private = make(client, name="private")
    public = make(client, name="shared", public=True)
    other = env.headers(env.new_project("team"))
    assert_error(client.get(f"/v1/clustertemplates/{private['uuid']}", headers=other), 404)
    assert_error(client.get("/v1/clustertemplates/private", headers=other), 404)
    assert client.get("/v1/clustertemplates/shared", headers=other).json()["uuid"] == public["uuid"]
    listed = [ct["name"] for ct in client.get("/v1/clustertemplates", headers=other).json()["clustertemplates"]]
    assert listed == ["shared"]
    # Visible is not writable: another project cannot change or delete a public template.
    before = env.snapshot()
    patch = [{"op": "replace", "path": "/tags", "value": "mine"}]
    assert_error(client.patch("/v1/clustertemplates/shared", json=patch, headers=other), 403)
    assert_error(client.delete("/v1/clustertemplates/shared", headers=other), 403)
    assert env.snapshot() == before
    # A cluster in the other project may use the public template.
    assert make_cluster(TestClient(env.app, headers=other), "shared", "guest")


def test_ambiguous_name_is_409(client: TestClient, env: Env) -> None:
    make(client, name="base", public=True)
    team = env.headers(env.new_project("team"))
    mine = client.post("/v1/clustertemplates", json={"coe": "swarm", "name": "base"}, headers=team)
    assert mine.status_code == 201
    assert_error(client.get("/v1/clustertemplates/base", headers=team), 409, "base", "uuid")
    assert client.get(f"/v1/clustertemplates/{mine.json()['uuid']}", headers=team).status_code == 200
    assert client.get("/v1/clustertemplates/base").status_code == 200  # admin sees only its own


def test_hidden_templates_are_listed_only_for_admins(client: TestClient, env: Env) -> None:
    make(client, name="secret", public=True, hidden=True)
    team = env.headers(env.new_project("team"))
    assert client.get("/v1/clustertemplates", headers=team).json() == {"clustertemplates": []}
    assert client.get("/v1/clustertemplates/secret", headers=team).status_code == 200
    assert [c["name"] for c in client.get("/v1/clustertemplates").json()["clustertemplates"]] == ["secret"]


def test_list_and_detail(client: TestClient) -> None:
    a, b = make(client, name="a"), make(client, name="b")
    for path in ("/v1/clustertemplates", "/v1/clustertemplates/detail"):
        body = client.get(path).json()
        assert list(body) == ["clustertemplates"]
        assert [ct["uuid"] for ct in body["clustertemplates"]] == [a["uuid"], b["uuid"]]
        assert set(body["clustertemplates"][0]) == FIELDS


def test_show_unknown_is_404(client: TestClient) -> None:
    assert_error(client.get("/v1/clustertemplates/nope"), 404, "nope")
    assert_error(client.get("/v1/clustertemplates/7ae81bb3-dec3-4289-8d6c-da80bd8001ae"), 404)


def test_patch_add_replace_remove(client: TestClient) -> None:
    make(client, name="p", labels={"keep": "1", "drop": "2"}, flavor_id="m1.small")
    patch = [
        {"op": "replace", "path": "/flavor_id", "value": "m1.large"},
        {"op": "add", "path": "/labels/new", "value": "3"},
        {"op": "remove", "path": "/labels/drop"},
        {"op": "add", "path": "/docker_volume_size", "value": 10},
        {"op": "replace", "path": "/name", "value": "q"},
        {"op": "replace", "path": "/tags", "value": "t1"},
        {"op": "remove", "path": "/master_flavor_id"},
        {"op": "replace", "path": "/registry_enabled", "value": "true"},
    ]
    resp = client.patch("/v1/clustertemplates/p", json=patch)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["flavor_id"] == "m1.large" and body["docker_volume_size"] == 10
    assert body["labels"] == {"keep": "1", "new": "3"}
    assert body["name"] == "q" and body["tags"] == "t1" and body["registry_enabled"] is True
    assert body["updated_at"] is not None
    assert client.get("/v1/clustertemplates/q").json() == body
    assert_error(client.get("/v1/clustertemplates/p"), 404)
    # Labels as python-magnumclient's old "replace labels=" sends them: a string.
    body = client.patch("/v1/clustertemplates/q", json=[{"op": "replace", "path": "/labels",
                                                          "value": "{'x': 'y'}"}]).json()
    assert body["labels"] == {"x": "y"}


@pytest.mark.parametrize(
    ("patch", "fragments"),
    [
        ([{"op": "replace", "path": "/uuid", "value": "x"}], ("/uuid", "internal")),
        ([{"op": "replace", "path": "/project_id", "value": "x"}], ("/project_id",)),
        ([{"op": "replace", "path": "/created_at", "value": "x"}], ("/created_at",)),
        ([{"op": "replace", "path": "/colour", "value": "red"}], ("/colour",)),
        ([{"op": "replace", "path": "/coe", "value": "kubernetes"}], ("coe", "swarm")),
        ([{"op": "replace", "path": "/tls_disabled", "value": True}], ("tls_disabled",)),
        ([{"op": "remove", "path": "/coe"}], ("/coe", "mandatory")),
        ([{"op": "remove", "path": "/name"}], ("name",)),
        ([{"op": "replace", "path": "/name", "value": "Bad Name"}], ("name",)),
        ([{"op": "remove", "path": "/labels/missing"}], ("patch",)),
        ([{"op": "move", "path": "/name", "from": "/tags"}], ("op",)),
        ([{"op": "replace", "path": "/docker_volume_size", "value": "ten"}], ("docker_volume_size",)),
        ([{"op": "replace", "path": "/labels", "value": "not a dict"}], ("labels",)),
        ([{"op": "replace", "path": "name", "value": "x"}], ("path",)),
        ([], ("empty",)),
        ({"op": "replace"}, ()),
    ],
)
def test_patch_refusals(client: TestClient, env: Env, patch, fragments: tuple[str, ...]) -> None:
    make(client, name="p", labels={"a": "1"})
    before = env.snapshot()
    assert_error(client.patch("/v1/clustertemplates/p", json=patch), 400, *fragments)
    assert env.snapshot() == before


def test_patch_rename_to_a_taken_name_is_409(client: TestClient, env: Env) -> None:
    make(client, name="one")
    make(client, name="two")
    before = env.snapshot()
    assert_error(client.patch("/v1/clustertemplates/one", json=[{"op": "replace", "path": "/name",
                                                                 "value": "two"}]), 409)
    assert env.snapshot() == before


def test_in_use_template_accepts_only_publishing_changes(client: TestClient, env: Env) -> None:
    ct = make(client, name="used")
    make_cluster(client, "used", "c1")
    before = env.snapshot()
    resp = client.patch("/v1/clustertemplates/used", json=[{"op": "replace", "path": "/flavor_id", "value": "x"}])
    assert_error(resp, 400, f"ClusterTemplate {ct['uuid']} is referenced by one or multiple clusters")
    resp = client.patch("/v1/clustertemplates/used", json=[{"op": "add", "path": "/labels/k", "value": "v"}])
    assert_error(resp, 400, "referenced")
    assert env.snapshot() == before
    ok = [
        {"op": "replace", "path": "/name", "value": "renamed"},
        {"op": "replace", "path": "/public", "value": True},
        {"op": "replace", "path": "/hidden", "value": True},
        {"op": "replace", "path": "/tags", "value": "old"},
    ]
    body = client.patch("/v1/clustertemplates/used", json=ok).json()
    assert (body["name"], body["public"], body["hidden"], body["tags"]) == ("renamed", True, True, "old")
    # The cluster still points at it by uuid.
    assert client.get("/v1/clusters/c1").json()["cluster_template_id"] == ct["uuid"]


def test_delete(client: TestClient, env: Env) -> None:
    ct = make(client, name="gone")
    resp = client.delete(f"/v1/clustertemplates/{ct['uuid']}")
    assert resp.status_code == 204 and resp.content == b""
    assert_error(client.get("/v1/clustertemplates/gone"), 404)
    assert_error(client.delete("/v1/clustertemplates/gone"), 404)


def test_delete_referenced_is_400(client: TestClient, env: Env) -> None:
    ct = make(client, name="used")
    make_cluster(client, "used", "c1")
    before = env.snapshot()
    assert_error(client.delete("/v1/clustertemplates/used"), 400,
                 f"ClusterTemplate {ct['uuid']} is referenced by one or multiple clusters.")
    assert env.snapshot() == before

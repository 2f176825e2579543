"""Project isolation: another project's token can neither see nor touch a cluster."""

from __future__ import annotations

from fastapi.testclient import TestClient

from floe import pki

from .conftest import Env, assert_error


def test_a_second_project_cannot_see_or_touch_the_first(client: TestClient, env: Env) -> None:
    assert client.post("/v1/clustertemplates", json={"coe": "swarm", "name": "tpl"}).status_code == 201
    uuid = client.post("/v1/clusters", json={"cluster_template_id": "tpl", "name": "mine"}).json()["uuid"]
    env.add_nodes(uuid, managers=1, workers=1)
    env.give_ca(uuid)
    env.finish_create(uuid)
    other = TestClient(env.app, headers=env.headers(env.new_project("team")))
    before = env.snapshot()
    _, csr = pki.new_client_key_and_csr()

    assert other.get("/v1/clusters").json() == {"clusters": []}
    assert other.get("/v1/clusters/detail").json() == {"clusters": []}
    assert other.get("/v1/clustertemplates").json() == {"clustertemplates": []}
    for ident in (uuid, "mine"):
        assert_error(other.get(f"/v1/clusters/{ident}"), 404)
        assert_error(other.patch(f"/v1/clusters/{ident}", json=[{"op": "replace", "path": "/node_count",
                                                                "value": 3}]), 404)
        assert_error(other.post(f"/v1/clusters/{ident}/actions/resize", json={"node_count": 3}), 404)
        assert_error(other.delete(f"/v1/clusters/{ident}"), 404)
        assert_error(other.get(f"/v1/certificates/{ident}"), 404)
        assert_error(other.post("/v1/certificates", json={"cluster_uuid": ident, "csr": csr}), 404)
        assert_error(other.get(f"/v1/floe/clusters/{ident}/nodes"), 404)
    assert_error(other.post("/v1/clusters", json={"cluster_template_id": "tpl"}), 400, "tpl")
    assert_error(other.delete("/v1/clustertemplates/tpl"), 404)
    assert env.snapshot() == before

    # The same name is free in the other project.
    assert other.post("/v1/clustertemplates", json={"coe": "swarm", "name": "tpl"}).status_code == 201
    assert other.post("/v1/clusters", json={"cluster_template_id": "tpl", "name": "mine"}).status_code == 202
    assert [c["uuid"] for c in client.get("/v1/clusters").json()["clusters"]] == [uuid]

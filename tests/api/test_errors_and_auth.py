"""Magnum's error shape for every kind of failure, authentication, and path handling."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from .conftest import Env, assert_error


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/clusters"),
        ("GET", "/v1/clusters/detail"),
        ("POST", "/v1/clusters"),
        ("GET", "/v1/clustertemplates"),
        ("POST", "/v1/clustertemplates"),
        ("GET", "/v1/certificates/x"),
        ("POST", "/v1/certificates"),
        ("GET", "/v1/floe/clusters/x/nodes"),
        ("DELETE", "/v1/clusters/x"),
    ],
)
@pytest.mark.parametrize("token", [None, "", "floe_wrong", "x" * 300])
def test_every_resource_needs_a_valid_token(env: Env, method: str, path: str, token: str | None) -> None:
    before = env.snapshot()
    headers = {} if token is None else {"X-Auth-Token": token}
    with TestClient(env.app) as anon:
        resp = anon.request(method, path, headers=headers, json={"coe": "swarm"} if method == "POST" else None)
    err = assert_error(resp, 401)
    assert err["title"] == err["detail"]  # Magnum puts the message in the title
    assert env.snapshot() == before


def test_unknown_route_is_404(client: TestClient) -> None:
    err = assert_error(client.get("/v1/no-such-thing"), 404, "/v1/no-such-thing")
    assert err["title"] == err["detail"]
    assert_error(client.get("/nowhere"), 404)


def test_wrong_method_is_405(client: TestClient, env: Env) -> None:
    before = env.snapshot()
    resp = client.put("/v1/clusters")
    err = assert_error(resp, 405, "PUT")
    assert err["title"] == err["detail"]
    assert "GET" in resp.headers["allow"]
    assert_error(client.delete("/v1/clustertemplates"), 405)
    assert env.snapshot() == before


def test_unexpected_errors_are_500_without_traceback(env: Env) -> None:
    def explode() -> None:
        raise RuntimeError("secret internals: /etc/floe password=hunter2")

    env.app.add_api_route("/v1/explode", explode)
    with TestClient(env.app, raise_server_exceptions=False, headers=env.headers()) as c:
        resp = c.get("/v1/explode")
    err = assert_error(resp, 500)
    assert err["title"] == "Internal Server Error"
    assert "hunter2" not in resp.text and "Traceback" not in resp.text and "RuntimeError" not in resp.text
    assert err["request_id"] in err["detail"]
    assert resp.headers["OpenStack-API-Maximum-Version"] == "container-infra 1.14"


def test_validation_errors_name_the_field(client: TestClient, env: Env) -> None:
    before = env.snapshot()
    assert_error(client.post("/v1/clustertemplates", json={"coe": "swarm", "docker_volume_size": "big"}),
                 400, "docker_volume_size")
    assert_error(client.post("/v1/clustertemplates", json={"name": "x"}), 400, "coe", "missing")
    assert_error(client.post("/v1/clustertemplates", json={"coe": "swarm", "colour": "red"}), 400, "colour")
    assert_error(client.get("/v1/clusters", params={"limit": "ten"}), 400, "limit")
    assert_error(client.post("/v1/clustertemplates", json=["coe", "swarm"]), 400, "request body")
    assert env.snapshot() == before


def test_invalid_json_is_400(client: TestClient, env: Env) -> None:
    before = env.snapshot()
    resp = client.post("/v1/clusters", content=b'{"name": ', headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "not valid JSON")
    assert_error(client.post("/v1/clusters"), 400, "body")
    assert env.snapshot() == before


@pytest.mark.parametrize("path", ["/v1/clusters/", "/v1/clustertemplates/", "/v1/clusters/detail/", "/v1/", "/v1//"])
def test_trailing_slashes_are_tolerated_without_redirect(client: TestClient, path: str) -> None:
    resp = client.get(path, follow_redirects=False)
    assert resp.status_code == 200, resp.text


def test_trailing_slash_on_create_and_show(client: TestClient) -> None:
    resp = client.post("/v1/clustertemplates/", json={"coe": "swarm", "name": "slashy"}, follow_redirects=False)
    assert resp.status_code == 201, resp.text
    uuid = resp.json()["uuid"]
    assert client.get(f"/v1/clustertemplates/{uuid}/", follow_redirects=False).json()["name"] == "slashy"
    assert client.delete("/v1/clustertemplates/slashy/", follow_redirects=False).status_code == 204


def test_bookmark_links_resolve(client: TestClient) -> None:
    body = client.post("/v1/clustertemplates", json={"coe": "swarm", "name": "bm"}).json()
    bookmark = next(link["href"] for link in body["links"] if link["rel"] == "bookmark")
    assert bookmark == f"http://testserver/clustertemplates/{body['uuid']}"
    resp = client.get(bookmark.removeprefix("http://testserver"))
    assert resp.status_code == 200 and resp.json()["uuid"] == body["uuid"]


def test_every_response_has_a_request_id(client: TestClient) -> None:
    ids = {client.get("/v1/clusters").headers["x-openstack-request-id"] for _ in range(3)}
    assert len(ids) == 3 and all(i.startswith("req-") for i in ids)

"""Discovery documents and OpenStack-API-Version negotiation."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from .conftest import Env, assert_error

MIN = "container-infra 1.1"
MAX = "container-infra 1.14"


def test_root_document_needs_no_token(env: Env) -> None:
    with TestClient(env.app) as anon:
        resp = anon.get("/")
    assert resp.status_code == 200
    body = resp.json()
    assert body["name"] == "OpenStack Magnum API"
    (v1,) = body["versions"]
    assert v1 == {
        "id": "v1",
        "links": [{"href": "http://testserver/v1/", "rel": "self"}],
        "status": "CURRENT",
        "max_version": "1.14",
        "min_version": "1.1",
    }


@pytest.mark.parametrize("path", ["/v1", "/v1/"])
def test_v1_document_needs_no_token(env: Env, path: str) -> None:
    with TestClient(env.app) as anon:
        resp = anon.get(path)
    assert resp.status_code == 200
    body = resp.json()
    assert body["id"] == "v1"
    assert body["media_types"] == [
        {"base": "application/json", "type": "application/vnd.openstack.magnum.v1+json"}
    ]
    assert body["clusters"][0] == {"href": "http://testserver/v1/clusters/", "rel": "self"}
    assert body["clustertemplates"][1] == {"href": "http://testserver/clustertemplates/", "rel": "bookmark"}
    assert "certificates" in body
    assert resp.headers["OpenStack-API-Minimum-Version"] == MIN
    assert resp.headers["OpenStack-API-Maximum-Version"] == MAX
    assert resp.headers["OpenStack-API-Version"] == MIN


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, MIN),
        ("container-infra 1.1", MIN),
        ("container-infra 1.7", "container-infra 1.7"),
        ("container-infra 1.11", "container-infra 1.11"),
        ("container-infra 1.14", MAX),
        ("container-infra latest", MAX),
        ("container-infra LATEST", MAX),
        ("compute 2.1, container-infra 1.5", "container-infra 1.5"),
        ("compute 2.1", MIN),  # another service's entry: ours defaults
    ],
)
def test_accepted_versions(client: TestClient, header: str | None, expected: str) -> None:
    headers = {"OpenStack-API-Version": header} if header else {}
    resp = client.get("/v1/clusters", headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["OpenStack-API-Version"] == expected
    assert resp.headers["OpenStack-API-Minimum-Version"] == MIN
    assert resp.headers["OpenStack-API-Maximum-Version"] == MAX


@pytest.mark.parametrize("version", ["1.0", "1.15", "2.0", "0.9", "1.99"])
def test_unsupported_versions_are_406(client: TestClient, env: Env, version: str) -> None:
    before = env.snapshot()
    resp = client.post(
        "/v1/clustertemplates",
        json={"coe": "swarm"},
        headers={"OpenStack-API-Version": f"container-infra {version}"},
    )
    err = assert_error(resp, 406, version, "1.1", "1.14")
    assert err["max_version"] == "1.14" and err["min_version"] == "1.1"
    assert resp.headers["OpenStack-API-Minimum-Version"] == MIN
    assert resp.headers["OpenStack-API-Maximum-Version"] == MAX
    assert env.snapshot() == before


@pytest.mark.parametrize(
    "header", ["container-infra", "container-infra 1", "container-infra 1.x", "container-infra 1.2.3", "1.5", "a b c"]
)
def test_malformed_versions_are_400(client: TestClient, header: str) -> None:
    resp = client.get("/v1/clusters", headers={"OpenStack-API-Version": header})
    assert_error(resp, 400, "OpenStack-API-Version")
    assert resp.headers["OpenStack-API-Maximum-Version"] == MAX


def test_version_headers_also_on_errors(env: Env) -> None:
    with TestClient(env.app) as anon:
        resp = anon.get("/v1/clusters", headers={"OpenStack-API-Version": "container-infra 1.4"})
    assert_error(resp, 401)
    assert resp.headers["OpenStack-API-Version"] == "container-infra 1.4"
    assert resp.headers["OpenStack-API-Maximum-Version"] == MAX

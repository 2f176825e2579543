"""The same rules over a real socket (uvicorn), where redirects and headers are what clients see."""

from __future__ import annotations

import httpx
import pytest

from .conftest import Live, assert_error


@pytest.fixture
def http(live: Live) -> httpx.Client:
    with httpx.Client(base_url=live.url, headers={"X-Auth-Token": live.env.admin_token},
                      follow_redirects=False, timeout=10) as c:
        yield c


def test_discovery_and_links_use_the_real_host(http: httpx.Client, live: Live) -> None:
    root = httpx.get(live.url + "/").json()
    assert root["versions"][0]["links"][0]["href"] == f"{live.url}/v1/"
    assert httpx.get(live.url + "/v1/").json()["clusters"][0]["href"] == f"{live.url}/v1/clusters/"


@pytest.mark.parametrize("path", ["/v1/clusters", "/v1/clusters/", "/v1/clustertemplates/detail/", "/clusters/"])
def test_no_redirects(http: httpx.Client, path: str) -> None:
    resp = http.get(path)
    assert resp.status_code == 200, resp.text
    assert resp.headers["openstack-api-version"] == "container-infra 1.1"


def test_create_show_delete_over_http(http: httpx.Client, live: Live) -> None:
    resp = http.post("/v1/clustertemplates/", json={"coe": "swarm", "name": "live-tpl"})
    assert resp.status_code == 201
    assert resp.headers["location"] == f"{live.url}/v1/clustertemplates/{resp.json()['uuid']}"
    resp = http.post("/v1/clusters", json={"cluster_template_id": "live-tpl", "name": "live"},
                     headers={"OpenStack-API-Version": "container-infra latest"})
    assert resp.status_code == 202 and resp.headers["openstack-api-version"] == "container-infra 1.14"
    uuid = resp.json()["uuid"]
    shown = http.get(f"/v1/clusters/{uuid}/").json()
    assert shown["links"][0]["href"] == f"{live.url}/v1/clusters/{uuid}"
    assert http.delete("/v1/clusters/live/").status_code == 204


def test_errors_over_http(http: httpx.Client, live: Live) -> None:
    assert_error(httpx.get(live.url + "/v1/clusters"), 401)
    assert_error(http.get("/v1/clusters", headers={"OpenStack-API-Version": "container-infra 3.0"}), 406)
    assert_error(http.get("/v1/clusters", headers={"OpenStack-API-Version": "garbage"}), 400)
    assert_error(http.post("/v1/clusters", content=b"{", headers={"Content-Type": "application/json"}), 400)
    assert_error(http.patch("/v1/clusters"), 405)
    assert_error(http.get("/v1/clusters/x/y/z"), 404)

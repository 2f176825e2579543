"""FloeClient details that need no server: error parsing, paging, connection failures."""

from __future__ import annotations

import json

import httpx
import pytest

from floe.cli.clusterconfig import docker_host
from floe.cli.errors import CLIError
from floe.client import FloeAPIError, FloeClient, FloeConnectionError
from tests.cli.conftest import free_port


def _client(handler) -> FloeClient:
    return FloeClient("http://floe.test", "s3cret", transport=httpx.MockTransport(handler))


def test_headers_and_magnum_error_shape():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = {"errors": [{"status": 404, "code": "client", "title": "Not Found",
                            "detail": "Cluster c9 could not be found."}]}
        return httpx.Response(404, json=body)

    with _client(handler) as client, pytest.raises(FloeAPIError) as info:
        client.get_cluster("c9")
    error = info.value
    assert (error.status, error.title, error.detail) == (404, "Not Found", "Cluster c9 could not be found.")
    assert str(info.value) == "Cluster c9 could not be found. (404 Not Found)"
    assert seen[0].headers["X-Auth-Token"] == "s3cret"
    assert seen[0].headers["OpenStack-API-Version"] == "container-infra latest"
    assert "s3cret" not in repr(client)


@pytest.mark.parametrize(
    ("response", "detail"),
    [
        (httpx.Response(400, json={"detail": "bad thing"}), "bad thing"),
        (httpx.Response(422, json={"detail": [{"loc": ["body", "node_count"], "msg": "too small"}]}),
         "node_count: too small"),
        (httpx.Response(502, text="<html>\n Bad   Gateway </html>"), "<html> Bad Gateway </html>"),
    ],
)
def test_error_fallbacks(response: httpx.Response, detail: str):
    with _client(lambda request: response) as client, pytest.raises(FloeAPIError) as info:
        client.list_clusters()
    assert info.value.status == response.status_code
    assert info.value.detail == detail


def test_list_follows_next_links():
    def handler(request: httpx.Request) -> httpx.Response:
        marker = request.url.params.get("marker")
        if marker is None:
            # The server names itself however it likes; only the paging parameters are reused.
            return httpx.Response(200, json={"clusters": [{"uuid": "a"}, {"uuid": "b"}],
                                             "next": "http://elsewhere:1/v1/clusters?limit=2&marker=b"})
        assert marker == "b" and request.url.host == "floe.test"
        return httpx.Response(200, json={"clusters": [{"uuid": "c"}]})

    with _client(handler) as client:
        assert [c["uuid"] for c in client.list_clusters()] == ["a", "b", "c"]


def test_resize_and_patch_bodies():
    bodies: list[tuple[str, str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append((request.method, request.url.raw_path.decode(), json.loads(request.content)))
        return httpx.Response(202, json={"uuid": "u1"})

    with _client(handler) as client:
        assert client.resize("c 1", 3, ["w-2"]) == "u1"
        assert client.update_node_count("c1", 4) == "u1"
    assert bodies == [
        ("POST", "/v1/clusters/c%201/actions/resize", {"node_count": 3, "nodes_to_remove": ["w-2"]}),
        ("PATCH", "/v1/clusters/c1", [{"op": "replace", "path": "/node_count", "value": 4}]),
    ]


def test_connection_refused():
    url = f"http://127.0.0.1:{free_port()}"
    with FloeClient(url, "s3cret") as client, pytest.raises(FloeConnectionError) as info:
        client.list_templates()
    assert str(info.value).startswith(f"cannot reach the floe server at {url}: is `floe server` running?")
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    ("api_address", "host"),
    [
        ("tcp://10.160.1.2:2376", "tcp://10.160.1.2:2376"),
        ("10.160.1.2", "tcp://10.160.1.2:2376"),
        ("https://10.160.1.2:3376", "tcp://10.160.1.2:3376"),
        ("tcp://[fd00::2]:2376", "tcp://[fd00::2]:2376"),
    ],
)
def test_docker_host(api_address: str, host: str):
    assert docker_host(api_address) == host


def test_docker_host_garbage():
    with pytest.raises(CLIError):
        docker_host("tcp://:2376")

"""Magnum's paging on lists: limit, marker, sort_key, sort_dir and the `next` link."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from .conftest import Env, assert_error


@pytest.fixture
def clusters(client: TestClient) -> list[str]:
    assert client.post("/v1/clustertemplates", json={"coe": "swarm", "name": "tpl"}).status_code == 201
    uuids = []
    for name, nodes in (("delta", 3), ("alpha", 1), ("charlie", 2), ("bravo", 2), ("echo", 0)):
        resp = client.post("/v1/clusters", json={"cluster_template_id": "tpl", "name": name, "node_count": nodes})
        uuids.append(resp.json()["uuid"])
    return uuids


def walk(client: TestClient, url: str) -> tuple[list[str], list[str]]:
    """Follow `next` links from `url`; returns (names, next links)."""
    names, links = [], []
    while url:
        body = client.get(url).json()
        names += [c["name"] for c in body["clusters"]]
        url = body.get("next", "").removeprefix("http://testserver")
        if url:
            links.append(url)
    return names, links


def test_limit_and_next_link(client: TestClient, clusters: list[str]) -> None:
    body = client.get("/v1/clusters", params={"limit": 2}).json()
    assert [c["uuid"] for c in body["clusters"]] == clusters[:2]
    assert body["next"] == (
        f"http://testserver/v1/clusters?sort_key=id&sort_dir=asc&limit=2&marker={clusters[1]}"
    )
    names, links = walk(client, "/v1/clusters?limit=2")
    assert names == ["delta", "alpha", "charlie", "bravo", "echo"]
    assert len(links) == 2
    # As in Magnum, a full page always offers a next one, even if that one is empty.
    names, links = walk(client, "/v1/clusters?limit=5")
    assert len(names) == 5 and len(links) == 1


def test_detail_next_link_stays_on_detail(client: TestClient, clusters: list[str]) -> None:
    body = client.get("/v1/clusters/detail", params={"limit": 4}).json()
    assert body["next"].startswith("http://testserver/v1/clusters/detail?")
    assert "labels_added" in body["clusters"][0]


def test_no_next_when_the_page_is_not_full(client: TestClient, clusters: list[str]) -> None:
    assert "next" not in client.get("/v1/clusters").json()
    assert "next" not in client.get("/v1/clusters", params={"limit": 10}).json()


@pytest.mark.parametrize(
    ("sort_key", "sort_dir", "expected"),
    [
        ("name", "asc", ["alpha", "bravo", "charlie", "delta", "echo"]),
        ("name", "desc", ["echo", "delta", "charlie", "bravo", "alpha"]),
        ("node_count", "asc", ["echo", "alpha", "charlie", "bravo", "delta"]),
        ("node_count", "desc", ["delta", "bravo", "charlie", "alpha", "echo"]),
        ("id", "desc", ["echo", "bravo", "charlie", "alpha", "delta"]),
    ],
)
def test_sorting_with_markers(client: TestClient, clusters: list[str], sort_key: str, sort_dir: str,
                              expected: list[str]) -> None:
    names, links = walk(client, f"/v1/clusters?limit=2&sort_key={sort_key}&sort_dir={sort_dir}")
    assert names == expected
    query = parse_qs(urlsplit(links[0]).query)
    assert query["sort_key"] == [sort_key] and query["sort_dir"] == [sort_dir]


def test_sorting_on_nullable_columns_pages_through_everything(client: TestClient, env: Env,
                                                              clusters: list[str]) -> None:
    env.finish_create("alpha", api_address="tcp://10.0.0.2:2376")
    env.finish_create("echo", api_address="tcp://10.0.0.1:2376")
    for sort_dir in ("asc", "desc"):
        names, _ = walk(client, f"/v1/clusters?limit=1&sort_key=api_address&sort_dir={sort_dir}")
        assert sorted(names) == sorted(["delta", "alpha", "charlie", "bravo", "echo"])
        assert len(names) == 5
    names, _ = walk(client, "/v1/clusters?limit=2&sort_key=api_address&sort_dir=asc")
    assert names[-2:] == ["echo", "alpha"]


@pytest.mark.parametrize(
    ("params", "fragments"),
    [
        ({"marker": "7ae81bb3-dec3-4289-8d6c-da80bd8001ae"}, ("marker",)),
        ({"marker": "not-a-uuid"}, ("marker",)),
        ({"sort_key": "ca_key_pem"}, ("sort_key", "ca_key_pem")),
        ({"sort_key": "nonsense"}, ("sort_key",)),
        ({"sort_dir": "up"}, ("sort direction", "up")),
        ({"limit": 0}, ("Limit must be positive",)),
        ({"limit": -3}, ("Limit",)),
    ],
)
def test_bad_paging_parameters(client: TestClient, clusters: list[str], params: dict,
                               fragments: tuple[str, ...]) -> None:
    assert_error(client.get("/v1/clusters", params=params), 400, *fragments)
    assert_error(client.get("/v1/clustertemplates", params=params), 400, *fragments[:1])


def test_another_projects_cluster_is_no_marker(client: TestClient, env: Env, clusters: list[str]) -> None:
    team = env.headers(env.new_project("team"))
    assert_error(client.get("/v1/clusters", params={"marker": clusters[0]}, headers=team), 400, "marker")


def test_template_paging(client: TestClient) -> None:
    uuids = [client.post("/v1/clustertemplates", json={"coe": "swarm", "name": f"t{i}"}).json()["uuid"]
             for i in range(3)]
    body = client.get("/v1/clustertemplates", params={"limit": 2, "sort_key": "name", "sort_dir": "desc"}).json()
    assert [t["name"] for t in body["clustertemplates"]] == ["t2", "t1"]
    assert body["next"] == (
        f"http://testserver/v1/clustertemplates?sort_key=name&sort_dir=desc&limit=2&marker={uuids[1]}"
    )
    rest = client.get(body["next"].removeprefix("http://testserver")).json()
    assert [t["name"] for t in rest["clustertemplates"]] == ["t0"] and "next" not in rest
    detail = client.get("/v1/clustertemplates/detail", params={"limit": 1}).json()
    assert detail["next"].startswith("http://testserver/v1/clustertemplates/detail?")

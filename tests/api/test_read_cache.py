"""Kept answers to cluster reads (floe/api/cache.py): never stale after a write, never shared across callers."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from sqlalchemy import delete, update

from floe.db.models import Cluster, Token
from floe.db.session import Database

from .conftest import Env


def _cluster(client: TestClient, name: str) -> str:
    assert client.post("/v1/clustertemplates", json={"name": f"t-{name}", "coe": "swarm"}).status_code == 201
    resp = client.post("/v1/clusters", json={"name": name, "cluster_template_id": f"t-{name}"})
    assert resp.status_code == 202, resp.text
    return resp.json()["uuid"]


def test_a_read_is_kept_until_a_write_changes_it(env: Env, client: TestClient) -> None:
    uuid = _cluster(client, "c1")
    answers = env.app.state.caches.answers
    first = client.get(f"/v1/clusters/{uuid}")
    assert first.json()["status"] == "CREATE_IN_PROGRESS"
    again = client.get(f"/v1/clusters/{uuid}")
    assert again.content == first.content
    assert again.headers["x-openstack-request-id"] != first.headers["x-openstack-request-id"]
    assert again.headers["openstack-api-version"] == first.headers["openstack-api-version"]
    assert len(answers._entries) == 1

    # A write through any session of this process (the engine's, here played by the test).
    env.finish_create("c1", api_address="tcp://10.0.0.1:2376")
    for path in (f"/v1/clusters/{uuid}", "/v1/clusters", "/v1/clusters/detail"):
        body = client.get(path).json()
        c = body if "uuid" in body else body["clusters"][0]
        assert c["status"] == "CREATE_COMPLETE", path


def test_a_write_by_another_process_shows_within_the_ttl(env: Env, client: TestClient) -> None:
    uuid = _cluster(client, "c2")
    env.app.state.caches.answers.ttl = 0.3
    assert client.get(f"/v1/clusters/{uuid}").json()["node_count"] == 1
    other = Database(env.db.url)  # another engine: its writes are not seen by this process's events
    try:
        with other.session() as s:
            s.execute(update(Cluster).where(Cluster.uuid == uuid).values(node_count=7))
    finally:
        other.dispose()
    time.sleep(0.35)
    assert client.get(f"/v1/clusters/{uuid}").json()["node_count"] == 7


def test_answers_are_not_shared_between_projects_or_hosts(env: Env, client: TestClient) -> None:
    uuid = _cluster(client, "c3")
    assert len(client.get("/v1/clusters").json()["clusters"]) == 1
    other = env.new_project("other")
    assert client.get("/v1/clusters", headers={"X-Auth-Token": other}).json()["clusters"] == []
    assert client.get(f"/v1/clusters/{uuid}", headers={"X-Auth-Token": other}).status_code == 404
    links = client.get(f"/v1/clusters/{uuid}", headers={"Host": "floe.example:9511"}).json()["links"]
    assert links[0]["href"].startswith("http://floe.example:9511/v1/clusters/")
    assert client.get(f"/v1/clusters/{uuid}").json()["links"][0]["href"].startswith("http://testserver/")


def test_a_removed_token_stops_working_at_once(env: Env, client: TestClient) -> None:
    token = env.new_project("p2")
    assert client.get("/v1/clusters", headers={"X-Auth-Token": token}).status_code == 200
    with env.db.session() as s:
        s.execute(delete(Token).where(Token.description == "test"))
    assert client.get("/v1/clusters", headers={"X-Auth-Token": token}).status_code == 401


def test_errors_are_not_kept(env: Env, client: TestClient) -> None:
    assert client.get("/v1/clusters/nope").status_code == 404
    uuid = _cluster(client, "nope")
    assert client.get("/v1/clusters/nope").json()["uuid"] == uuid


def test_concurrent_reads_after_a_change_build_the_answer_once(env: Env, client: TestClient, monkeypatch) -> None:
    import asyncio

    import httpx

    from floe.services import clusters

    _cluster(client, "c4")
    calls = []
    real = clusters.list_clusters

    def counting(*args, **kw):
        calls.append(1)
        time.sleep(0.2)  # a slow build, so the other requests arrive while it runs
        return real(*args, **kw)

    monkeypatch.setattr(clusters, "list_clusters", counting)

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=env.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return await asyncio.gather(*(c.get("/v1/clusters", headers=env.headers()) for _ in range(10)))

    answers = asyncio.run(burst())
    assert {r.status_code for r in answers} == {200}
    assert len({r.content for r in answers}) == 1
    assert len(calls) == 1

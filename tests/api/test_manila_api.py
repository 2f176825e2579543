"""Manila's v2 API conventions and the refusals that change nothing (no storage worker runs here:
shares stay where the API leaves them; helpers play the worker's part with rows)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from floe.db.models import Project, Share, ShareAccessRule, ShareAttachment
from floe.services import identity

from .conftest import Env

H = {"X-OpenStack-Manila-API-Version": "2.65"}


def fault(resp, status: int, *fragments: str) -> str:
    """`resp` is a Manila fault with `status`; returns its message."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    ((name, item),) = body.items()
    assert item["code"] == status, body
    for fragment in fragments:
        assert fragment in item["message"], item["message"]
    return item["message"]


def rows(env: Env) -> dict[str, list]:
    out = {}
    with env.db.session() as s:
        for model in (Share, ShareAccessRule, ShareAttachment):
            cols = [c.key for c in model.__table__.columns if c.key not in ("updated_at",)]
            out[model.__tablename__] = [tuple(getattr(r, k) for k in cols) for r in s.scalars(select(model))]
    return out


def make_share(client: TestClient, name: str = "s1", size: int = 1) -> dict:
    resp = client.post("/v2/shares", json={"share": {"share_proto": "LOCALFS", "size": size, "name": name}},
                       headers=H)
    assert resp.status_code == 202, resp.text
    return resp.json()["share"]


def set_status(env: Env, share_id: str, status: str) -> None:
    with env.db.session() as s:
        share = s.scalars(select(Share).where(Share.uuid == share_id)).one()
        share.status = status


def test_root_document_serves_magnum_and_manila(env: Env) -> None:
    with TestClient(env.app) as anon:
        magnum = anon.get("/").json()
        assert magnum["name"] == "OpenStack Magnum API"
        manila = anon.get("/", headers={"X-OpenStack-Manila-API-Version": "2.0"}).json()
        (v2,) = manila["versions"]
        assert v2["id"] == "v2.0" and v2["status"] == "CURRENT" and v2["min_version"] == "2.0"
        assert v2["version"] == "2.65"
        keystone = anon.get("/", headers={"OpenStack-API-Version": "shared-file-system 2.10"}).json()
        assert keystone["versions"][0]["id"] == "v2.0"
        resp = anon.get("/v2/")
        assert resp.status_code == 200 and resp.json()["versions"][0]["links"][1]["href"].endswith("/v2/")


@pytest.mark.parametrize(("header", "status", "version"), [
    (None, 200, "2.0"), ("2.7", 200, "2.7"), ("latest", 200, "2.65"), ("2.66", 406, None), ("1.0", 406, None),
    ("two", 400, None),
])
def test_microversions(client: TestClient, header, status, version) -> None:
    resp = client.get("/v2/shares", headers={"X-OpenStack-Manila-API-Version": header} if header else {})
    if status == 200:
        assert resp.status_code == 200, resp.text
        assert resp.headers["X-OpenStack-Manila-API-Version"] == version
        assert "X-OpenStack-Manila-API-Version" in resp.headers["Vary"]
    else:
        fault(resp, status, "2.0" if status == 406 else "format")


def test_token_and_project_in_path(env: Env, client: TestClient) -> None:
    with TestClient(env.app) as anon:
        fault(anon.get("/v2/shares"), 401)
        fault(anon.get("/v2/shares", headers={"X-Auth-Token": "nope"}), 401)
    share = make_share(client)
    project = share["project_id"]
    assert client.get(f"/v2/{project}/shares/{share['id']}", headers=H).json()["share"]["id"] == share["id"]
    other = "0" * 8 + "-0000-0000-0000-" + "0" * 12
    fault(client.get(f"/v2/{other}/shares", headers=H), 400, "project")
    # Another project sees nothing of it.
    token = env.new_project("other")
    fault(client.get(f"/v2/shares/{share['id']}", headers={**H, "X-Auth-Token": token}), 404)


def test_unknown_routes_and_actions_are_manila_faults(client: TestClient) -> None:
    share = make_share(client)
    fault(client.get("/v2/share-groups", headers=H), 404)  # /v2/snapshots is served now (empty)
    fault(client.post(f"/v2/shares/{share['id']}/action", json={"revert": {}}, headers=H), 400, "not supported")
    fault(client.post(f"/v2/shares/{share['id']}/action", json=[1], headers=H), 400)
    fault(client.post("/v2/shares", content=b"{not json", headers={**H, "Content-Type": "application/json"}), 400)


@pytest.mark.parametrize(("body", "status", "fragment"), [
    ({"share_proto": "LOCALFS", "size": 0}, 400, "whole number"),
    ({"share_proto": "LOCALFS", "size": -3}, 400, "whole number"),
    ({"share_proto": "LOCALFS", "size": "big"}, 400, "whole number"),
    ({"share_proto": "LOCALFS", "size": True}, 400, "whole number"),
    ({"share_proto": "NFS", "size": 1}, 400, "protocol"),
    ({"size": 1}, 400, "share_proto"),
    ({"share_proto": "LOCALFS", "size": 1, "share_type": "ceph"}, 400, "not found"),
    ({"share_proto": "LOCALFS", "size": 1, "snapshot_id": "x"}, 400, "snapshot"),
    ({"share_proto": "LOCALFS", "size": 1, "is_public": True}, 400, "public"),
    ({"share_proto": "LOCALFS", "size": 2000}, 413, "Quota exceeded for gigabytes: 0 GiB of 1000 GiB used"),
])
def test_bad_creates_change_nothing(env: Env, client: TestClient, body, status, fragment) -> None:
    before = rows(env)
    fault(client.post("/v2/shares", json={"share": body}, headers=H), status, fragment)
    assert rows(env) == before


def test_quota_counts_every_share(env: Env, client: TestClient) -> None:
    with env.db.session() as s:  # the admin token's own project
        admin = s.scalars(select(Project.id).where(Project.name == identity.ADMIN_PROJECT)).one()
    resp = client.put(f"/v2/quota-sets/{admin}", json={"quota_set": {"gigabytes": 3}}, headers=H)
    assert resp.status_code == 200, resp.text
    make_share(client, "a", 2)
    fault(client.post("/v2/shares", json={"share": {"share_proto": "LOCALFS", "size": 2}}, headers=H), 413,
          "Quota exceeded for gigabytes: 2 GiB of 3 GiB used, 2 GiB requested")
    limits = client.get("/v2/limits", headers=H).json()["limits"]["absolute"]
    assert limits["maxTotalShareGigabytes"] == 3 and limits["totalShareGigabytesUsed"] == 2


def test_duplicate_names_and_types(client: TestClient) -> None:
    make_share(client, "same")
    fault(client.post("/v2/shares", json={"share": {"share_proto": "LOCALFS", "size": 1, "name": "same"}},
                      headers=H), 409, "already exists")
    types = client.get("/v2/types", headers=H).json()["share_types"]
    local = next(t for t in types if t["name"] == "local")
    assert local["extra_specs"]["driver_handles_share_servers"] == "False" and local["is_default"]
    assert client.get("/v2/types/default", headers=H).json()["share_type"]["id"] == local["id"]
    fault(client.get("/v2/types/nope", headers=H), 404)


def test_access_rules_refusals_change_nothing(env: Env, client: TestClient) -> None:
    share = make_share(client)
    sid = share["id"]
    act = f"/v2/shares/{sid}/action"
    ok = client.post(act, json={"allow_access": {"access_type": "floe_cluster", "access_to": "c1",
                                                 "access_level": "ro"}}, headers=H)
    assert ok.status_code == 200 and ok.json()["access"]["state"] == "queued_to_apply"
    before = rows(env)
    for body, status, fragment in [
        ({"access_type": "floe_cluster", "access_to": "c1"}, 400, "exists"),
        ({"access_type": "user", "access_to": "c1"}, 400, "exists"),  # the same cluster by another type
        ({"access_type": "cephx", "access_to": "alice"}, 400, "access type"),
        ({"access_type": "floe_cluster", "access_to": "Bad_Name!"}, 400, "DNS"),
        ({"access_type": "floe_cluster", "access_to": "c2", "access_level": "rx"}, 400, "level"),
        ({"access_type": "ip", "access_to": "10.175.0.9"}, 400, "ip access"),  # local shares: clusters only
    ]:
        fault(client.post(act, json={"allow_access": body}, headers=H), status, fragment)
    fault(client.post(act, json={"deny_access": {"access_id": "0" * 8 + "-0000-4000-8000-" + "0" * 12}},
                      headers=H), 404, "not found")
    set_status(env, sid, "error")
    before = rows(env)
    fault(client.post(act, json={"allow_access": {"access_type": "floe_cluster", "access_to": "c3"}}, headers=H),
          400, "error")
    assert rows(env) == before
    listed = client.get(f"/v2/share-access-rules?share_id={sid}", headers=H).json()["access_list"]
    assert [(r["access_to"], r["access_level"]) for r in listed] == [("c1", "ro")]
    fault(client.get("/v2/share-access-rules", headers=H), 400, "share_id")


def test_resize_and_delete_rules(env: Env, client: TestClient) -> None:
    share = make_share(client, size=2)
    sid, act = share["id"], f"/v2/shares/{share['id']}/action"
    fault(client.post(act, json={"extend": {"new_size": 3}}, headers=H), 409, "creating")  # not yet available
    set_status(env, sid, "available")
    fault(client.post(act, json={"extend": {"new_size": 2}}, headers=H), 400, "greater")
    fault(client.post(act, json={"shrink": {"new_size": 2}}, headers=H), 400, "less")
    fault(client.post(act, json={"shrink": {"new_size": 0}}, headers=H), 400, "whole number")
    assert client.post(act, json={"extend": {"new_size": 4}}, headers=H).status_code == 202
    shown = client.get(f"/v2/shares/{sid}", headers=H).json()["share"]
    assert shown["status"] == "extending" and shown["size"] == 2
    set_status(env, sid, "available")
    assert client.delete(f"/v2/shares/{sid}", headers=H).status_code == 202
    assert client.get(f"/v2/shares/{sid}", headers=H).json()["share"]["status"] == "deleting"


def _cluster(env: Env, client: TestClient, name: str) -> str:
    resp = client.post("/v1/clustertemplates", json={"name": f"t-{name}", "coe": "swarm"},
                       headers={"OpenStack-API-Version": "container-infra latest"})
    assert resp.status_code in (200, 201), resp.text
    resp = client.post("/v1/clusters", json={"name": name, "cluster_template_id": f"t-{name}"})
    assert resp.status_code == 202, resp.text
    env.finish_create(name)
    return resp.json()["uuid"]


def test_attach_needs_an_access_rule_and_in_use_shares_need_force(env: Env, client: TestClient) -> None:
    _cluster(env, client, "c1")
    share = make_share(client, "data")
    sid = share["id"]
    before = rows(env)
    denied = client.post("/v1/floe/clusters/c1/shares", json={"share": "data"})  # Magnum-shaped under /v1
    assert denied.status_code == 403 and "floe share access allow data --cluster c1" in denied.text
    assert rows(env) == before
    client.post(f"/v2/shares/{sid}/action", json={"allow_access": {"access_type": "floe_cluster",
                                                                    "access_to": "c1", "access_level": "ro"}},
                headers=H)
    bad = client.post("/v1/floe/clusters/c1/shares", json={"share": "data", "path": "/data"})
    assert bad.status_code == 400 and "/mnt/NAME" in bad.json()["errors"][0]["detail"]
    resp = client.post("/v1/floe/clusters/c1/shares", json={"share": "data"})
    assert resp.status_code == 202, resp.text
    m = resp.json()
    assert m["path"] == "/mnt/data" and m["access_level"] == "ro" and m["state"] == "attaching"  # ro rule wins
    again = client.post("/v1/floe/clusters/c1/shares", json={"share": "data", "path": "/mnt/other"})
    assert again.status_code == 409
    assert [x["cluster_name"] for x in client.get("/v1/floe/shares/data/mounts").json()["mounts"]] == ["c1"]
    set_status(env, sid, "available")
    before = rows(env)
    fault(client.delete(f"/v2/shares/{sid}", headers=H), 409, "in use by c1")
    fault(client.post(f"/v2/shares/{sid}/action", json={"shrink": {"new_size": 1}}, headers=H), 400)
    assert rows(env) == before
    assert client.post(f"/v2/shares/{sid}/action", json={"force_delete": None}, headers=H).status_code == 202
    assert client.get(f"/v2/shares/{sid}", headers=H).json()["share"]["status"] == "deleting"
    resp = client.delete("/v1/floe/clusters/c1/shares/data")
    assert resp.status_code == 202 and resp.json()["state"] == "detaching"

"""Tenancy: every route of /v1, /v2, /v1/floe and /identity, walked as another project's member
and reader, against a first project's objects.

Project alpha (user alice, member) owns a template, a cluster with nodes and a CA, a share
with an access rule, and an application credential. Project beta has bob (member) and carol
(reader). For every operation in the APIs' own route tables, bob and carol call it naming
alpha's objects, with a body that would succeed for alice. Each answer must be a refusal (403
or 404; 400 where the body names an object the caller cannot see), or a read that shows
nothing of alpha's; and the database must be exactly as before. A route added without a body
here fails the walk until it gets one.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.routing import Mount

from floe import pki
from floe.db.base import Base
from floe.db.models import Share

from .conftest import Env

MANILA = {"X-OpenStack-Manila-API-Version": "2.65"}
PASSWORD = "correct horse battery staple"


def _token(client: TestClient, user: str, project: str) -> str:
    resp = client.post("/identity/v3/auth/tokens", headers={"X-Auth-Token": ""}, json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": PASSWORD}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}})
    assert resp.status_code == 201, resp.text
    return resp.headers["X-Subject-Token"]


def _setup_identity(admin: TestClient) -> dict[str, str]:
    roles = {r["name"]: r["id"] for r in admin.get("/identity/v3/roles").json()["roles"]}
    ids = {"member_role": roles["member"]}
    for project, users in (("alpha", {"alice": "member"}), ("beta", {"bob": "member", "carol": "reader"})):
        pid = admin.post("/identity/v3/projects", json={"project": {"name": project}}).json()["project"]["id"]
        ids[project] = pid
        for user, role in users.items():
            resp = admin.post("/identity/v3/users", json={"user": {"name": user, "password": PASSWORD}})
            ids[user] = resp.json()["user"]["id"]
            assert admin.put(f"/identity/v3/projects/{pid}/users/{ids[user]}/roles/{roles[role]}").status_code == 204
    return ids


def _all_routes(app) -> set[tuple[str, str]]:
    """(method, path) of every operation floe serves, from each API's own route table."""
    paths = dict(app.openapi()["paths"])
    for route in app.routes:
        if isinstance(route, Mount):
            for path, item in route.app.openapi()["paths"].items():
                paths[route.path + path] = item
    return {(m.upper(), p) for p, item in paths.items() for m in item if m in ("get", "post", "put", "patch",
                                                                              "delete", "head")}


# Routes anyone authenticated may call and that show or change only the caller's own things,
# or nothing: they are walked for leaks of alpha's data, not for refusals.
OWN_OR_PUBLIC = {
    ("GET", "/"), ("GET", "/v1"), ("GET", "/v2"), ("GET", "/identity"), ("GET", "/identity/v3"),
    ("GET", "/openapi.json"), ("GET", "/v2/openapi.json"), ("GET", "/docs"), ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("GET", "/v1/clusters"), ("GET", "/v1/clusters/detail"), ("GET", "/v1/clustertemplates"),
    ("GET", "/v1/clustertemplates/detail"), ("GET", "/v1/mservices"), ("GET", "/v1/stats"),
    ("GET", "/v2/shares"), ("GET", "/v2/shares/detail"), ("GET", "/v2/types"), ("GET", "/v2/types/{ident}"),
    ("GET", "/v2/types/{ident}/extra_specs"), ("GET", "/v2/limits"), ("GET", "/v2/availability-zones"),
    ("GET", "/v2/share-networks"), ("GET", "/v2/share-networks/detail"), ("GET", "/v2/snapshots"),
    ("GET", "/v2/snapshots/detail"), ("GET", "/v2/share-access-rules"),
    ("GET", "/identity/v3/auth/catalog"), ("GET", "/identity/v3/auth/projects"),
    ("GET", "/identity/v3/auth/domains"), ("GET", "/identity/v3/roles"), ("GET", "/identity/v3/roles/{role_id}"),
    ("GET", "/identity/v3/domains"), ("GET", "/identity/v3/domains/{domain_id}"),
    ("GET", "/v1/quotas"), ("GET", "/v1/floe/networks"),
    # The server-wide defaults, the same for every project (Manila lets everyone read them).
    ("GET", "/v2/quota-sets/{project_id}/defaults"), ("GET", "/v2/os-quota-sets/{project_id}/defaults"),
    # The flavor catalog: global, its public part the same for everyone.
    ("GET", "/v2.1/flavors"), ("GET", "/v2.1/flavors/detail"), ("GET", "/v2.1/flavors/{flavor_id}"),
    ("GET", "/v2.1/flavors/{flavor_id}/os-extra_specs"), ("GET", "/v2.1/flavors/{flavor_id}/os-flavor-access"),
}
# Creates in the caller's own project: a member may (so they are not walked as bob: they would
# change the database, rightly); a reader may not.
OWN_CREATES = {("POST", "/v1/clustertemplates"), ("POST", "/v2/shares"), ("POST", "/v1/floe/images"),
               ("POST", "/v2/snapshots"), ("POST", "/v1/floe/networks")}
# A body naming an object the caller cannot see is invalid input (Magnum answers 400 for a
# template it cannot find when creating a cluster).
BAD_REFERENCE_400 = {("POST", "/v1/clusters")}


def _bodies(w: dict[str, Any], csr: str) -> dict[tuple[str, str], Any]:
    """A body per mutating route, one that would succeed for alpha's member."""
    return {
        ("POST", "/v1/clusters"): {"cluster_template_id": w["template"], "name": "stolen", "node_count": 1},
        ("PATCH", "/v1/clusters/{ident}"): [{"op": "replace", "path": "/node_count", "value": 3}],
        ("DELETE", "/v1/clusters/{ident}"): None,
        ("POST", "/v1/clusters/{ident}/actions/resize"): {"node_count": 3},
        ("POST", "/v1/clusters/{ident}/actions/upgrade"): {"cluster_template": w["template"]},
        ("POST", "/v1/clusters/{cluster_ident}/nodegroups"): {"name": "stolen", "node_count": 1},
        ("PATCH", "/v1/clusters/{cluster_ident}/nodegroups/{ng_ident}"): [
            {"op": "replace", "path": "/max_node_count", "value": 10}],
        ("DELETE", "/v1/clusters/{cluster_ident}/nodegroups/{ng_ident}"): None,
        ("PATCH", "/v1/clustertemplates/{ident}"): [{"op": "replace", "path": "/public", "value": True}],
        ("DELETE", "/v1/clustertemplates/{ident}"): None,
        ("POST", "/v1/clustertemplates"): {"coe": "swarm", "name": "beta-tpl"},
        ("POST", "/v1/certificates"): {"cluster_uuid": w["cluster"], "csr": csr},
        ("PATCH", "/v1/certificates/{cluster_ident}"): None,
        ("POST", "/v1/floe/cleanup"): {},
        ("POST", "/v1/floe/clusters/{ident}/shares"): {"share": w["share"]},
        ("DELETE", "/v1/floe/clusters/{ident}/shares/{share}"): None,
        ("POST", "/v1/floe/images"): None,
        ("POST", "/v1/floe/networks"): {"name": "beta-net"},
        ("DELETE", "/v1/floe/networks/{ident}"): None,
        ("POST", "/v1/floe/clusters/{ident}/networks"): {"network": w["network"]},
        ("POST", "/v1/floe/clusters/{ident}/jobs"): {"nodes": 1, "command": ["hostname"]},
        ("DELETE", "/v1/floe/clusters/{ident}/jobs/{job}"): None,
        ("POST", "/v1/quotas"): {"project_id": w["alpha"], "resource": "Cluster", "hard_limit": 100},
        ("PATCH", "/v1/quotas/{project_id}/{resource}"): {"project_id": w["alpha"], "resource": "Cluster",
                                                          "hard_limit": 100},
        ("DELETE", "/v1/quotas/{project_id}/{resource}"): None,
        ("POST", "/v2/shares"): {"share": {"share_proto": "LOCALFS", "size": 1, "name": "beta-share"}},
        ("PUT", "/v2/shares/{ident}"): {"share": {"display_name": "stolen"}},
        ("DELETE", "/v2/shares/{ident}"): None,
        ("POST", "/v2/shares/{ident}/action"): {"allow_access": {"access_type": "floe_cluster", "access_to": "x",
                                                                  "access_level": "rw"}},
        ("POST", "/v2/snapshots"): {"snapshot": {"share_id": w["share"]}},
        ("PUT", "/v2/quota-sets/{project_id}"): {"quota_set": {"shares": 1000}},
        ("DELETE", "/v2/quota-sets/{project_id}"): None,
        ("PUT", "/v2/os-quota-sets/{project_id}"): {"quota_set": {"shares": 1000}},
        ("DELETE", "/v2/os-quota-sets/{project_id}"): None,
        ("POST", "/identity/v3/auth/tokens"): {"auth": {"identity": {"methods": ["token"], "token": {
            "id": w["alice_token"]}}, "scope": {"project": {"id": w["beta"]}}}},
        ("DELETE", "/identity/v3/auth/tokens"): None,
        ("POST", "/identity/v3/projects"): {"project": {"name": "gamma"}},
        ("PATCH", "/identity/v3/projects/{project_id}"): {"project": {"enabled": False}},
        ("DELETE", "/identity/v3/projects/{project_id}"): None,
        ("POST", "/identity/v3/users"): {"user": {"name": "mallory", "password": "x"}},
        ("PATCH", "/identity/v3/users/{user_id}"): {"user": {"password": "taken over"}},
        ("DELETE", "/identity/v3/users/{user_id}"): None,
        ("POST", "/identity/v3/users/{user_id}/password"): {"user": {"original_password": PASSWORD,
                                                                     "password": "taken over"}},
        ("PUT", "/identity/v3/projects/{project_id}/users/{user_id}/roles/{role_id}"): None,
        ("DELETE", "/identity/v3/projects/{project_id}/users/{user_id}/roles/{role_id}"): None,
        ("POST", "/identity/v3/users/{user_id}/application_credentials"): {"application_credential": {
            "name": "stolen"}},
        ("DELETE", "/identity/v3/users/{user_id}/application_credentials/{cred_id}"): None,
        # Flavors are global and admin-managed: bob and carol may change none.
        ("POST", "/v2.1/flavors"): {"flavor": {"name": "beta-flavor", "ram": 512, "vcpus": 1, "disk": 0}},
        ("DELETE", "/v2.1/flavors/{flavor_id}"): None,
        ("POST", "/v2.1/flavors/{flavor_id}/os-extra_specs"): {"extra_specs": {"floe:gpus": "1"}},
        ("DELETE", "/v2.1/flavors/{flavor_id}/os-extra_specs/{key}"): None,
    }


def _fill(path: str, w: dict[str, Any]) -> str:
    """`path` naming alpha's objects."""
    cluster_like = path.startswith(("/v1/clusters", "/v1/certificates", "/v1/floe/clusters"))
    values = {
        "{ident}": w["cluster"] if cluster_like else w["template"] if "clustertemplates" in path
        else "default" if "/types/" in path else w["share"],
        "{cluster_ident}": w["cluster"], "{ng_ident}": "default-worker", "{share}": w["share"],
        "{project_id}": w["alpha"],
        "{resource}": "Cluster", "{rule_id}": w["rule"], "{location_id}": w["location"], "{key}": "k",
        "{user_id}": w["alice"], "{role_id}": w["member_role"], "{cred_id}": w["cred"], "{domain_id}": "default",
        "{flavor_id}": "m1.tiny", "{job}": "1",
    }
    if path.startswith("/v1/floe/shares/"):
        values["{ident}"] = w["share"]
    if path.startswith("/v1/floe/networks/"):
        values["{ident}"] = w["network"]
    for name, value in values.items():
        path = path.replace(name, value)
    assert "{" not in path, path
    if path == "/v1/floe/events":  # a stream: of alpha's cluster (refused), not one that never ends
        path += f"?cluster={w['cluster']}"
    return path


def _rows(env: Env) -> dict[str, list]:
    """Every row of every table (but the token cache's clock-free columns are rows too)."""
    out: dict[str, list] = {}
    with env.db.session() as s:
        for table in Base.metadata.sorted_tables:
            out[table.name] = sorted(map(repr, s.execute(select(table)).all()))
    return out


@pytest.fixture
def world(env: Env, client: TestClient) -> dict[str, Any]:
    w: dict[str, Any] = _setup_identity(client)
    alice = TestClient(env.app, raise_server_exceptions=False)
    alice.headers["X-Auth-Token"] = w["alice_token"] = _token(client, "alice", "alpha")
    w["template"] = alice.post("/v1/clustertemplates", json={"coe": "swarm", "name": "alpha-tpl"}).json()["uuid"]
    resp = alice.post("/v1/clusters", json={"cluster_template_id": "alpha-tpl", "name": "alpha-cluster"})
    assert resp.status_code == 202, resp.text
    w["cluster"] = resp.json()["uuid"]
    env.add_nodes(w["cluster"], managers=1, workers=1)
    env.give_ca(w["cluster"])
    env.finish_create(w["cluster"])
    resp = alice.post("/v2/shares", headers=MANILA,
                      json={"share": {"share_proto": "LOCALFS", "size": 1, "name": "alpha-share"}})
    assert resp.status_code == 202, resp.text
    w["share"] = resp.json()["share"]["id"]
    with env.db.session() as s:
        s.scalars(select(Share).where(Share.uuid == w["share"])).one().status = "available"
    resp = alice.post(f"/v2/shares/{w['share']}/action", headers=MANILA,
                      json={"allow_access": {"access_type": "floe_cluster", "access_to": "alpha-cluster",
                                             "access_level": "rw"}})
    assert resp.status_code == 200, resp.text
    w["rule"] = resp.json()["access"]["id"]
    w["location"] = "00000000-0000-0000-0000-000000000000"
    resp = alice.post(f"/identity/v3/users/{w['alice']}/application_credentials",
                      json={"application_credential": {"name": "alpha-ci"}})
    assert resp.status_code == 201, resp.text
    w["cred"] = resp.json()["application_credential"]["id"]
    resp = alice.post("/v1/floe/networks", json={"name": "alpha-net"})
    assert resp.status_code == 201, resp.text
    w["network"] = resp.json()["uuid"]
    w["bob_token"] = _token(client, "bob", "beta")
    w["carol_token"] = _token(client, "carol", "beta")
    return w


def _alpha_markers(w: dict[str, Any]) -> list[str]:
    return [w["cluster"], w["template"], w["share"], w["rule"], w["alpha"], w["alice"], w["cred"],
            "alpha-cluster", "alpha-tpl", "alpha-share", "alpha-ci", "alice", w["network"], "alpha-net"]


@pytest.mark.parametrize("who", ["bob", "carol"])
def test_every_route_refuses_another_project(env: Env, client: TestClient, world: dict[str, Any],
                                             who: str) -> None:
    w = world
    _, csr = pki.new_client_key_and_csr()
    bodies = _bodies(w, csr)
    routes = _all_routes(env.app)
    missing = sorted(r for r in routes if r[0] != "GET" and r[0] != "HEAD" and r not in bodies)
    assert not missing, f"routes with no body in this walk (add one): {missing}"
    caller = TestClient(env.app, raise_server_exceptions=False)
    caller.headers["X-Auth-Token"] = w[f"{who}_token"]
    before = _rows(env)
    failures = []
    walked = 0
    for method, path in sorted(routes):
        if method == "HEAD":
            continue
        if (method, path) in OWN_CREATES and who == "bob":
            continue  # a member creating in their own project: allowed, and not alpha's business
        url = _fill(path, w)
        headers = dict(MANILA) if path.startswith("/v2") else {}
        if "/nodegroups" in path:  # served from Magnum's 1.9 on (406 before, whoever asks)
            headers["OpenStack-API-Version"] = "container-infra latest"
        if path == "/identity/v3/auth/tokens":
            headers["X-Subject-Token"] = w["alice_token"]
        body = bodies.get((method, path))
        content = json.dumps(body).encode() if body is not None else None
        if content is not None:
            headers["Content-Type"] = "application/json"
        resp = caller.request(method, url, content=content, headers=headers)
        walked += 1
        text = resp.text
        # What the caller named (echoed in a 404) is not a leak; anything else of alpha's is.
        sent = url + (content or b"").decode() + json.dumps(headers)
        leaked = [m for m in _alpha_markers(w) if m in text and m not in sent]
        if (method, path) in OWN_OR_PUBLIC or (method, path) in OWN_CREATES:
            ok = resp.status_code < 500 and not leaked
        elif (method, path) == ("POST", "/identity/v3/auth/tokens"):
            ok = resp.status_code in (401, 403) and not leaked  # alice's token, rescoped to beta: no
        else:
            allowed = {403, 404} | ({400} if (method, path) in BAD_REFERENCE_400 else set())
            ok = resp.status_code in allowed and not leaked
        if not ok:
            failures.append(f"{method} {url}: {resp.status_code} leaked={leaked} {text[:200]}")
    assert not failures, "\n".join(failures)
    assert walked > 60
    assert _rows(env) == before, "a refused request changed the database"


def test_clusters_belong_to_projects_not_users(env: Env, client: TestClient, world: dict[str, Any]) -> None:
    """Deleting the user who made a cluster leaves it manageable by the project's other members."""
    w = world
    roles = {r["name"]: r["id"] for r in client.get("/identity/v3/roles").json()["roles"]}
    dave = client.post("/identity/v3/users", json={"user": {"name": "dave", "password": PASSWORD}}).json()["user"]
    assert client.put(f"/identity/v3/projects/{w['alpha']}/users/{dave['id']}/roles/{roles['member']}"
                      ).status_code == 204
    assert client.delete(f"/identity/v3/users/{w['alice']}").status_code == 204
    # Alice's token and application credential died with her.
    gone = TestClient(env.app, raise_server_exceptions=False, headers={"X-Auth-Token": w["alice_token"]})
    assert gone.get("/v1/clusters").status_code == 401
    d = TestClient(env.app, raise_server_exceptions=False, headers={"X-Auth-Token": _token(client, "dave", "alpha")})
    assert [c["uuid"] for c in d.get("/v1/clusters").json()["clusters"]] == [w["cluster"]]
    assert d.get(f"/v1/certificates/{w['cluster']}").status_code == 200
    _, csr = pki.new_client_key_and_csr()
    assert d.post("/v1/certificates", json={"cluster_uuid": w["cluster"], "csr": csr}).status_code == 201
    resp = d.post(f"/v1/clusters/{w['cluster']}/actions/resize", json={"node_count": 2})
    assert resp.status_code == 202, resp.text
    assert [s["id"] for s in d.get("/v2/shares", headers=MANILA).json()["shares"]] == [w["share"]]


def test_readers_read_and_members_write(env: Env, client: TestClient, world: dict[str, Any]) -> None:
    """In their own project a reader sees everything and changes nothing; a member changes."""
    w = world
    roles = {r["name"]: r["id"] for r in client.get("/identity/v3/roles").json()["roles"]}
    erin = client.post("/identity/v3/users", json={"user": {"name": "erin", "password": PASSWORD}}).json()["user"]
    assert client.put(f"/identity/v3/projects/{w['alpha']}/users/{erin['id']}/roles/{roles['reader']}"
                      ).status_code == 204
    r = TestClient(env.app, raise_server_exceptions=False, headers={"X-Auth-Token": _token(client, "erin", "alpha")})
    assert [c["uuid"] for c in r.get("/v1/clusters").json()["clusters"]] == [w["cluster"]]
    assert r.get(f"/v2/shares/{w['share']}", headers=MANILA).status_code == 200
    assert r.get(f"/v1/certificates/{w['cluster']}").status_code == 200
    before = _rows(env)
    _, csr = pki.new_client_key_and_csr()
    for resp in (
        r.post("/v1/clustertemplates", json={"coe": "swarm", "name": "r"}),
        r.post(f"/v1/clusters/{w['cluster']}/actions/resize", json={"node_count": 2}),
        r.delete(f"/v1/clusters/{w['cluster']}"),
        r.post("/v1/certificates", json={"cluster_uuid": w["cluster"], "csr": csr}),  # a cert is full control
        r.post(f"/v2/shares/{w['share']}/action", headers=MANILA, json={"extend": {"new_size": 2}}),
    ):
        assert resp.status_code == 403, resp.text
        assert "reader" in resp.text
    assert _rows(env) == before


def test_admins_list_across_projects(env: Env, client: TestClient, world: dict[str, Any]) -> None:
    """`openstack share list --all-projects` (all_tenants=1) is an admin's; a member asking is refused."""
    w = world
    everyone = client.get("/v2/shares/detail?all_tenants=1", headers=MANILA).json()["shares"]
    assert [(s["id"], s["project_id"]) for s in everyone] == [(w["share"], w["alpha"])]
    assert client.get("/v2/shares", headers=MANILA).json()["shares"] == []  # the admin's own project
    assert [s["id"] for s in client.get(f"/v2/shares?project_id={w['alpha']}", headers=MANILA
                                        ).json()["shares"]] == [w["share"]]
    bob = TestClient(env.app, raise_server_exceptions=False, headers={"X-Auth-Token": w["bob_token"]})
    for query in ("all_tenants=1", f"project_id={w['alpha']}"):
        resp = bob.get(f"/v2/shares?{query}", headers=MANILA)
        assert resp.status_code == 403 and w["share"] not in resp.text

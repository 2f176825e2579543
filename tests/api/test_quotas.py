"""Per-project quotas through both APIs: Magnum's /v1/quotas and /v1/stats, Manila's quota sets,
refusals that change nothing (in each API's error shape), and enforcement at the edges:
exactly at a limit passes, one over fails, -1 is unlimited."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from floe.db.models import Cluster, NodeGroup, Operation, Project, Quota, QuotaLock, Share
from floe.engine.operations import ACTIVE
from floe.services import identity, quotas

from .conftest import Env, assert_error

M = {"X-OpenStack-Manila-API-Version": "2.65"}


@pytest.fixture
def member(env: Env) -> tuple[str, str]:
    """(token, project id) of a non-admin project."""
    token = env.new_project("member")
    return token, project_id(env, "member")


def project_id(env: Env, name: str) -> str:
    with env.db.session() as s:
        return s.scalars(select(Project.id).where(Project.name == name)).one()


def quota_rows(env: Env) -> list[tuple]:
    """Every row a quota request could write, to prove a refused one changed nothing."""
    with env.db.session() as s:
        quotas = [(q.id, q.project_id, q.resource, q.hard_limit) for q in s.scalars(select(Quota).order_by(Quota.id))]
        locks = [(q.project_id, q.changes) for q in s.scalars(select(QuotaLock))]
        shares = [(x.uuid, x.size, x.target_size, x.status) for x in s.scalars(select(Share))]
    return [quotas, locks, shares, env.snapshot()]


def fault(resp, status: int, *fragments: str) -> str:
    assert resp.status_code == status, resp.text
    ((_, item),) = resp.json().items()
    assert item["code"] == status
    for fragment in fragments:
        assert fragment in item["message"], item["message"]
    return item["message"]


def template(client: TestClient, **fields) -> str:
    resp = client.post("/v1/clustertemplates", json={"coe": "swarm", "name": "tpl", "public": True, **fields})
    assert resp.status_code == 201, resp.text
    return resp.json()["uuid"]


def cluster(client: TestClient, token: str, name: str, expect: int = 202, **fields):
    resp = client.post("/v1/clusters", json={"cluster_template_id": "tpl", "name": name, **fields},
                       headers={"X-Auth-Token": token})
    assert resp.status_code == expect, resp.text
    return resp


def set_quota(client: TestClient, project: str, resource: str, limit: int) -> None:
    resp = client.post("/v1/quotas", json={"project_id": project, "resource": resource, "hard_limit": limit})
    assert resp.status_code == 201, resp.text


# -- Magnum's /v1/quotas ------------------------------------------------------------------


def test_magnum_quota_crud(env: Env, client: TestClient, member: tuple[str, str]) -> None:
    token, pid = member
    # Nothing set: the default (unlimited), with no id.
    shown = client.get(f"/v1/quotas/{pid}/Cluster").json()
    assert shown == {"id": None, "project_id": pid, "resource": "Cluster", "hard_limit": -1,
                     "created_at": None, "updated_at": None}
    resp = client.post("/v1/quotas", json={"project_id": pid, "resource": "Cluster", "hard_limit": 3})
    assert resp.status_code == 201
    made = resp.json()
    assert made["id"] and made["hard_limit"] == 3 and made["resource"] == "Cluster" and made["created_at"]
    # The project by name, and a resource in any case, are the same quota.
    assert_error(client.post("/v1/quotas", json={"project_id": "member", "resource": "cluster", "hard_limit": 4}),
                 409, "already exists")
    for resource, limit in (("Node", 10), ("Cores", 8), ("RAM", 4096)):
        set_quota(client, pid, resource, limit)
    # The member reads its own; only admins list.
    assert client.get(f"/v1/quotas/{pid}/Node", headers=env.headers(token)).json()["hard_limit"] == 10
    assert_error(client.get("/v1/quotas", headers=env.headers(token)), 403, "admin")
    assert client.get("/v1/quotas").json() == {"quotas": []}  # the admin's own project has none
    listed = client.get("/v1/quotas?all_tenants=True").json()["quotas"]
    assert [(q["resource"], q["hard_limit"]) for q in listed] == [("Cluster", 3), ("Node", 10), ("Cores", 8),
                                                                   ("RAM", 4096)]
    page = client.get("/v1/quotas?all_tenants=True&limit=2").json()
    assert len(page["quotas"]) == 2 and "marker=" in page["next"]
    rest = client.get(page["next"].removeprefix("http://testserver")).json()["quotas"]
    assert [q["resource"] for q in rest] == ["Cores", "RAM"]

    resp = client.patch(f"/v1/quotas/{pid}/Cluster", json={"project_id": pid, "resource": "Cluster",
                                                             "hard_limit": 5})
    assert resp.status_code == 202 and resp.json()["hard_limit"] == 5 and resp.json()["updated_at"]
    assert client.delete(f"/v1/quotas/{pid}/Cluster").status_code == 204
    assert client.get(f"/v1/quotas/{pid}/Cluster").json()["id"] is None
    assert_error(client.delete(f"/v1/quotas/{pid}/Cluster"), 404, "could not be found")
    assert_error(client.patch(f"/v1/quotas/{pid}/Cluster", json={"hard_limit": 1}), 404, "create one")


@pytest.mark.parametrize(("method", "path", "body", "status", "fragment"), [
    ("post", "/v1/quotas", {"project_id": "member", "resource": "Cluster", "hard_limit": -2}, 400, "hard_limit"),
    ("post", "/v1/quotas", {"project_id": "member", "resource": "Cluster", "hard_limit": 1.5}, 400, "hard_limit"),
    ("post", "/v1/quotas", {"project_id": "member", "resource": "Cluster", "hard_limit": "3"}, 400, "hard_limit"),
    ("post", "/v1/quotas", {"project_id": "member", "resource": "Cluster", "hard_limit": True}, 400, "hard_limit"),
    ("post", "/v1/quotas", {"project_id": "member", "resource": "Cluster", "hard_limit": 2**31}, 400, "hard_limit"),
    ("post", "/v1/quotas", {"project_id": "member", "resource": "Cluster"}, 400, "hard_limit"),
    ("post", "/v1/quotas", {"project_id": "member", "resource": "Volume", "hard_limit": 1}, 400, "Invalid resource"),
    ("post", "/v1/quotas", {"project_id": "member", "resource": "shares", "hard_limit": 1}, 400, "Invalid resource"),
    ("post", "/v1/quotas", {"resource": "Cluster", "hard_limit": 1}, 400, "project ID"),
    ("post", "/v1/quotas", {"project_id": "no-such", "resource": "Cluster", "hard_limit": 1}, 400, "no-such"),
    ("post", "/v1/quotas", {"project_id": "member", "resource": "Cluster", "hard_limit": 1, "x": 1}, 400, "'x'"),
    ("patch", "/v1/quotas/member/Cluster", {"hard_limit": -5}, 400, "hard_limit"),
    ("patch", "/v1/quotas/member/Bogus", {"hard_limit": 5}, 400, "Invalid resource"),
    ("patch", "/v1/quotas/no-such/Cluster", {"hard_limit": 5}, 404, "no-such"),
    ("get", "/v1/quotas/member/Bogus", None, 400, "Invalid resource"),
    ("get", "/v1/quotas?limit=0", None, 400, "Limit"),
    ("get", "/v1/quotas?sort_key=bogus", None, 400, "sort_key"),
    ("get", "/v1/quotas?marker=999", None, 400, "marker"),
    ("get", "/v1/stats?type=nodes", None, 400, "stats type"),
    ("get", "/v1/stats?project_id=no-such", None, 404, "no-such"),
    ("delete", "/v1/quotas/member/Bogus", None, 400, "Invalid resource"),
])
def test_magnum_bad_input_changes_nothing(env: Env, client: TestClient, member, method, path, body, status,
                                          fragment) -> None:
    client.post("/v1/quotas", json={"project_id": "member", "resource": "Cluster", "hard_limit": 2})
    before = quota_rows(env)
    kwargs = {"json": body} if body is not None else {}
    assert_error(getattr(client, method)(path, **kwargs), status, fragment)
    assert quota_rows(env) == before


def test_magnum_quotas_are_for_admins(env: Env, client: TestClient, member) -> None:
    token, pid = member
    other = env.new_project("other")
    set_quota(client, pid, "Cluster", 2)
    before = quota_rows(env)
    as_member = env.headers(token)
    assert_error(client.post("/v1/quotas", json={"project_id": pid, "resource": "Node", "hard_limit": 9},
                             headers=as_member), 403, "admin")
    assert_error(client.patch(f"/v1/quotas/{pid}/Cluster", json={"hard_limit": 9}, headers=as_member), 403, "admin")
    assert_error(client.delete(f"/v1/quotas/{pid}/Cluster", headers=as_member), 403, "admin")
    # Another project's quotas and stats are not the member's to see.
    assert_error(client.get(f"/v1/quotas/{pid}/Cluster", headers=env.headers(other)), 403, "admin")
    assert_error(client.get(f"/v1/stats?project_id={pid}", headers=env.headers(other)), 403, "admin")
    # Whether a project exists is not revealed to others.
    assert_error(client.get("/v1/stats?project_id=no-such", headers=env.headers(other)), 403, "admin")
    assert_error(client.get("/v1/quotas/no-such/Cluster", headers=env.headers(other)), 403, "admin")
    assert quota_rows(env) == before


def test_stats(env: Env, client: TestClient, member) -> None:
    token, pid = member
    template(client)
    cluster(client, token, "a", node_count=2)
    cluster(client, token, "b", node_count=0, master_count=3)
    cluster(client, env.admin_token, "mine", node_count=1)
    assert client.get("/v1/stats", headers=env.headers(token)).json() == {"clusters": 2, "nodes": 6}
    assert client.get(f"/v1/stats?project_id={pid}", headers=env.headers(token)).json() == {"clusters": 2,
                                                                                            "nodes": 6}
    assert client.get("/v1/stats?project_id=member", headers=env.headers(token)).json()["clusters"] == 2
    assert client.get("/v1/quotas/member/RAM", headers=env.headers(token)).json()["project_id"] == pid
    assert client.get("/v1/stats?project_id=member").json() == {"clusters": 2, "nodes": 6}
    assert client.get("/v1/stats").json() == {"clusters": 3, "nodes": 8}  # an admin, no project: all


# -- enforcement on clusters ---------------------------------------------------------------


def test_cluster_count_at_the_edge(env: Env, client: TestClient, member) -> None:
    token, pid = member
    template(client)
    set_quota(client, pid, "Cluster", 2)
    cluster(client, token, "c1")
    cluster(client, token, "c2")  # exactly at the limit
    before = quota_rows(env)
    err = assert_error(cluster(client, token, "c3", expect=403), 403)
    assert err["detail"] == "Quota exceeded for Cluster: 2 of 2 used, 1 requested"
    assert quota_rows(env) == before
    # Another project is not limited by this one's quota; -1 lifts the limit.
    cluster(client, env.admin_token, "admins")
    client.patch(f"/v1/quotas/{pid}/Cluster", json={"hard_limit": -1})
    cluster(client, token, "c3")


def test_nodes_cores_and_ram_from_flavors(env: Env, client: TestClient, member) -> None:
    token, pid = member
    template(client, flavor_id="m1.medium", master_flavor_id="m1.large")  # 2 vCPU 4096 MiB; 4 vCPU 8192 MiB
    set_quota(client, pid, "Cores", 4 + 2 * 3)
    set_quota(client, pid, "RAM", 8192 + 4096 * 3)
    set_quota(client, pid, "Node", 5)
    cluster(client, token, "sized", node_count=3)  # 4 nodes, exactly 10 vCPUs and 20480 MiB
    before = quota_rows(env)
    err = assert_error(cluster(client, token, "tiny", expect=403, node_count=0, master_flavor_id="m1.tiny"), 403)
    assert err["detail"] == "Quota exceeded for Cores: 10 of 10 used, 1 requested"
    assert quota_rows(env) == before
    client.patch(f"/v1/quotas/{pid}/Cores", json={"hard_limit": -1})
    err = assert_error(cluster(client, token, "tiny", expect=403, node_count=0, master_flavor_id="m1.tiny"), 403)
    assert err["detail"] == "Quota exceeded for RAM: 20480 MiB of 20480 MiB used, 512 MiB requested"
    client.patch(f"/v1/quotas/{pid}/RAM", json={"hard_limit": -1})
    # A flavor not in the catalog is refused before any quota is counted, changing nothing.
    before = quota_rows(env)
    err = assert_error(cluster(client, token, "odd", expect=400, node_count=0, master_flavor_id="no-such-flavor"),
                       400)
    assert err["detail"] == "Unable to find flavor no-such-flavor."
    assert quota_rows(env) == before
    # A cluster row older than the check that names an unknown flavor counts as the default, m1.small.
    assert client.get(f"/v1/quotas/{pid}/Node").json()["hard_limit"] == 5
    cluster(client, token, "odd", node_count=0, master_flavor_id="m1.tiny")  # 5 nodes: the limit
    with env.db.session() as s:
        odd = s.scalars(select(Cluster).where(Cluster.name == "odd")).one()
        odd.master_flavor_id = "no-such-flavor"
        for group in s.scalars(select(NodeGroup).where(NodeGroup.cluster_id == odd.id, NodeGroup.role == "master")):
            group.flavor_id = "no-such-flavor"
        assert quotas.cluster_usage(s, pid)[quotas.CORES] == 10 + 1  # m1.small's 1 vCPU
        assert quotas.cluster_usage(s, pid)[quotas.RAM] == 20480 + 2048
    err = assert_error(cluster(client, token, "over", expect=403, node_count=0), 403)
    assert err["detail"] == "Quota exceeded for Node: 5 of 5 used, 1 requested"
    assert client.delete(f"/v1/quotas/{pid}/Node").status_code == 204
    cluster(client, token, "over", node_count=0)


def test_nodegroups_count_at_their_own_flavors(env: Env, client: TestClient, member) -> None:
    """A cluster with nodegroup rows counts each group's nodes at its flavor (the default-master
    group at the cluster's master_count), a resize only changing its default worker group."""
    token, pid = member
    template(client, flavor_id="m1.medium", master_flavor_id="m1.large")  # 2 vCPU 4096 MiB; 4 vCPU 8192 MiB
    uuid = cluster(client, token, "grouped", node_count=2).json()["uuid"]
    with env.db.session() as s:
        c = s.scalars(select(Cluster).where(Cluster.uuid == uuid)).one()
        if not s.scalars(select(NodeGroup).where(NodeGroup.cluster_id == c.id)).first():
            for name, role, count in (("default-master", "master", 1), ("default-worker", "worker", 2)):
                s.add(NodeGroup(cluster_id=c.id, project_id=pid, name=name, role=role, is_default=True,
                                node_count=count))
        # A group of its own: 3 nodes of m1.xlarge (8 vCPUs, 16384 MiB each).
        s.add(NodeGroup(cluster_id=c.id, project_id=pid, name="big", role="worker", flavor_id="5", node_count=3))
        s.flush()
        used = quotas.cluster_usage(s, pid)
        assert used == {quotas.CLUSTERS: 1, quotas.NODES: 1 + 2 + 3, quotas.CORES: 4 + 2 * 2 + 3 * 8,
                        quotas.RAM: 8192 + 2 * 4096 + 3 * 16384}
        assert quotas.cluster_size(s, c) == {k: v for k, v in used.items() if k != quotas.CLUSTERS}
        # Four default workers instead of two: two more m1.medium.
        grown = quotas.cluster_size(s, c, 4)
        assert (grown[quotas.NODES], grown[quotas.CORES]) == (8, used[quotas.CORES] + 2 * 2)
        assert quotas.nodegroup_size(s, "m1.tiny", 3) == {quotas.NODES: 3, quotas.CORES: 3, quotas.RAM: 3 * 512}
        assert quotas.nodegroup_size(s, None, 1) == {quotas.NODES: 1, quotas.CORES: 1, quotas.RAM: 2048}
    set_quota(client, pid, "Cores", 4 + 2 * 2 + 3 * 8 + 2)  # room for one more m1.medium worker, not two
    as_member = env.headers(token)
    env.finish_create(uuid)
    err = assert_error(client.post(f"/v1/clusters/{uuid}/actions/resize", json={"node_count": 4},
                                   headers=as_member), 403)
    assert err["detail"] == "Quota exceeded for Cores: 32 of 34 used, 4 requested"
    resp = client.post(f"/v1/clusters/{uuid}/actions/resize", json={"node_count": 3}, headers=as_member)
    assert resp.status_code == 202, resp.text
    with env.db.session() as s:
        # While the resize runs, the default worker group counts at its target; an update of
        # another group counts that group at its target instead.
        assert quotas.cluster_usage(s, pid)[quotas.NODES] == 1 + 3 + 3
        (op,) = [o for o in s.scalars(select(Operation)) if o.state in ACTIVE]
        big = s.scalars(select(NodeGroup).where(NodeGroup.name == "big")).one()
        op.params = {"nodegroup": big.uuid, "node_count": 5}
        s.flush()
        assert quotas.cluster_usage(s, pid)[quotas.NODES] == 1 + 2 + 5
        assert quotas.counted_workers(s, s.scalars(select(Cluster).where(Cluster.uuid == uuid)).one()) == 2


def test_resize_at_the_edge(env: Env, client: TestClient, member) -> None:
    token, pid = member
    template(client)
    set_quota(client, pid, "Node", 4)
    uuid = cluster(client, token, "r", node_count=1).json()["uuid"]
    env.finish_create(uuid)
    as_member = env.headers(token)
    before = quota_rows(env)
    err = assert_error(client.patch(f"/v1/clusters/{uuid}", json=[{"op": "replace", "path": "/node_count",
                                                                   "value": 4}], headers=as_member), 403)
    assert err["detail"] == "Quota exceeded for Node: 2 of 4 used, 3 requested"
    err = assert_error(client.post(f"/v1/clusters/{uuid}/actions/resize", json={"node_count": 4},
                                   headers=as_member), 403)
    assert err["detail"] == "Quota exceeded for Node: 2 of 4 used, 3 requested"
    assert quota_rows(env) == before
    # Exactly to the limit passes; while it runs the cluster counts at its target size.
    resp = client.post(f"/v1/clusters/{uuid}/actions/resize", json={"node_count": 3}, headers=as_member)
    assert resp.status_code == 202, resp.text
    err = assert_error(cluster(client, token, "more", expect=403, node_count=0), 403)
    assert err["detail"] == "Quota exceeded for Node: 4 of 4 used, 1 requested"
    env.finish_create(uuid, node_count=3)
    with env.db.session() as s:  # the engine settles the default worker group's count too
        s.scalars(select(NodeGroup).where(NodeGroup.name == "default-worker", NodeGroup.project_id == pid)
                  ).one().node_count = 3
    # Shrinking is always allowed, even under a lowered quota.
    client.patch(f"/v1/quotas/{pid}/Node", json={"hard_limit": 1})
    resp = client.patch(f"/v1/clusters/{uuid}", json=[{"op": "replace", "path": "/node_count", "value": 2}],
                        headers=as_member)
    assert resp.status_code == 202, resp.text


def test_env_defaults(env: Env, client: TestClient, member, monkeypatch: pytest.MonkeyPatch, tmp_path,
                      migrated_db) -> None:
    from .conftest import make_env

    monkeypatch.setenv("FLOE_QUOTA_CLUSTERS", "1")
    monkeypatch.setenv("FLOE_SHARE_QUOTA_SHARES", "7")
    other = make_env(tmp_path / "other-home", migrated_db)
    try:
        with TestClient(other.app, headers=other.headers()) as c:
            admin = project_id(other, identity.ADMIN_PROJECT)
            assert c.get(f"/v1/quotas/{admin}/Cluster").json()["hard_limit"] == 1
            assert c.get(f"/v2/quota-sets/{admin}/defaults", headers=M).json()["quota_set"]["shares"] == 7
            template(c)
            cluster(c, other.admin_token, "one")
            assert_error(cluster(c, other.admin_token, "two", expect=403), 403, "1 of 1 used")
    finally:
        other.runtime.engine.stop(wait=False)  # type: ignore[union-attr]
        other.db.dispose()
    monkeypatch.setenv("FLOE_QUOTA_RAM", "lots")
    with pytest.raises(ValueError, match="FLOE_QUOTA_RAM"):
        make_env(tmp_path / "bad-home", migrated_db)


# -- Manila's quota sets ----------------------------------------------------------------------


def test_manila_quota_set_crud(env: Env, client: TestClient, member) -> None:
    token, pid = member
    shown = client.get(f"/v2/quota-sets/{pid}", headers=M).json()["quota_set"]
    assert shown == {"id": pid, "shares": 50, "gigabytes": 1000, "snapshots": 0, "snapshot_gigabytes": 0,
                     "share_networks": 0}
    resp = client.put(f"/v2/quota-sets/{pid}", json={"quota_set": {"tenant_id": pid, "shares": 2, "gigabytes": "5"}},
                      headers=M)
    assert resp.status_code == 200, resp.text
    assert resp.json()["quota_set"]["shares"] == 2 and resp.json()["quota_set"]["gigabytes"] == 5
    # The member sees its own, through the legacy path too, and with usage in detail.
    assert client.get(f"/v2/os-quota-sets/{pid}", headers=env.headers(token, **M)).json()["quota_set"]["shares"] == 2
    make = {"share": {"share_proto": "LOCALFS", "size": 2}}
    assert client.post("/v2/shares", json=make, headers=env.headers(token, **M)).status_code == 202
    detail = client.get(f"/v2/quota-sets/{pid}/detail", headers=env.headers(token, **M)).json()["quota_set"]
    assert detail["shares"] == {"limit": 2, "in_use": 1, "reserved": 0}
    assert detail["gigabytes"] == {"limit": 5, "in_use": 2, "reserved": 0}
    limits = client.get("/v2/limits", headers=env.headers(token, **M)).json()["limits"]["absolute"]
    assert (limits["maxTotalShares"], limits["totalSharesUsed"], limits["maxTotalShareGigabytes"]) == (2, 1, 5)
    assert client.get(f"/v2/quota-sets/{pid}/defaults", headers=M).json()["quota_set"]["gigabytes"] == 1000
    # Below what is used: refused unless forced (Manila's rule).
    fault(client.put(f"/v2/quota-sets/{pid}", json={"quota_set": {"gigabytes": 1}}, headers=M), 400,
          "smaller than already used")
    resp = client.put(f"/v2/quota-sets/{pid}", json={"quota_set": {"gigabytes": 1, "force": True}}, headers=M)
    assert resp.json()["quota_set"]["gigabytes"] == 1
    assert client.delete(f"/v2/quota-sets/{pid}", headers=M).status_code == 202
    assert client.get(f"/v2/quota-sets/{pid}", headers=M).json()["quota_set"]["gigabytes"] == 1000


@pytest.mark.parametrize(("method", "path", "body", "status", "fragment"), [
    ("put", "/v2/quota-sets/member", {"quota_set": {"shares": -2}}, 400, "-1 (unlimited)"),
    ("put", "/v2/quota-sets/member", {"quota_set": {"shares": "many"}}, 400, "should be integer"),
    ("put", "/v2/quota-sets/member", {"quota_set": {"shares": 1.5}}, 400, "should be integer"),
    ("put", "/v2/quota-sets/member", {"quota_set": {"shares": True}}, 400, "should be integer"),
    ("put", "/v2/quota-sets/member", {"quota_set": {"shares": 2**31}}, 400, "2147483647"),
    ("put", "/v2/quota-sets/member", {"quota_set": {"shares": 3, "gigabytes": -7}}, 400, "gigabytes"),
    ("put", "/v2/quota-sets/member", {"quota_set": {"volumes": 3}}, 400, "Bad key(s) volumes"),
    ("put", "/v2/quota-sets/member", {"quota_set": {"snapshots": 3}}, 400, "snapshots quota cannot be set"),
    ("put", "/v2/quota-sets/member", {"shares": 3}, 400, "quota_set"),
    ("put", "/v2/quota-sets/member?user_id=u", {"quota_set": {"shares": 3}}, 400, "user_id"),
    ("put", "/v2/quota-sets/member", {"quota_set": {"shares": 3, "share_type": "local"}}, 400, "share_type"),
    ("put", "/v2/quota-sets/no-such", {"quota_set": {"shares": 3}}, 404, "no-such"),
    ("delete", "/v2/quota-sets/no-such", None, 404, "no-such"),
    ("get", "/v2/quota-sets/no-such", None, 404, "no-such"),
    ("get", "/v2/quota-sets/member?share_type=local", None, 400, "share_type"),
])
def test_manila_bad_input_changes_nothing(env: Env, client: TestClient, member, method, path, body, status,
                                          fragment) -> None:
    client.put("/v2/quota-sets/member", json={"quota_set": {"shares": 4}}, headers=M)
    before = quota_rows(env)
    kwargs = {"json": body} if body is not None else {}
    fault(client.request(method.upper(), path, headers=M, **kwargs), status, fragment)
    assert quota_rows(env) == before


def test_manila_quota_sets_are_for_admins(env: Env, client: TestClient, member) -> None:
    token, pid = member
    other = env.new_project("other")
    before = quota_rows(env)
    fault(client.put(f"/v2/quota-sets/{pid}", json={"quota_set": {"shares": 100}}, headers=env.headers(token, **M)),
          403, "admin")
    fault(client.delete(f"/v2/quota-sets/{pid}", headers=env.headers(token, **M)), 403, "admin")
    fault(client.get(f"/v2/quota-sets/{pid}", headers=env.headers(other, **M)), 403, "admin")
    assert quota_rows(env) == before


def test_share_create_and_extend_at_the_edge(env: Env, client: TestClient, member) -> None:
    token, pid = member
    client.put(f"/v2/quota-sets/{pid}", json={"quota_set": {"shares": 2, "gigabytes": 10}}, headers=M)
    as_member = env.headers(token, **M)

    def create(size: int):
        return client.post("/v2/shares", json={"share": {"share_proto": "LOCALFS", "size": size}}, headers=as_member)

    first = create(4).json()["share"]["id"]
    assert create(6).status_code == 202  # exactly 10 GiB
    before = quota_rows(env)
    fault(create(1), 413, "Quota exceeded for shares: 2 of 2 used, 1 requested")
    client.put(f"/v2/quota-sets/{pid}", json={"quota_set": {"shares": -1}}, headers=M)
    fault(create(1), 413, "Quota exceeded for gigabytes: 10 GiB of 10 GiB used, 1 GiB requested")
    with env.db.session() as s:
        s.scalars(select(Share).where(Share.uuid == first)).one().status = "available"
    before = quota_rows(env)
    fault(client.post(f"/v2/shares/{first}/action", json={"extend": {"new_size": 5}}, headers=as_member), 413,
          "Quota exceeded for gigabytes: 10 GiB of 10 GiB used, 1 GiB requested")
    assert quota_rows(env) == before
    client.put(f"/v2/quota-sets/{pid}", json={"quota_set": {"gigabytes": 11}}, headers=M)
    resp = client.post(f"/v2/shares/{first}/action", json={"extend": {"new_size": 5}}, headers=as_member)
    assert resp.status_code == 202, resp.text  # exactly to the limit
    client.put(f"/v2/quota-sets/{pid}", json={"quota_set": {"gigabytes": -1}}, headers=M)
    assert create(500).status_code == 202

"""Project networks through the real API (/v1/floe/networks, /v1/floe/clusters/{ident}/networks)
on a real SQLite database, and the services' address helpers for the engine.

No provider runs here (the API tests' env): deleting a network only forgets it; the local
provider's side is tested in tests/providers/test_node_networks.py.
"""

from __future__ import annotations

import ipaddress
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from floe import ipam
from floe.db.models import AddressAllocation, Cluster, ClusterNetwork, Network, Node, NodeInterface, Operation
from floe.errors import Conflict
from floe.services import networks as svc

from .conftest import Env, assert_error

NETS = "/v1/floe/networks"


@pytest.fixture(autouse=True)
def infra(env: Env) -> None:
    """The server reserves floe's infra /24 at start (build_runtime): do as it does."""
    with env.db.session() as s:
        ipam.ensure_infra(s, env.runtime.settings.network)


def _rows(env: Env) -> dict[str, list]:
    """The rows a network request may write, to prove a refused one changed nothing."""
    out: dict[str, list] = {}
    with env.db.session() as s:
        for model in (Network, ClusterNetwork, AddressAllocation, Operation, NodeInterface):
            cols = [c.key for c in model.__table__.columns]
            out[model.__tablename__] = [tuple(getattr(r, k) for k in cols)
                                        for r in s.scalars(select(model).order_by(model.id))]
    return out


def _cluster(env: Env, client: TestClient, name: str = "c1", token: str | None = None) -> str:
    headers = env.headers(token)
    client.post("/v1/clustertemplates", json={"coe": "swarm", "name": f"tpl-{name}"}, headers=headers)
    resp = client.post("/v1/clusters", json={"cluster_template_id": f"tpl-{name}", "name": name}, headers=headers)
    assert resp.status_code == 202, resp.text
    uuid = resp.json()["uuid"]
    env.finish_create(uuid)
    return uuid


# -- create, list, show, delete --------------------------------------------------------------


def test_create_list_show_delete(env: Env, client: TestClient) -> None:
    resp = client.post(NETS, json={"name": "data"})
    assert resp.status_code == 201, resp.text
    net = resp.json()
    assert set(net) == {"uuid", "name", "cidr", "project_id", "status", "created_at", "clusters"}
    assert net["name"] == "data" and net["status"] == "ACTIVE" and net["clusters"] == []
    cidr = ipaddress.IPv4Network(net["cidr"])
    assert cidr.prefixlen == 24 and cidr.subnet_of(env.runtime.settings.network)
    assert cidr != ipam.infra_subnet(env.runtime.settings.network)
    second = client.post(NETS, json={"name": "more", "cidr": None}).json()  # null cidr: the default
    assert ipaddress.IPv4Network(second["cidr"]).prefixlen == 24 and second["cidr"] != net["cidr"]

    listed = client.get(NETS).json()["networks"]
    assert [n["name"] for n in listed] == ["data", "more"]
    assert client.get(f"{NETS}/data").json() == net
    assert client.get(f"{NETS}/{net['uuid']}").json() == net
    assert client.get(f"{NETS}/{net['uuid'].upper()}").json()["uuid"] == net["uuid"]
    with env.db.session() as s:
        row = s.scalars(select(AddressAllocation).where(AddressAllocation.owner == net["uuid"])).one()
        assert (row.cidr, row.purpose) == (net["cidr"], "project-net")
        assert len(s.scalars(select(Network.host_tag)).all()) == 2

    resp = client.delete(f"{NETS}/data")
    assert resp.status_code == 204 and resp.content == b""
    assert_error(client.get(f"{NETS}/data"), 404, "Network data could not be found")
    assert_error(client.delete(f"{NETS}/data"), 404)
    with env.db.session() as s:
        assert s.scalars(select(AddressAllocation).where(AddressAllocation.owner == net["uuid"])).first() is None
    # Its block is free again: the next network gets it.
    assert client.post(NETS, json={"name": "again"}).json()["cidr"] == net["cidr"]


def test_names_at_the_limits(env: Env, client: TestClient) -> None:
    longest = "n" * 255
    assert client.post(NETS, json={"name": longest}).status_code == 201
    assert client.get(f"{NETS}/{longest}").json()["name"] == longest
    unicode = "réseau-数据-١٢٣"  # Arabic-Indic digits, CJK, accents
    created = client.post(NETS, json={"name": unicode})
    assert created.status_code == 201, created.text
    assert client.get(f"{NETS}/{unicode}").json()["uuid"] == created.json()["uuid"]
    assert client.delete(f"{NETS}/{unicode}").status_code == 204
    before = _rows(env)
    for bad in ("n" * 256, "", None, 42, " padded", "tab\tname", "nul\x00", "a,b", "a/b", ".", ".."):
        resp = client.post(NETS, json={"name": bad})
        assert resp.status_code == 400, (bad, resp.text)
    assert_error(client.post(NETS, json={"name": "x", "colour": "red"}), 400, "colour")
    assert_error(client.post(NETS, json={}), 400, "name")
    assert_error(client.post(NETS, content=b"{", headers={"Content-Type": "application/json"}), 400, "JSON")
    assert_error(client.post(NETS, json={"name": longest}), 409, "already exists")
    assert _rows(env) == before


@pytest.mark.parametrize("cidr,status,fragment", [
    ("10.200.0.0/24", 400, "inside floe's address range"),  # outside 10.160.0.0/12
    ("10.160.0.0/24", 409, "not free"),  # floe's infra /24
    ("10.170.0.0/30", 400, "/16 to /29"),
    ("10.170.0.0/15", 400, "/16 to /29"),
    ("10.170.0.0/32", 400, "/16 to /29"),
    ("10.170.0.1/24", 400, "did you mean 10.170.0.0/24"),
    ("10.170.0.0", 400, "expected an IPv4 network"),
    ("fd00::/64", 400, "Invalid cidr"),
    ("10.170.0.0/24; rm -rf /", 400, "Invalid cidr"),
    ("１０.170.0.0/24", 400, "Invalid cidr"),  # full-width digits
    ("010.170.0.0/24", 400, "Invalid cidr"),
    ("", 400, "Invalid cidr"),
])
def test_cidr_validation(env: Env, client: TestClient, cidr: str, status: int, fragment: str) -> None:
    before = _rows(env)
    assert_error(client.post(NETS, json={"name": "n", "cidr": cidr}), status, fragment)
    assert _rows(env) == before


def test_chosen_cidrs_are_reserved_and_never_overlap(env: Env, client: TestClient) -> None:
    ok = client.post(NETS, json={"name": "big", "cidr": "10.170.0.0/16"})
    assert ok.status_code == 201 and ok.json()["cidr"] == "10.170.0.0/16"
    small = client.post(NETS, json={"name": "small", "cidr": "10.171.4.0/29"})
    assert small.status_code == 201, small.text
    before = _rows(env)
    assert_error(client.post(NETS, json={"name": "inside", "cidr": "10.170.9.0/24"}), 409,
                 "overlaps 10.170.0.0/16 (project-net)")
    assert_error(client.post(NETS, json={"name": "around", "cidr": "10.171.0.0/16"}), 409, "10.171.4.0/29")
    assert_error(client.post(NETS, json={"name": "same", "cidr": "10.171.4.0/29"}), 409, "not free")
    assert _rows(env) == before
    # Clusters' allocations never land in a reserved block either.
    with env.db.session() as s:
        blocks = ipam.allocate(s, env.runtime.settings.network, 16, "cluster-net", "test", count=3)
        assert all(not b.overlaps(ipaddress.IPv4Network("10.170.0.0/16")) for b in blocks)
        ipam.release_owner(s, "test")


def test_reserve_is_safe_under_concurrency(env: Env) -> None:
    """Threads reserving overlapping blocks and allocating at once: no two blocks ever overlap."""
    network = env.runtime.settings.network
    results: list[Any] = []

    def reserve(cidr: str) -> None:
        try:
            with env.db.session() as s:
                results.append(ipam.reserve(s, cidr, "project-net", f"o-{cidr}", address_range=network))
        except Conflict as exc:
            results.append(exc)

    def allocate() -> None:
        with env.db.session() as s:
            results.extend(ipam.allocate(s, network, 22, "cluster-net", "racer"))

    threads = [threading.Thread(target=reserve, args=(c,)) for c in
               ("10.160.4.0/22", "10.160.4.0/24", "10.160.6.0/23", "10.160.0.0/16")]
    threads += [threading.Thread(target=allocate) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    with env.db.session() as s:
        cidrs = [ipaddress.IPv4Network(c) for c in s.scalars(select(AddressAllocation.cidr))]
    for i, a in enumerate(cidrs):
        assert not any(a.overlaps(b) for b in cidrs[i + 1:]), cidrs
    assert any(isinstance(r, Conflict) for r in results)  # the /16 at least overlaps the infra /24


def test_projects_do_not_see_each_others_networks(env: Env, client: TestClient) -> None:
    other = env.new_project("beta")
    mine = client.post(NETS, json={"name": "shared-name"}).json()
    theirs = client.post(NETS, json={"name": "shared-name"}, headers=env.headers(other))
    assert theirs.status_code == 201  # names are unique per project, not across projects
    theirs = theirs.json()
    assert theirs["cidr"] != mine["cidr"] and theirs["project_id"] != mine["project_id"]
    assert client.get(f"{NETS}/shared-name", headers=env.headers(other)).json()["uuid"] == theirs["uuid"]
    assert_error(client.get(f"{NETS}/{mine['uuid']}", headers=env.headers(other)), 404)
    assert [n["uuid"] for n in client.get(NETS, headers=env.headers(other)).json()["networks"]] == [theirs["uuid"]]
    before = _rows(env)
    assert_error(client.delete(f"{NETS}/{mine['uuid']}", headers=env.headers(other)), 404)
    assert _rows(env) == before
    # Attaching another project's network to one's cluster: not found (a bad reference).
    cluster = _cluster(env, client, "beta-c", token=other)
    before = _rows(env)
    assert_error(client.post(f"/v1/floe/clusters/{cluster}/networks", json={"network": mine["uuid"]},
                             headers=env.headers(other)), 400, "could not be found")
    assert_error(client.post(f"/v1/floe/clusters/{cluster}/networks", json={"network": theirs["uuid"]}),
                 404, "Cluster")
    assert _rows(env) == before


def test_project_network_limit(env: Env, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(svc, "MAX_PROJECT_NETWORKS", 2)
    for name in ("a", "b"):
        assert client.post(NETS, json={"name": name}).status_code == 201
    before = _rows(env)
    assert_error(client.post(NETS, json={"name": "c"}), 403, "Quota exceeded for networks")
    assert _rows(env) == before


# -- attaching to clusters ---------------------------------------------------------------------


def test_attach_queues_the_operation_and_delete_is_refused_while_attached(env: Env, client: TestClient) -> None:
    cluster = _cluster(env, client)
    client.post(NETS, json={"name": "front"})
    client.post(NETS, json={"name": "back"})
    env.engine_woken()
    resp = client.post(f"/v1/floe/clusters/{cluster}/networks", json={"network": "front"})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["interface"] == "eth1" and body["network_name"] == "front" and body["cluster_uuid"] == cluster
    assert env.engine_woken()
    ops = env.operations(cluster)
    assert ops[-1].kind == "attach_network" and ops[-1].state == "pending"
    assert ops[-1].params == {"network": body["network_uuid"]}
    assert env.cluster(cluster).status == "UPDATE_IN_PROGRESS"
    assert client.get(f"{NETS}/front").json()["clusters"] == ["c1"]

    before = _rows(env)
    # Another operation runs: refused, nothing recorded.
    assert_error(client.post(f"/v1/floe/clusters/{cluster}/networks", json={"network": "back"}), 409,
                 "operation in progress")
    env.finish_create(cluster)
    before = _rows(env)
    assert_error(client.post(f"/v1/floe/clusters/{cluster}/networks", json={"network": "front"}), 409,
                 "already attached")
    assert_error(client.delete(f"{NETS}/front"), 409, "attached to cluster(s) c1")
    assert_error(client.post(f"/v1/floe/clusters/{cluster}/networks", json={"network": "nope"}), 400,
                 "Network nope could not be found")
    assert_error(client.post(f"/v1/floe/clusters/{cluster}/networks", json={}), 400, "network")
    assert_error(client.post(f"/v1/floe/clusters/{cluster}/networks", json={"network": None}), 400)
    assert_error(client.post("/v1/floe/clusters/nope/networks", json={"network": "front"}), 404)
    assert _rows(env) == before

    # The next network is eth2; the cluster lists both in order.
    assert client.post(f"/v1/floe/clusters/{cluster}/networks", json={"network": "back"}).json()["interface"] == "eth2"
    listed = client.get(f"/v1/floe/clusters/{cluster}/networks").json()["networks"]
    assert [(a["interface"], a["network_name"]) for a in listed] == [("eth1", "front"), ("eth2", "back")]

    # A cluster being deleted takes no new network.
    env.finish_create(cluster)
    client.post(NETS, json={"name": "late"})
    assert client.delete(f"/v1/clusters/{cluster}").status_code == 204
    before = _rows(env)
    assert_error(client.post(f"/v1/floe/clusters/{cluster}/networks", json={"network": "late"}), 409,
                 "being deleted")
    assert _rows(env) == before
    # Once the cluster is gone (its rows cascade), the network can go.
    with env.db.session() as s:
        s.execute(delete(Cluster).where(Cluster.uuid == cluster))
    assert client.get(f"{NETS}/front").json()["clusters"] == []
    assert client.delete(f"{NETS}/front").status_code == 204


def test_cluster_network_limit(env: Env, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(svc, "MAX_CLUSTER_NETWORKS", 1)
    cluster = _cluster(env, client)
    client.post(NETS, json={"name": "one"})
    client.post(NETS, json={"name": "two"})
    assert client.post(f"/v1/floe/clusters/{cluster}/networks", json={"network": "one"}).status_code == 202
    env.finish_create(cluster)
    assert_error(client.post(f"/v1/floe/clusters/{cluster}/networks", json={"network": "two"}), 409,
                 "the most it can have")


def test_readers_cannot_change_networks(env: Env, client: TestClient) -> None:
    client.post(NETS, json={"name": "kept"})
    with env.db.session() as s:
        from floe.services import identity

        project = s.scalars(select(Network.project_id)).first()
        reader = identity.create_token(s, project, roles=("reader",), description="reader")
    before = _rows(env)
    assert client.get(f"{NETS}/kept", headers=env.headers(reader)).status_code == 200
    assert_error(client.post(NETS, json={"name": "x"}, headers=env.headers(reader)), 403, "reader")
    assert_error(client.delete(f"{NETS}/kept", headers=env.headers(reader)), 403, "reader")
    assert _rows(env) == before


# -- the engine's address helpers --------------------------------------------------------------


def test_allocate_interface_skips_the_first_address_and_fills_the_network(env: Env, client: TestClient) -> None:
    cluster = _cluster(env, client)
    client.post(NETS, json={"name": "tiny", "cidr": "10.170.0.0/29"})  # hosts .1-.6; .1 reserved
    client.post(f"/v1/floe/clusters/{cluster}/networks", json={"network": "tiny"})
    names = env.add_nodes(cluster, managers=1, workers=5)
    with env.db.session() as s:
        net = s.scalars(select(Network).where(Network.name == "tiny")).one()
        nodes = {n.name: n for n in s.scalars(select(Node).where(Node.name.in_(names)))}
        got = [svc.allocate_interface(s, net, nodes[n]) for n in names[:5]]
        assert [i.address for i in got] == [f"10.170.0.{k}" for k in range(2, 7)]
        assert {i.ifname for i in got} == {"eth1"}
        # Idempotent: a node asking again gets its own address back.
        assert svc.allocate_interface(s, net, nodes[names[0]]).id == got[0].id
        with pytest.raises(Conflict, match="is full"):
            svc.allocate_interface(s, net, nodes[names[5]])
        # Released addresses are handed out again (lowest first).
        assert svc.release_interfaces(s, [nodes[names[1]].id, nodes[names[3]].id]) == 2
        assert svc.allocate_interface(s, net, nodes[names[5]]).address == "10.170.0.3"
        assert svc.release_interfaces(s, []) == 0
        # A network the node's cluster does not use gives it nothing.
        other = Network(project_id=net.project_id, name="unused", cidr="10.170.1.0/24", host_tag="abcdef01")
        s.add(other)
        s.flush()
        with pytest.raises(Conflict, match="not attached"):
            svc.allocate_interface(s, other, nodes[names[0]])


def test_allocate_interface_settles_races(env: Env, client: TestClient) -> None:
    cluster = _cluster(env, client)
    client.post(NETS, json={"name": "race"})
    client.post(f"/v1/floe/clusters/{cluster}/networks", json={"network": "race"})
    names = env.add_nodes(cluster, managers=0, workers=8)
    errors: list[Exception] = []

    def one(name: str) -> None:
        try:
            with env.db.session() as s:
                net = s.scalars(select(Network).where(Network.name == "race")).one()
                node = s.scalars(select(Node).where(Node.name == name)).one()
                svc.allocate_interface(s, net, node)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with env.db.session() as s:
        addresses = list(s.scalars(select(NodeInterface.address)))
    assert len(addresses) == len(set(addresses)) == 8

"""Stock OpenStack clients against floe: the nulls they send, and the routes their common
commands call that floe has no feature behind (empty collections, or a 400 naming what is
supported instead of a bare 404/405)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import openstack
import pytest
from manilaclient import client as manila_client
from manilaclient import exceptions as manila_exceptions
from sqlalchemy import select

from floe.db.models import Share

from .conftest import Env, Live, assert_error

OPENSTACK = Path(sys.executable).parent / "openstack"


def _cluster(client, name: str) -> str:
    """A template and a CREATE_COMPLETE cluster of it (as the engine would leave it); its uuid."""
    resp = client.post("/v1/clustertemplates", json={"name": f"{name}-tpl", "coe": "swarm-mode"})
    assert resp.status_code == 201, resp.text
    resp = client.post("/v1/clusters", json={"name": name, "cluster_template_id": f"{name}-tpl"})
    assert resp.status_code == 202, resp.text
    return resp.json()["uuid"]


@pytest.fixture(scope="module")
def http(live: Live):
    with httpx.Client(base_url=live.url, headers={"X-Auth-Token": live.env.admin_token}, timeout=30) as c:
        yield c


def sdk(live: Live) -> openstack.connection.Connection:
    """openstacksdk with no Keystone: admin_token auth, every service at floe's own endpoints."""
    return openstack.connect(
        auth_type="admin_token",
        auth={"endpoint": live.url + "/v1", "token": live.env.admin_token},
        container_infrastructure_management_endpoint_override=live.url + "/v1",
        shared_file_system_endpoint_override=live.url + "/v2",
        load_yaml_config=False,
        load_envvars=False,
    )


# -- nulls the clients send ---------------------------------------------------------------


def test_sdk_resize_sends_null_nodes_to_remove(live: Live, http) -> None:
    """openstacksdk's Cluster.resize sends {"node_count": 2, "nodes_to_remove": null}."""
    uuid = _cluster(http, "sdk-resize")
    live.env.finish_create(uuid)
    conn = sdk(live)
    cluster = conn.container_infrastructure_management.get_cluster(uuid)
    try:
        assert cluster.resize(conn.container_infrastructure_management, node_count=2) == uuid
    except TypeError as exc:
        # openstacksdk 4.x reads the answer as `response['uuid']` on a requests Response: its own
        # bug, after the request succeeded (a 400 raises BadRequestException before that line).
        assert "not subscriptable" in str(exc)
    op = live.env.operations(uuid)[-1]
    assert (op.kind, op.params) == ("update", {"node_count": 2, "nodes_to_remove": []})


def test_sdk_create_with_options_left_none(live: Live, http) -> None:
    """openstacksdk puts every attribute it is given into the body, None included (as Ansible's
    modules and scripts pass options they leave unset)."""
    _cluster(http, "sdk-none")
    conn = sdk(live)
    made = conn.container_infrastructure_management.create_cluster(
        name="sdk-none-2", cluster_template_id="sdk-none-tpl", node_count=None, master_count=None,
        keypair=None, create_timeout=None, labels=None, flavor_id=None, master_flavor_id=None,
        discovery_url=None, docker_volume_size=None,
    )
    row = live.env.cluster(made.id)
    assert (row.name, row.node_count, row.master_count, row.create_timeout) == ("sdk-none-2", 1, 1, 60)


# Each body as the client builds it, with the nulls it sends for options left out.
NULL_BODIES = [
    # openstacksdk Cluster.resize (container_infrastructure_management/v1/cluster.py)
    ("sdk Cluster.resize", "resize", {"node_count": 2, "nodes_to_remove": None}),
    ("resize, nodegroup null", "resize", {"node_count": 2, "nodes_to_remove": None, "nodegroup": None}),
    # openstacksdk create_cluster(**attrs): every attribute given as None goes into the body
    ("sdk create_cluster", "create", {"name": "c-null", "cluster_template_id": "TPL", "node_count": None,
                                      "master_count": None, "keypair": None, "create_timeout": None,
                                      "discovery_url": None, "docker_volume_size": None, "labels": None,
                                      "flavor_id": None, "master_flavor_id": None, "merge_labels": None,
                                      "floating_ip_enabled": None, "master_lb_enabled": None,
                                      "fixed_network": None, "fixed_subnet": None}),
    # openstacksdk create_cluster_template(**attrs) with options left None
    ("sdk create_cluster_template", "template", {"name": "t-null", "coe": "swarm-mode", "image_id": None,
                                                 "keypair_id": None, "labels": None, "public": None,
                                                 "tls_disabled": None, "docker_volume_size": None,
                                                 "dns_nameserver": None, "master_lb_enabled": None,
                                                 "floating_ip_enabled": None, "hidden": None}),
    # magnumclient certificates.create / sdk ClusterCertificate: ca_cert_type unset or null
    ("certificate ca_cert_type null", "certificate", {"cluster_uuid": "CLUSTER", "csr": "CSR",
                                                      "ca_cert_type": None}),
]


def _csr() -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client")])).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize(("who", "kind", "body"), NULL_BODIES, ids=[b[0] for b in NULL_BODIES])
def test_null_bodies_accepted(env: Env, client, who: str, kind: str, body: dict) -> None:
    uuid = _cluster(client, "base")
    env.finish_create(uuid)
    env.give_ca(uuid)
    if kind == "resize":
        resp = client.post(f"/v1/clusters/{uuid}/actions/resize", json=body)
        assert resp.status_code == 202, resp.text
        assert env.operations(uuid)[-1].params == {"node_count": 2, "nodes_to_remove": []}
    elif kind == "create":
        resp = client.post("/v1/clusters", json=body | {"cluster_template_id": "base-tpl"})
        assert resp.status_code == 202, resp.text
        made = env.cluster("c-null")
        assert (made.node_count, made.master_count, made.create_timeout) == (1, 1, 60)
    elif kind == "template":
        resp = client.post("/v1/clustertemplates", json=body)
        assert resp.status_code == 201, resp.text
        assert resp.json()["public"] is False and resp.json()["tls_disabled"] is False
    else:
        resp = client.post("/v1/certificates", json=body | {"cluster_uuid": uuid, "csr": _csr()})
        assert resp.status_code == 201, resp.text


@pytest.mark.parametrize("body", [
    {"node_count": None},  # mandatory in Magnum too
    {"nodes_to_remove": None},
    {"node_count": 2, "nodes_to_remove": "n1"},
    {"node_count": 2, "unknown": None},
], ids=["node_count null", "node_count missing", "nodes_to_remove not a list", "unknown field"])
def test_resize_still_refuses(env: Env, client, body: dict) -> None:
    uuid = _cluster(client, "refuse")
    env.finish_create(uuid)
    before = env.snapshot()
    assert_error(client.post(f"/v1/clusters/{uuid}/actions/resize", json=body), 400)
    assert env.snapshot() == before


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/clusters", {"name": "x", "cluster_template_id": None}),
    ("/v1/clustertemplates", {"name": "x", "coe": None}),
    ("/v1/certificates", {"cluster_uuid": None, "csr": "x"}),
], ids=["cluster_template_id null", "coe null", "cluster_uuid null"])
def test_mandatory_fields_refuse_null(env: Env, client, path: str, body: dict) -> None:
    before = env.snapshot()
    resp = client.post(path, json=body)
    assert_error(resp, 400)
    assert env.snapshot() == before


def test_manila_bodies_with_nulls(env: Env, client) -> None:
    """manilaclient's action bodies carry null where an action takes no arguments
    ({"access_list": null}, {"force_delete": null}); the share routes read null as not given."""
    share = client.post("/v2/shares", json={"share": {
        "share_proto": "LOCALFS", "size": 1, "name": None, "description": None, "share_type": None,
        "metadata": None, "snapshot_id": None, "share_network_id": None, "share_group_id": None,
        "availability_zone": None, "is_public": None,
    }})
    if share.status_code == 409:  # this host cannot serve the local type (needs root)
        pytest.skip(share.json())
    assert share.status_code == 202, share.text
    sid = share.json()["share"]["id"]
    assert client.get(f"/v2/shares/{sid}/metadata").json() == {"metadata": {}}
    other = env.new_project("other")
    assert client.get(f"/v2/shares/{sid}/metadata", headers={"X-Auth-Token": other}).status_code == 404
    resp = client.post(f"/v2/shares/{sid}/action", json={"access_list": None})
    assert resp.status_code == 200 and resp.json() == {"access_list": []}, resp.text
    resp = client.post(f"/v2/shares/{sid}/action", json={"allow_access": {
        "access_type": "user", "access_to": "some-cluster", "access_level": None, "metadata": None}})
    assert resp.status_code == 200, resp.text
    assert resp.json()["access"]["access_level"] == "rw"


def test_share_types_advertise_no_snapshots(client) -> None:
    types = client.get("/v2/types").json()["share_types"]
    assert types
    for t in types:
        assert t["extra_specs"]["snapshot_support"] in ("False", False)
        specs = client.get(f"/v2/types/{t['id']}/extra_specs").json()["extra_specs"]
        assert specs["snapshot_support"] in ("False", False)


# -- routes floe answers without the feature -------------------------------------------------


def test_empty_and_refused_routes(env: Env, client) -> None:
    user = env.new_project("someone")
    uuid = _cluster(client, "routes")
    env.finish_create(uuid)
    for path, key in (("/v2/share-networks", "share_networks"), ("/v2/share-networks/detail", "share_networks"),
                      ("/v2/snapshots", "snapshots"), ("/v2/snapshots/detail", "snapshots")):
        resp = client.get(path, headers={"X-Auth-Token": user})
        assert resp.status_code == 200 and resp.json() == {key: []}, (path, resp.text)
        assert client.get(path, headers={"X-Auth-Token": ""}).status_code == 401
    resp = client.get("/v2/snapshots/abc")
    assert resp.status_code == 404 and "itemNotFound" in resp.json()
    before = env.snapshot()
    resp = client.post("/v2/snapshots", json={"snapshot": {"share_id": "x", "force": False, "name": None}})
    assert resp.status_code == 400 and "snapshot_support" in resp.json()["badRequest"]["message"], resp.text
    # Pools: admin only, as in Manila; one per share type.
    assert client.get("/v2/scheduler-stats/pools", headers={"X-Auth-Token": user}).status_code == 403
    pools = client.get("/v2/scheduler-stats/pools/detail").json()["pools"]
    assert {p["backend"] for p in pools} == {t["name"] for t in client.get("/v2/types").json()["share_types"]}
    assert all(p["capabilities"]["snapshot_support"] is False for p in pools)

    assert client.get("/v1/mservices", headers={"X-Auth-Token": user}).status_code == 403
    (service,) = client.get("/v1/mservices").json()["mservices"]
    assert service["binary"] == "floe-engine"
    assert_error(client.post(f"/v1/clusters/{uuid}/actions/upgrade", json={"cluster_template": "routes-tpl"}),
                 400, "not supported", "resize")
    # `coe ca rotate` is supported; this cluster has no CA yet.
    assert_error(client.patch(f"/v1/certificates/{uuid}"), 409, "still being created")
    # Another project's cluster is not found, not refused: nothing about it is revealed.
    assert_error(client.post(f"/v1/clusters/{uuid}/actions/upgrade", json={},
                             headers={"X-Auth-Token": user}), 404)
    assert_error(client.patch(f"/v1/certificates/{uuid}", headers={"X-Auth-Token": user}), 404)
    assert client.get("/v1/mservices", headers={"X-Auth-Token": ""}).status_code == 401
    assert env.snapshot() == before


# -- the real `openstack` CLI ------------------------------------------------------------------


def _one(live: Live, endpoint: str, *args: str) -> subprocess.CompletedProcess:
    """One `openstack` command, every service at `endpoint` (admin_token: no Keystone)."""
    cmd = [str(OPENSTACK), "--os-auth-type", "admin_token", "--os-endpoint", f"{live.url}{endpoint}",
           "--os-token", live.env.admin_token, *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


def _shares(env: Env) -> list[tuple]:
    with env.db.session() as s:
        return [(r.uuid, r.status, r.size) for r in s.scalars(select(Share).order_by(Share.id))]


@pytest.mark.skipif(not OPENSTACK.exists(), reason="python-openstackclient is not installed")
def test_openstack_cli_share_commands(live: Live) -> None:
    for args, want in ((("share", "network", "list", "-f", "json"), "[]"),
                       (("share", "snapshot", "list", "-f", "json"), "[]"),
                       (("share", "pool", "list", "-f", "json"), "local")):
        proc = _one(live, "/v2", *args)
        assert proc.returncode == 0 and want in proc.stdout, (args, proc.stdout, proc.stderr)
    # A real share, so that the CLI gets past its lookup to POST /v2/snapshots.
    resp = httpx.post(f"{live.url}/v2/shares", headers={"X-Auth-Token": live.env.admin_token},
                      json={"share": {"share_proto": "LOCALFS", "size": 1, "name": "snap-me"}})
    if resp.status_code == 409:
        pytest.skip(f"this host cannot serve the local share type: {resp.text}")
    assert resp.status_code == 202, resp.text
    before = _shares(live.env)
    proc = _one(live, "/v2", "share", "snapshot", "create", "snap-me", "--name", "s1")
    # manilaclient's OSC plugin fails before its request below microversion 2.73 (floe serves up
    # to 2.65): `property` is unbound there. The same call through manilaclient reaches floe.
    assert proc.returncode != 0, proc.stdout
    mc = manila_client.Client("2.65", input_auth_token=live.env.admin_token, service_catalog_url=live.url + "/v2")
    with pytest.raises(manila_exceptions.BadRequest, match="snapshot_support is False"):
        mc.share_snapshots.create(resp.json()["share"]["id"], name="s1")
    assert _shares(live.env) == before


@pytest.mark.skipif(not OPENSTACK.exists(), reason="python-openstackclient is not installed")
def test_openstack_cli_coe_commands(live: Live, http) -> None:
    uuid = _cluster(http, "cli-unsupported")
    live.env.finish_create(uuid)
    live.env.give_ca(uuid)
    proc = _one(live, "/v1", "coe", "service", "list", "-f", "json")
    assert proc.returncode == 0 and "floe-engine" in proc.stdout, proc.stderr
    before = live.env.snapshot()
    for args in (("coe", "cluster", "upgrade", "cli-unsupported", "cli-unsupported-tpl"),):
        proc = _one(live, "/v1", *args)
        out = proc.stdout + proc.stderr
        assert "not supported" in out, (args, out)
        assert proc.returncode != 0 or "HTTP 400" in out, (args, out)
    assert live.env.snapshot() == before
    # `coe ca rotate` queues a rotation (PATCH /v1/certificates/{uuid}, no body, 202).
    proc = _one(live, "/v1", "coe", "ca", "rotate", "cli-unsupported")
    assert proc.returncode == 0 and "has been accepted" in proc.stdout, proc.stderr
    assert live.env.cluster(uuid).status == "UPDATE_IN_PROGRESS"
    assert live.env.operations(uuid)[-1].kind == "rotate_ca"


def test_discovery_lists_mservices(client) -> None:
    doc = client.get("/v1").json()
    self_link, bookmark = doc["mservices"]
    assert client.get(self_link["href"].removeprefix("http://testserver")).status_code == 200
    assert client.get(bookmark["href"].removeprefix("http://testserver")).status_code == 200

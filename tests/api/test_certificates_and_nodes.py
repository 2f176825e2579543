"""/v1/certificates (what `openstack coe cluster config` uses) and floe's node list."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from floe import pki

from .conftest import Env, assert_error


@pytest.fixture
def cluster(client: TestClient) -> str:
    assert client.post("/v1/clustertemplates", json={"coe": "swarm", "name": "tpl"}).status_code == 201
    resp = client.post("/v1/clusters", json={"cluster_template_id": "tpl", "name": "secure"})
    return resp.json()["uuid"]


def test_no_ca_yet_is_409(client: TestClient, env: Env, cluster: str) -> None:
    assert_error(client.get(f"/v1/certificates/{cluster}"), 409, "still being created")
    _, csr = pki.new_client_key_and_csr()
    before = env.snapshot()
    resp = client.post("/v1/certificates", json={"cluster_uuid": cluster, "csr": csr})
    assert_error(resp, 409, "still being created")
    assert env.snapshot() == before


def test_ca_certificate(client: TestClient, env: Env, cluster: str) -> None:
    ca = env.give_ca(cluster)
    for ident in (cluster, "secure"):
        body = client.get(f"/v1/certificates/{ident}").json()
        assert body == {
            "cluster_uuid": cluster,
            "pem": ca,
            "links": [
                {"href": f"http://testserver/v1/certificates/{cluster}", "rel": "self"},
                {"href": f"http://testserver/certificates/{cluster}", "rel": "bookmark"},
            ],
        }
    assert client.get(f"/v1/certificates/{cluster}", params={"ca_cert_type": "kubernetes"}).json()["pem"] == ca


def test_sign_a_client_csr(client: TestClient, env: Env, cluster: str) -> None:
    ca_pem = env.give_ca(cluster)
    key_pem, csr = pki.new_client_key_and_csr("alice")
    resp = client.post("/v1/certificates", json={"cluster_uuid": "secure", "csr": csr})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["cluster_uuid"] == cluster and body["csr"] == csr and len(body["links"]) == 2
    cert = x509.load_pem_x509_certificate(body["pem"].encode())
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)
    # The subject is the caller's, whatever the CSR asked for (see test_ca_rotation.py).
    assert "alice" not in cert.subject.rfc4514_string()
    ca_key_public = ca.public_key()
    assert isinstance(ca_key_public, ec.EllipticCurvePublicKey)


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ({"cluster_uuid": "@", "csr": "-----BEGIN CERTIFICATE REQUEST-----\ngarbage\n"}, ("csr",)),
        ({"cluster_uuid": "@", "csr": ""}, ("csr",)),
        ({"cluster_uuid": "@"}, ("csr", "missing")),
        ({"csr": "x"}, ("cluster_uuid",)),
        ({"cluster_uuid": "@", "csr": "x", "key": "nope"}, ("key",)),
    ],
)
def test_bad_signing_requests(client: TestClient, env: Env, cluster: str, body: dict,
                              fragments: tuple[str, ...]) -> None:
    env.give_ca(cluster)
    if body.get("cluster_uuid") == "@":
        body = dict(body, cluster_uuid=cluster)
    before = env.snapshot()
    assert_error(client.post("/v1/certificates", json=body), 400, *fragments)
    assert env.snapshot() == before


def test_unknown_cluster_is_404(client: TestClient, cluster: str) -> None:
    _, csr = pki.new_client_key_and_csr()
    assert_error(client.get("/v1/certificates/nowhere"), 404, "nowhere")
    assert_error(client.post("/v1/certificates", json={"cluster_uuid": "nowhere", "csr": csr}), 404, "nowhere")


def test_nodes_are_listed_managers_first(client: TestClient, env: Env, cluster: str) -> None:
    assert client.get("/v1/floe/clusters/secure/nodes").json() == {"nodes": []}
    names = env.add_nodes(cluster, managers=3, workers=2)
    body = client.get(f"/v1/floe/clusters/{cluster}/nodes/").json()
    assert [n["name"] for n in body["nodes"]] == names
    assert [n["role"] for n in body["nodes"]] == ["manager"] * 3 + ["worker"] * 2
    first = body["nodes"][0]
    assert set(first) == {"uuid", "name", "role", "address", "state", "health_status", "health_reason",
                          "swarm_node_id", "nodegroup", "flavor", "interfaces", "gpus"}
    # A template without flavors: Magnum's default; eth0 is the cluster's management network.
    assert (first["nodegroup"], first["flavor"], first["gpus"]) == ("default-master", "m1.small", [])
    assert first["interfaces"] == [{"name": "eth0", "network": "management", "address": first["address"]}]
    assert body["nodes"][-1]["nodegroup"] == "default-worker"
    assert (first["state"], first["health_status"], first["swarm_node_id"]) == ("planned", "UNKNOWN", None)
    assert_error(client.get("/v1/floe/clusters/nowhere/nodes"), 404)

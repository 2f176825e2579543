"""PATCH /v1/certificates/{cluster} (`coe ca rotate`), and what floe puts in a client certificate."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient

from floe import pki
from floe.errors import Forbidden
from floe.services import certificates
from floe.services.identity import Caller

from .conftest import Env, assert_error


@pytest.fixture
def cluster(client: TestClient, env: Env) -> str:
    assert client.post("/v1/clustertemplates", json={"coe": "swarm", "name": "tpl"}).status_code == 201
    uuid = client.post("/v1/clusters", json={"cluster_template_id": "tpl", "name": "rot"}).json()["uuid"]
    env.give_ca(uuid)
    env.finish_create(uuid)
    env.engine_woken()
    return uuid


def test_rotate_queues_an_update(client: TestClient, env: Env, cluster: str) -> None:
    resp = client.patch("/v1/certificates/rot")
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"uuid": cluster}  # Magnum's ClusterID
    assert env.engine_woken()
    c = env.cluster(cluster)
    assert c.status == "UPDATE_IN_PROGRESS" and c.status_reason == "rotate_ca queued"
    assert [(op.kind, op.state) for op in env.operations(cluster)][-1] == ("rotate_ca", "pending")
    # One operation at a time: a second rotation (or anything else) waits.
    before = env.snapshot()
    assert_error(client.patch(f"/v1/certificates/{cluster}"), 409, "UPDATE_IN_PROGRESS")
    assert env.snapshot() == before


def test_no_signing_while_rotating(client: TestClient, env: Env, cluster: str) -> None:
    assert client.patch(f"/v1/certificates/{cluster}").status_code == 202
    cert, key = pki.new_ca("next")
    with env.db.session() as s:  # the engine's new_ca step
        c = s.get(type(env.cluster(cluster)), env.cluster(cluster).id)
        c.ca_next_cert_pem, c.ca_next_key_pem = cert, key
    _, csr = pki.new_client_key_and_csr()
    assert_error(client.post("/v1/certificates", json={"cluster_uuid": cluster, "csr": csr}), 409, "rotating")


@pytest.mark.parametrize("status", ["CREATE_IN_PROGRESS", "CREATE_FAILED", "DELETE_IN_PROGRESS", "DELETE_FAILED"])
def test_rotate_refused_unless_settled(client: TestClient, env: Env, cluster: str, status: str) -> None:
    with env.db.session() as s:
        s.get(type(env.cluster(cluster)), env.cluster(cluster).id).status = status
    before = env.snapshot()
    assert_error(client.patch(f"/v1/certificates/{cluster}"), 409, status)
    assert env.snapshot() == before


def test_rotate_after_a_failed_update_is_allowed(client: TestClient, env: Env, cluster: str) -> None:
    with env.db.session() as s:
        s.get(type(env.cluster(cluster)), env.cluster(cluster).id).status = "UPDATE_FAILED"
    assert client.patch(f"/v1/certificates/{cluster}").status_code == 202


def test_rotate_before_the_ca_exists_is_409(client: TestClient, env: Env) -> None:
    assert client.post("/v1/clustertemplates", json={"coe": "swarm", "name": "tpl"}).status_code == 201
    uuid = client.post("/v1/clusters", json={"cluster_template_id": "tpl", "name": "early"}).json()["uuid"]
    before = env.snapshot()
    assert_error(client.patch(f"/v1/certificates/{uuid}"), 409, "still being created")
    assert env.snapshot() == before


def test_rotate_unknown_or_other_project_is_404(client: TestClient, env: Env, cluster: str) -> None:
    other = env.new_project("other")
    before = env.snapshot()
    assert_error(client.patch("/v1/certificates/nowhere"), 404, "nowhere")
    assert_error(client.patch(f"/v1/certificates/{cluster}", headers={"X-Auth-Token": other}), 404)
    assert_error(client.patch("/v1/certificates/rot", headers={"X-Auth-Token": other}), 404)
    assert env.snapshot() == before


def _csr(subject: x509.Name) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def test_subject_is_the_callers_and_expiry_is_the_setting(client: TestClient, env: Env, cluster: str) -> None:
    env.runtime.settings = dataclasses.replace(env.runtime.settings, client_cert_days=7)
    lie = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                     x509.NameAttribute(NameOID.COMMON_NAME, "admin-of-everything")])
    resp = client.post("/v1/certificates", json={"cluster_uuid": cluster, "csr": _csr(lie)})
    assert resp.status_code == 201, resp.text
    cert = x509.load_pem_x509_certificate(resp.json()["pem"].encode())
    row = env.cluster(cluster)  # made by the same caller
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == row.project_id
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == row.user_id
    assert "admin-of-everything" not in cert.subject.rfc4514_string()
    days = (cert.not_valid_after_utc - datetime.now(UTC)).total_seconds() / 86400
    assert 6.9 < days <= 7.01


def test_a_csr_with_a_bad_signature_is_refused(client: TestClient, env: Env, cluster: str) -> None:
    good = x509.load_pem_x509_csr(_csr(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])).encode())
    der = bytearray(good.public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x55  # inside the signature
    pem = "-----BEGIN CERTIFICATE REQUEST-----\n" + __import__("base64").encodebytes(bytes(der)).decode() \
        + "-----END CERTIFICATE REQUEST-----\n"
    resp = client.post("/v1/certificates", json={"cluster_uuid": cluster, "csr": pem})
    assert_error(resp, 400, "csr")


def test_after_switch_get_shows_and_post_signs_with_the_new_ca(client: TestClient, env: Env, cluster: str) -> None:
    new_cert, new_key = pki.new_ca("next")
    with env.db.session() as s:  # what switch_ca leaves
        c = s.get(type(env.cluster(cluster)), env.cluster(cluster).id)
        c.ca_cert_pem, c.ca_key_pem = new_cert, new_key
    assert client.get(f"/v1/certificates/{cluster}").json()["pem"] == new_cert
    _, csr = pki.new_client_key_and_csr()
    pem = client.post("/v1/certificates", json={"cluster_uuid": cluster, "csr": csr}).json()["pem"]
    assert pki.issued_by(pem, new_cert)


def test_readers_get_no_certificate(env: Env, cluster: str) -> None:
    owner = env.cluster(cluster)
    member = Caller(owner.project_id, owner.user_id)
    assert certificates.can_manage(member)
    # The service refuses a reader too, not only the API's gate (which refuses every reader's POST).
    reader = Caller(owner.project_id, "r", roles=("reader",))
    writer = Caller(owner.project_id, "w", roles=("member",))
    assert not certificates.can_manage(reader) and certificates.can_manage(writer)
    _, csr = pki.new_client_key_and_csr()
    with pytest.raises(Forbidden, match="reader"):
        certificates.sign_certificate(env.runtime, reader, cluster, csr)
    with pytest.raises(Forbidden, match="reader"):
        certificates.rotate_ca(env.runtime, reader, cluster)
    uuid, pem = certificates.sign_certificate(env.runtime, writer, cluster, csr)
    assert uuid == cluster and "CN=w" in x509.load_pem_x509_certificate(pem.encode()).subject.rfc4514_string()

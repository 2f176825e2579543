"""Certificates for every name the API accepts: cluster CAs, node server certificates, node names.

The API accepts cluster names up to 63 characters (a DNS label); X.509 caps a common name at 64.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import select

from floe import pki
from floe.config import Settings
from floe.db.models import Cluster, Node
from floe.engine.steps import node_name
from floe.providers.local import naming
from floe.server import build_runtime, make_provider
from floe.services import clusters, identity, templates
from floe.services.identity import Caller

LONGEST = "a" + "b1-" * 20 + "z"  # 62
LONGEST += "9"  # 63: the longest DNS label
NAMES = [LONGEST, "x", "0123456789", "9" * 63, "a-" * 31 + "b"]


def _attr(name: x509.Name, oid) -> str:
    return name.get_attributes_for_oid(oid)[0].value


def test_longest_name_is_63():
    assert len(LONGEST) == 63 and naming.NODE_NAME_RE.match(LONGEST)


@pytest.mark.parametrize("name", NAMES)
def test_cluster_ca_names_the_uuid_and_keeps_the_whole_name(name):
    cluster_uuid = str(uuid.uuid4())
    cert_pem, _ = pki.new_ca(f"floe cluster {cluster_uuid}", unit=name)
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    assert _attr(cert.subject, NameOID.COMMON_NAME) == f"floe cluster {cluster_uuid}"
    assert _attr(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME) == name
    assert cert.issuer == cert.subject


def test_overlong_subject_parts_are_cut_not_refused():
    cert_pem, _ = pki.new_ca("c" * 100, unit="u" * 100)
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    assert _attr(cert.subject, NameOID.COMMON_NAME) == "c" * 64
    assert _attr(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME) == "u" * 64


@pytest.mark.parametrize("cluster_name", NAMES)
@pytest.mark.parametrize(("role", "index"), [("manager", 0), ("worker", 7), ("worker", 10**12)])
def test_node_names_are_dns_labels_with_server_certificates(cluster_name, role, index):
    name = node_name(cluster_name, role, index)
    assert naming.NODE_NAME_RE.match(name), name
    assert len(name) <= 63 and name.endswith(f"-{'master' if role == 'manager' else 'node'}-{index}")
    if index < 1000:  # what existing clusters' nodes are called stays as it was
        assert name.startswith(cluster_name[:40].rstrip("-"))
    ca_cert, ca_key = pki.new_ca(f"floe cluster {uuid.uuid4()}", unit=cluster_name)
    cert_pem, _ = pki.issue_server_cert(ca_cert, ca_key, name, ips=["10.1.2.3", "127.0.0.1"], dns=[name, "localhost"])
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    assert _attr(cert.subject, NameOID.COMMON_NAME) == name
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [name, "localhost"]
    assert ExtendedKeyUsageOID.SERVER_AUTH in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_cert.encode()))


def test_a_cluster_with_the_longest_name_is_created(tmp_path: Path):
    """The plan step makes the CA and the nodes of a 63-character cluster (simulated provider)."""
    settings = Settings(home=tmp_path / "home", provider="simulated", address_range="10.0.0.0/8")
    runtime = build_runtime(settings, make_provider(settings))
    runtime.engine.start()  # type: ignore[union-attr]
    try:
        with runtime.db.session() as s:
            project_id = identity.create_project(s, "p-long").id
        caller = Caller(project_id, "tester", is_admin=True)
        ct = templates.create_template(runtime.db, caller, templates.TemplateSpec(name="sim", coe="swarm"))
        spec = clusters.ClusterSpec(name=LONGEST, cluster_template_id=ct.uuid, master_count=1, node_count=2)
        cluster_uuid = clusters.create_cluster(runtime, caller, spec).uuid
        end = time.monotonic() + 60
        while time.monotonic() < end:
            with runtime.db.session() as s:
                c = s.scalars(select(Cluster).where(Cluster.uuid == cluster_uuid)).one()
                if c.status != "CREATE_IN_PROGRESS":
                    break
            time.sleep(0.05)
        assert c.status == "CREATE_COMPLETE", c.status_reason
        ca = x509.load_pem_x509_certificate(c.ca_cert_pem.encode())
        assert _attr(ca.subject, NameOID.ORGANIZATIONAL_UNIT_NAME) == LONGEST
        with runtime.db.session() as s:
            names = sorted(s.scalars(select(Node.name).where(Node.cluster_id == c.id)))
        base = LONGEST[:40].rstrip("-")
        assert names == [f"{base}-master-0", f"{base}-node-0", f"{base}-node-1"]
    finally:
        runtime.engine.stop(wait=True)  # type: ignore[union-attr]
        runtime.db.dispose()

"""`floe cluster config`: a local key, a CA-signed client certificate, and the export line."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from floe import pki
from floe.client import FloeClient
from tests.cli.conftest import LiveServer, assert_one_line_error

API_ADDRESS = "tcp://10.160.7.2:2376"


@pytest.fixture(scope="module")
def cluster_with_ca(live_server: LiveServer) -> Iterator[tuple[str, str]]:
    """A cluster with a CA and an API address; returns (name, ca_cert_pem)."""
    with FloeClient(live_server.url, live_server.token) as client:
        client.create_template("tpl-config", "swarm")
        client.create_cluster("cl-config", "tpl-config")
    # No engine runs in these tests, and the engine is what makes a cluster's CA
    # and sets its api_address: write them onto the row directly instead.
    ca_cert, ca_key = pki.new_ca("cl-config")
    live_server.finish("cl-config", ca_cert_pem=ca_cert, ca_key_pem=ca_key, api_address=API_ADDRESS)
    yield "cl-config", ca_cert


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _check_bundle(directory: Path, ca_cert: str) -> None:
    assert _mode(directory) == 0o700
    assert _mode(directory / "key.pem") == 0o600
    ca = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    assert ca == x509.load_pem_x509_certificate(ca_cert.encode())
    cert = x509.load_pem_x509_certificate((directory / "cert.pem").read_bytes())
    cert.verify_directly_issued_by(ca)
    key = serialization.load_pem_private_key((directory / "key.pem").read_bytes(), password=None)
    # The certificate is for the key generated locally (only its CSR went to the server).
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()


def test_config_writes_bundle_and_export_line(floe, cluster_with_ca, tmp_path: Path):
    name, ca_cert = cluster_with_ca
    target = tmp_path / "bundle"
    result = floe("cluster", "config", name, "--dir", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"export DOCKER_HOST={API_ADDRESS} DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH={target.absolute()}\n"
    )
    _check_bundle(target, ca_cert)

    assert "the certificate expires" in result.stderr
    # Run again, a valid bundle of this cluster is kept as it is ...
    before = (target / "key.pem").read_bytes()
    again = floe("cluster", "config", name, "--dir", str(target))
    assert again.exit_code == 0 and "kept the bundle" in again.stderr and "valid until" in again.stderr
    assert again.stdout == result.stdout
    assert (target / "key.pem").read_bytes() == before
    # ... files floe did not write for this cluster are never overwritten silently ...
    (target / ".floe-cluster").unlink()
    assert_one_line_error(floe("cluster", "config", name, "--dir", str(target)), "--force")
    assert (target / "key.pem").read_bytes() == before
    # ... unless asked: a new key and certificate.
    assert floe("cluster", "config", name, "--dir", str(target), "--force").exit_code == 0
    assert (target / "key.pem").read_bytes() != before
    _check_bundle(target, ca_cert)


def test_config_default_dir(floe, cluster_with_ca, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    name, ca_cert = cluster_with_ca
    monkeypatch.chdir(tmp_path)
    result = floe("cluster", "config", name)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(f"DOCKER_CERT_PATH={tmp_path / (name + '-config')}")
    _check_bundle(tmp_path / f"{name}-config", ca_cert)


def test_config_refused_before_the_cluster_has_an_address(floe, live_server: LiveServer, tmp_path: Path):
    with FloeClient(live_server.url, live_server.token) as client:
        client.create_template("tpl-config-early", "swarm")
        client.create_cluster("cl-early", "tpl-config-early")
    result = floe("cluster", "config", "cl-early", "--dir", str(tmp_path / "x"))
    assert_one_line_error(result, "cl-early", "no API address")
    assert not (tmp_path / "x").exists()


def test_eval_in_a_shell_with_the_real_binary(live_server: LiveServer, cluster_with_ca, tmp_path: Path):
    name, _ = cluster_with_ca
    floe_bin = Path(sys.executable).parent / "floe"
    env = {**os.environ, **{k: v for k, v in live_server.env().items() if v is not None}}
    env.pop("FLOE_DEBUG", None)
    target = tmp_path / "with space"
    script = (
        f'eval "$({floe_bin} cluster config {name} --dir "$1")" && '
        'echo "$DOCKER_HOST|$DOCKER_TLS_VERIFY|$DOCKER_CERT_PATH"'
    )
    res = subprocess.run(
        ["bash", "-c", script, "bash", str(target)], env=env, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"{API_ADDRESS}|1|{target}"
    assert live_server.token not in res.stdout + res.stderr


def test_config_renews_expiring_and_old_ca_bundles(floe, live_server: LiveServer, tmp_path: Path):
    with FloeClient(live_server.url, live_server.token) as client:
        client.create_template("tpl-renew", "swarm")
        client.create_cluster("cl-renew", "tpl-renew")
    ca_cert, ca_key = pki.new_ca("cl-renew")
    live_server.finish("cl-renew", ca_cert_pem=ca_cert, ca_key_pem=ca_key, api_address=API_ADDRESS)
    target = tmp_path / "bundle"
    assert floe("cluster", "config", "cl-renew", "--dir", str(target)).exit_code == 0

    # A certificate in the last third of its life is renewed.
    key_pem, csr = pki.new_client_key_and_csr()
    (target / "key.pem").write_text(key_pem)
    (target / "cert.pem").write_text(_aged(ca_cert, ca_key, csr))
    result = floe("cluster", "config", "cl-renew", "--dir", str(target))
    assert result.exit_code == 0 and "renewed the bundle (the certificate expires" in result.stderr, result.stderr
    assert (target / "key.pem").read_text() != key_pem
    _check_bundle(target, ca_cert)

    # After `floe cluster rotate-ca` (no engine runs here: the row gets the new CA by hand), a
    # bundle of the old CA is renewed.
    result = floe("cluster", "rotate-ca", "cl-renew")
    assert result.exit_code == 0 and "accepted" in result.stdout + result.stderr, result.output
    with FloeClient(live_server.url, live_server.token) as client:
        assert client.get_cluster("cl-renew")["status"] == "UPDATE_IN_PROGRESS"
    new_cert, new_key = pki.new_ca("cl-renew rotated")
    live_server.finish("cl-renew", ca_cert_pem=new_cert, ca_key_pem=new_key)
    result = floe("cluster", "config", "cl-renew", "--dir", str(target))
    assert result.exit_code == 0 and "renewed the bundle (the cluster's CA changed)" in result.stderr
    _check_bundle(target, new_cert)


def _aged(ca_cert: str, ca_key: str, csr_pem: str) -> str:
    """A client certificate issued 21 days ago for 30: less than a third of its life is left."""
    import datetime as dt

    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    ca = x509.load_pem_x509_certificate(ca_cert.encode())
    key = serialization.load_pem_private_key(ca_key.encode(), password=None)
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca.subject).public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=21)).not_valid_after(now + dt.timedelta(days=9))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()

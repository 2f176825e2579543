"""Per-cluster certificate authorities, node server certificates and signed client CSRs."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
CERT_DAYS = 825
# RFC 5280's upper bounds (ub-common-name, ub-organizational-unit-name); cryptography refuses a
# longer common name outright, and other parsers refuse longer units.
MAX_NAME_ATTRIBUTE = 64


class CSRError(ValueError):
    """A certificate signing request that floe refuses to sign."""


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _fit(text: str) -> str:
    """`text` cut to what a name attribute may hold (names are ASCII: characters are bytes)."""
    if not text:
        raise ValueError("a certificate name attribute cannot be empty")
    return text[:MAX_NAME_ATTRIBUTE]


def _name(cn: str, unit: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "floe")]
    if unit:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, _fit(unit)))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, _fit(cn)))
    return x509.Name(attributes)


def new_ca(common_name: str, unit: str | None = None) -> tuple[str, str]:
    """A self-signed CA; returns (cert_pem, key_pem).

    `common_name` and `unit` (e.g. a cluster's uuid and its name) are cut to X.509's
    64-character limit rather than refused: the CA's identity is its key, not its subject.
    """
    key = _key()
    now = datetime.now(UTC)
    subject = _name(common_name, unit)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _cert_pem(cert), _key_pem(key)


def _load_ca(ca_cert_pem: str, ca_key_pem: str):
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    return ca_cert, ca_key


def _issue(ca_cert_pem, ca_key_pem, subject: x509.Name, public_key, *, server: bool, ips=(), dns=(), days=CERT_DAYS):
    ca_cert, ca_key = _load_ca(ca_cert_pem, ca_key_pem)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server:
        sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return _cert_pem(builder.sign(ca_key, hashes.SHA256()))


def issue_server_cert(
    ca_cert_pem: str, ca_key_pem: str, common_name: str, ips: list[str], dns: list[str]
) -> tuple[str, str]:
    """A server certificate for a node's dockerd; returns (cert_pem, key_pem)."""
    key = _key()
    cert = _issue(ca_cert_pem, ca_key_pem, _name(common_name), key.public_key(), server=True, ips=ips, dns=dns)
    return cert, _key_pem(key)


def client_subject(user: str, project: str) -> x509.Name:
    """A client certificate's subject as floe sets it: O=<project>, CN=<user> (cut to 64 characters)."""
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, _fit(project)),
        x509.NameAttribute(NameOID.COMMON_NAME, _fit(user)),
    ])


def sign_csr(
    ca_cert_pem: str, ca_key_pem: str, csr_pem: str, days: int = CERT_DAYS, subject: x509.Name | None = None
) -> str:
    """Sign a client CSR (Magnum's POST /v1/certificates); the private key never reaches floe.

    The CSR proves possession of its key (its signature is checked); `subject`, when given,
    replaces the CSR's, which the requester chose and floe does not trust.
    """
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError as exc:
        raise CSRError(f"csr is not a PEM certificate signing request: {exc}") from None
    if not csr.is_signature_valid:
        raise CSRError("csr signature is invalid")
    name = csr.subject if subject is None else subject
    return _issue(ca_cert_pem, ca_key_pem, name, csr.public_key(), server=False, days=days)


def validity(cert_pem: str) -> tuple[datetime, datetime]:
    """A certificate's (not before, not after), in UTC."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return cert.not_valid_before_utc, cert.not_valid_after_utc


def issued_by(cert_pem: str, ca_pem: str) -> bool:
    """Whether `cert_pem` was signed by the CA of `ca_pem` (False for anything unreadable)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem.encode()))
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def new_client_key_and_csr(common_name: str = "floe-user") -> tuple[str, str]:
    """A fresh client key and its CSR; returns (key_pem, csr_pem)."""
    key = _key()
    csr = x509.CertificateSigningRequestBuilder().subject_name(_name(common_name)).sign(key, hashes.SHA256())
    return _key_pem(key), csr.public_bytes(serialization.Encoding.PEM).decode()

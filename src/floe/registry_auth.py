"""Tokens for floe's image registry: the signing key, JWTs distribution trusts, node pull secrets.

distribution's token auth (docs: "Token Authentication Specification") verifies a JWT whose
header carries the signing certificate as `x5c`; the certificate is the registry's
`rootcertbundle`, so the chain is the certificate itself. The key (EC P-256, ES256) and the
secret clusters' pull credentials are derived from live in `$FLOE_HOME/registry-auth/`, mode
0600: the registry's own directory can be wiped by `floe cleanup --all` without making every
handed-out pull credential stale.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

SERVICE = "floe-registry"  # the `service` of the registry's challenges, the tokens' audience
ISSUER = "floe"
TOKEN_PATH = "/registry/token"  # the realm's path, on the API and beside the registry
TOKEN_TTL = 300  # seconds; docker and skopeo fetch a new token when one expires
LIBRARY = "library"  # the public namespace admins curate (Docker Hub's name for it)
CLUSTER_USER_PREFIX = "floe-cluster-"  # username of a cluster's pull credential


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _create_exclusive(path: Path, data: bytes) -> None:
    """Write `path` (0600) unless it exists; a concurrent writer's file wins, never a mix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            os.link(tmp, path)  # fails if another process made it first: keep theirs
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class Keys:
    """The signing key, its certificate and the pull-credential secret of one floe home."""

    dir: Path

    @property
    def key_file(self) -> Path:
        return self.dir / "token.key"

    @property
    def cert_file(self) -> Path:
        return self.dir / "token.crt"

    @property
    def pull_secret_file(self) -> Path:
        return self.dir / "pull.secret"

    def ensure(self) -> Keys:
        """Create the key, certificate and secret once (idempotent, safe between processes)."""
        if self.key_file.exists() and self.cert_file.exists() and self.pull_secret_file.exists():
            return self
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        if not self.key_file.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            _create_exclusive(self.key_file, key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        if not self.cert_file.exists():
            key = self._private_key()
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "floe registry token signer")])
            now = dt.datetime.now(dt.UTC)
            cert = (
                x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256())
            )
            _create_exclusive(self.cert_file, cert.public_bytes(serialization.Encoding.PEM))
            self.cert_file.chmod(0o644)  # public: the registry reads it as its rootcertbundle
        if not self.pull_secret_file.exists():
            _create_exclusive(self.pull_secret_file, secrets.token_hex(32).encode())
        return self

    def _private_key(self):
        from cryptography.hazmat.primitives import serialization

        return serialization.load_pem_private_key(self.key_file.read_bytes(), password=None)

    def _cert_der(self) -> bytes:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        return x509.load_pem_x509_certificate(self.cert_file.read_bytes()).public_bytes(serialization.Encoding.DER)

    def sign(self, subject: str, access: list[dict], ttl: int = TOKEN_TTL) -> str:
        """A JWT for `subject` granting `access` ([{type, name, actions}]), signed ES256."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(self._cert_der()).decode()]}
        claims = {
            "iss": ISSUER, "sub": subject, "aud": SERVICE, "iat": now, "nbf": now - 10, "exp": now + ttl,
            "jti": secrets.token_hex(16), "access": access,
        }
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        der = self._private_key().sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)  # JWS wants r || s, 32 bytes each, not DER
        return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def pull_password(self, cluster_uuid: str) -> str:
        """The password of a cluster's pull credential: derived, so nothing per cluster is stored."""
        key = self.pull_secret_file.read_bytes().strip()
        return hmac.new(key, f"pull:{cluster_uuid}".encode(), hashlib.sha256).hexdigest()

    def check_pull_password(self, cluster_uuid: str, password: str) -> bool:
        return hmac.compare_digest(self.pull_password(cluster_uuid), password)


def keys(home: Path) -> Keys:
    """The token keys of a floe home (not created until `.ensure()`)."""
    return Keys(Path(home) / "registry-auth")


def cluster_username(cluster_uuid: str) -> str:
    return f"{CLUSTER_USER_PREFIX}{cluster_uuid}"


def project_namespace(project_id: str) -> str:
    """A project's namespace in the registry: its id (32 hex digits, a valid path component
    that no project name can take over, and that stays when a project is renamed)."""
    return project_id.lower()

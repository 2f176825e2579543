"""`floe cluster config`: a Docker TLS client bundle (ca.pem, cert.pem, key.pem) for one cluster.

The client key is generated here and only its CSR is sent: the private key never leaves this machine.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from floe.cli.errors import CLIError
from floe.client import FloeClient

DOCKER_TLS_PORT = 2376
BUNDLE_FILES = ("ca.pem", "cert.pem", "key.pem")


@dataclass(frozen=True)
class ClusterConfig:
    directory: Path
    docker_host: str

    def export_line(self) -> str:
        """The shell line `eval $(floe cluster config NAME)` runs."""
        return (
            f"export DOCKER_HOST={shlex.quote(self.docker_host)} DOCKER_TLS_VERIFY=1 "
            f"DOCKER_CERT_PATH={shlex.quote(str(self.directory))}"
        )


def docker_host(api_address: str) -> str:
    """`tcp://HOST:PORT` from the cluster's api_address (`tcp://10.160.1.2:2376`, or a bare host)."""
    raw = api_address.strip()
    parts = urlsplit(raw if "://" in raw else f"tcp://{raw}")
    host = parts.hostname
    if not host:
        raise CLIError(f"cannot make sense of the cluster's api_address {api_address!r}")
    try:
        port = parts.port or DOCKER_TLS_PORT
    except ValueError:
        raise CLIError(f"cannot make sense of the cluster's api_address {api_address!r}") from None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"tcp://{host}:{port}"


def default_directory(cluster_name: str) -> Path:
    """`./<name>-config`: next to where the user works, and named after the cluster."""
    safe = cluster_name.replace(os.sep, "_").replace("\0", "_") or "cluster"
    return Path.cwd() / f"{safe}-config"


def _write(path: Path, data: str, mode: int) -> None:
    # Write beside the target and rename, so a half-written key never sits under the
    # final name, and a key file is never briefly readable by others.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _prepare_directory(directory: Path, force: bool) -> None:
    if directory.exists() and not directory.is_dir():
        raise CLIError(f"{directory} exists and is not a directory")
    if not force:
        existing = [name for name in BUNDLE_FILES if (directory / name).exists()]
        if existing:
            raise CLIError(f"{directory} already holds {', '.join(existing)}: use --force to overwrite")


def write_cluster_config(
    client: FloeClient, ident: str, directory: Path | None, force: bool
) -> ClusterConfig:
    """Fetch the cluster, get a client certificate for a fresh local key, write the bundle."""
    cluster: dict[str, Any] = client.get_cluster(ident)
    name = str(cluster.get("name") or ident)
    api_address = cluster.get("api_address")
    if not api_address:
        raise CLIError(
            f"cluster {name} has no API address yet (status {cluster.get('status')}): "
            "wait for CREATE_COMPLETE"
        )
    host = docker_host(str(api_address))
    target = (directory or default_directory(name)).expanduser().absolute()
    _prepare_directory(target, force)

    from floe.pki import new_client_key_and_csr  # cryptography is slow to import; only here

    key_pem, csr_pem = new_client_key_and_csr()
    cert_pem = client.sign_csr(str(cluster["uuid"]), csr_pem)
    ca_pem = client.get_ca(str(cluster["uuid"]))

    if not target.exists():
        target.mkdir(mode=0o700, parents=True)
        target.chmod(0o700)  # mkdir's mode is filtered by the umask
    _write(target / "ca.pem", ca_pem, 0o644)
    _write(target / "cert.pem", cert_pem, 0o644)
    _write(target / "key.pem", key_pem, 0o600)
    return ClusterConfig(directory=target, docker_host=host)

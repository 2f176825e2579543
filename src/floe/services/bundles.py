"""A cluster's client credentials as one download: the files `floe cluster config` writes (no HTTP).

The CLI makes its key locally and sends only a CSR; a browser cannot, so here the key is made
per download, signed at once through `certificates.sign_certificate` (members and admins only,
the subject from the caller) and never stored: it exists only in the archive handed back.
"""

from __future__ import annotations

import base64
import io
import json
import shlex
import tarfile
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from floe import pki
from floe.errors import Conflict, NotFound
from floe.runtime import Runtime
from floe.services import certificates, registry, slurm
from floe.services.clusters import get_cluster
from floe.services.identity import Caller

DOCKER_TLS_PORT = 2376


@dataclass(frozen=True)
class Bundle:
    filename: str  # <cluster>-config.tar.gz
    data: bytes


def docker_host(api_address: str) -> str:
    """`tcp://HOST:PORT` from the cluster's api_address (as `floe cluster config` makes it)."""
    raw = api_address.strip()
    parts = urlsplit(raw if "://" in raw else f"tcp://{raw}")
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"tcp://{host}:{parts.port or DOCKER_TLS_PORT}"


def _env_file(host: str, with_docker_config: bool, with_slurm: bool) -> str:
    here = '"$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"'
    lines = [
        "# Written by floe's dashboard: `. ./env` in this directory (or `source DIR/env`).",
        f"FLOE_BUNDLE_DIR={here}",
        f"export DOCKER_HOST={shlex.quote(host)} DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=\"$FLOE_BUNDLE_DIR\"",
    ]
    if with_docker_config:
        lines.append('export DOCKER_CONFIG="$FLOE_BUNDLE_DIR"')
    if with_slurm:
        lines.append('export SLURM_CONF="$FLOE_BUNDLE_DIR/slurm.conf"')
    return "\n".join(lines) + "\n"


def _docker_config(runtime: Runtime, caller: Caller, uuid: str) -> str | None:
    """config.json with the cluster's pull credential for floe's registry (None without a registry)."""
    try:
        cred = registry.cluster_pull_credential(runtime, caller, uuid)
    except NotFound:
        return None
    auth = {"auth": base64.b64encode(f"{cred['username']}:{cred['password']}".encode()).decode()}
    return json.dumps({"auths": {"https://index.docker.io/v1/": auth, str(cred["registry"]): auth}}, indent=2) + "\n"


def _slurm_conf(runtime: Runtime, caller: Caller, uuid: str) -> str | None:
    try:
        return slurm.slurm_client_config(runtime, caller, uuid)["slurm_conf"]
    except Conflict:
        return None  # no Slurm daemons on this provider (the simulated one): the Docker files still serve


def cluster_bundle(runtime: Runtime, caller: Caller, ident: str) -> Bundle:
    """ca.pem, cert.pem, key.pem (0600), env, and config.json / slurm.conf where the cluster has them,
    in `<name>-config/` of a tar.gz. Conflict while the cluster has no address or CA yet."""
    cluster = get_cluster(runtime.db, caller, ident).cluster
    if not cluster.api_address:
        raise Conflict(f"cluster {cluster.name} has no API address yet (status {cluster.status}): "
                       "wait for CREATE_COMPLETE")
    key_pem, csr_pem = pki.new_client_key_and_csr()
    uuid, cert_pem = certificates.sign_certificate(runtime, caller, cluster.uuid, csr_pem)
    ca_pem = certificates.get_ca_certificate(runtime.db, caller, uuid)[1]
    docker_config = _docker_config(runtime, caller, uuid)
    slurm_conf = _slurm_conf(runtime, caller, uuid) if cluster.coe == "slurm" else None
    files: list[tuple[str, str, int]] = [
        ("ca.pem", ca_pem, 0o644), ("cert.pem", cert_pem, 0o644), ("key.pem", key_pem, 0o600),
        (".floe-cluster", uuid + "\n", 0o644),
        ("env", _env_file(docker_host(cluster.api_address), docker_config is not None, slurm_conf is not None), 0o644),
    ]
    if docker_config is not None:
        files.append(("config.json", docker_config, 0o600))
    if slurm_conf is not None:
        files.append(("slurm.conf", slurm_conf, 0o644))
    folder = f"{cluster.name}-config"
    out = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        top = tarfile.TarInfo(folder)
        top.type, top.mode, top.mtime = tarfile.DIRTYPE, 0o700, now
        tar.addfile(top)
        for name, text, mode in files:
            data = text.encode()
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size, info.mode, info.mtime = len(data), mode, now
            tar.addfile(info, io.BytesIO(data))
    return Bundle(filename=f"{folder}.tar.gz", data=out.getvalue())

"""`floe cluster config`: a Docker TLS client bundle (ca.pem, cert.pem, key.pem) for one cluster.

The client key is generated here and only its CSR is sent: the private key never leaves this machine.
Run again on the same directory, it renews the bundle when its certificate is in the last third
of its life or was signed by a CA the cluster no longer has (after `ca rotate`), and keeps it
otherwise; a directory floe did not write for this cluster needs --force.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from floe.cli.errors import CLIError
from floe.client import FloeClient

DOCKER_TLS_PORT = 2376
BUNDLE_FILES = ("ca.pem", "cert.pem", "key.pem")
DOCKER_CONFIG_FILE = "config.json"
# Names the cluster a bundle was written for: only such a bundle is renewed without --force.
MARKER = ".floe-cluster"
# A certificate with less than this part of its life left is renewed.
RENEW_FRACTION = 1 / 3


@dataclass(frozen=True)
class ClusterConfig:
    directory: Path
    docker_host: str
    expires: datetime | None = None
    action: str = "wrote"  # "wrote", "renewed" (with `why`) or "kept"
    why: str = ""
    slurm_conf: Path | None = None  # a Slurm cluster's slurm.conf, for the stock Slurm clients

    def note(self) -> str:
        """What happened, for stderr."""
        when = f"{self.expires:%Y-%m-%d %H:%M} UTC" if self.expires else "?"
        if self.action == "kept":
            return f"kept the bundle in {self.directory}: its certificate is valid until {when}"
        what = f"renewed the bundle ({self.why})" if self.action == "renewed" else "wrote ca.pem, cert.pem, key.pem"
        slurm = f" and wrote {self.slurm_conf.name} (SLURM_CONF: sinfo, srun, sbatch use it)" if self.slurm_conf else ""
        return f"{what} in {self.directory}; the certificate expires {when}{slurm}"

    def export_line(self) -> str:
        """The shell line `eval $(floe cluster config NAME)` runs."""
        return (
            f"export DOCKER_HOST={shlex.quote(self.docker_host)} DOCKER_TLS_VERIFY=1 "
            f"DOCKER_CERT_PATH={shlex.quote(str(self.directory))}"
            # The docker CLI's config.json with the cluster's registry pull credential.
            + (f" DOCKER_CONFIG={shlex.quote(str(self.directory))}"
               if (self.directory / DOCKER_CONFIG_FILE).exists() else "")
            + (f" SLURM_CONF={shlex.quote(str(self.slurm_conf))}" if self.slurm_conf else "")
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


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _renewal(directory: Path, cluster_uuid: str, ca_pem: str, force: bool) -> tuple[str, str, datetime | None]:
    """("write" | "renew" | "keep", why, expiry of the kept certificate) for the bundle in `directory`."""
    if directory.exists() and not directory.is_dir():
        raise CLIError(f"{directory} exists and is not a directory")
    existing = [name for name in BUNDLE_FILES if (directory / name).exists()]
    if not existing or force:
        return "write", "", None
    if (_read(directory / MARKER) or "").strip() != cluster_uuid:
        raise CLIError(f"{directory} already holds {', '.join(existing)}: use --force to overwrite")
    from floe import pki  # cryptography is slow to import; only here

    cert = _read(directory / "cert.pem")
    if cert is None or _read(directory / "key.pem") is None or not pki.issued_by(cert, ca_pem):
        return "renew", "the cluster's CA changed", None
    if (_read(directory / "ca.pem") or "").strip() != ca_pem.strip():
        return "renew", "the cluster's CA changed", None
    begins, expires = pki.validity(cert)
    if expires - datetime.now(UTC) < (expires - begins) * RENEW_FRACTION:
        return "renew", f"the certificate expires {expires:%Y-%m-%d %H:%M} UTC", None
    return "keep", "", expires


def _write_docker_config(client: FloeClient, uuid: str, target: Path) -> None:
    """config.json giving the docker CLI the cluster's pull credential for floe's registry.

    Under Docker Hub's key too: nodes use the registry as their docker.io mirror, so `image:
    python` or `<project id>/tool` are Hub names, and dockerd sends a Hub name's credential to
    its mirror. A server without a registry (the simulated provider) has none to give.
    """
    from floe.client.errors import FloeAPIError

    try:
        cred = client.registry_credential(uuid)
    except FloeAPIError as exc:
        if exc.status == 404:
            return
        raise
    auth = {"auth": base64.b64encode(f"{cred['username']}:{cred['password']}".encode()).decode()}
    config = {"auths": {"https://index.docker.io/v1/": auth, str(cred["registry"]): auth}}
    _write(target / DOCKER_CONFIG_FILE, json.dumps(config, indent=2) + "\n", 0o600)


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
    uuid = str(cluster["uuid"])
    ca_pem = client.get_ca(uuid)
    action, why, expires = _renewal(target, uuid, ca_pem, force)
    if action == "keep":
        _write_docker_config(client, uuid, target)
        slurm_conf = _write_slurm_conf(client, cluster, target)
        return ClusterConfig(directory=target, docker_host=host, expires=expires, action="kept", slurm_conf=slurm_conf)

    from floe import pki  # cryptography is slow to import; only here

    key_pem, csr_pem = pki.new_client_key_and_csr()
    cert_pem = client.sign_csr(uuid, csr_pem)

    if not target.exists():
        target.mkdir(mode=0o700, parents=True)
        target.chmod(0o700)  # mkdir's mode is filtered by the umask
    _write(target / "ca.pem", ca_pem, 0o644)
    _write(target / "cert.pem", cert_pem, 0o644)
    _write(target / "key.pem", key_pem, 0o600)
    _write(target / MARKER, uuid + "\n", 0o644)
    _write_docker_config(client, uuid, target)
    return ClusterConfig(
        directory=target, docker_host=host, expires=pki.validity(cert_pem)[1],
        action="renewed" if action == "renew" else "wrote", why=why,
        slurm_conf=_write_slurm_conf(client, cluster, target),
    )


def _write_slurm_conf(client: FloeClient, cluster: dict[str, Any], target: Path) -> Path | None:
    """A Slurm cluster's slurm.conf in the bundle (its nodes run dockerd too, so the Docker files
    stay useful).

    srun talks to the slurmds itself, by the addresses in its slurm.conf, so a copy would go stale
    at the next resize: on the floe host (where the cluster's munged socket is anyway) the file
    only includes the cluster's live slurm.conf, which floe rewrites on every change."""
    if not str(cluster.get("coe_version") or "").startswith("slurm"):
        return None
    answer = client.slurm_config(str(cluster["uuid"]))
    live = Path(str(answer["cluster_files"])) / "slurm.conf"
    path = target / "slurm.conf"
    if live.is_file():
        text = f"# Written by floe: the cluster's own slurm.conf, kept current by floe.\nInclude {live}\n"
    else:
        text = str(answer["slurm_conf"])  # another machine: a copy (re-run after a resize)
    _write(path, text, 0o644)
    return path

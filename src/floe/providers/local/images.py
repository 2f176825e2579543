"""Images in floe's registry: a busybox image built offline, and `docker save` archives pushed with skopeo.

Nodes use the registry as their docker.io mirror, so Docker Hub names (`busybox`,
`foo/bar`) must be stored the way a mirror serves them (`library/busybox`, `foo/bar`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import platform
import re
import shutil
import tarfile
import tempfile
from pathlib import Path

import httpx

from floe.host import commands
from floe.providers.base import ProviderError

MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}
HUB_DOMAINS = {"docker.io", "index.docker.io", "registry-1.docker.io"}
# Repository path components as distribution accepts them.
PATH_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
IMAGE_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
BUSYBOX_REPO, BUSYBOX_TAG = "library/busybox", "latest"
ROOT_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
ROOT_GROUP = "root:x:0:\nnobody:x:65534:\n"


def manifest_exists(client: httpx.Client, address: str, repo: str, tag: str) -> bool:
    """Whether the registry has `repo:tag` (one HEAD request)."""
    response = client.head(f"http://{address}/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT})
    return response.status_code == 200


def _tar_entry(name: str, kind: bytes, mode: int, **extra) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, 0  # fixed mtime: same bytes, same digest
    for key, value in extra.items():
        setattr(info, key, value)
    return info


def _busybox_rootfs(busybox: Path) -> bytes:
    """Uncompressed tar of a rootfs: static busybox, its applet symlinks, passwd, group, /tmp."""
    applets = commands.run([str(busybox), "--list-full"]).stdout.split()
    directories = {"bin", "dev", "etc", "home", "proc", "root", "sys", "tmp", "usr", "usr/bin", "usr/sbin",
                   "sbin", "var"}
    for applet in applets:
        parts = applet.split("/")[:-1]
        directories.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for directory in sorted(directories):
            mode = {"tmp": 0o1777, "root": 0o700}.get(directory, 0o755)
            tar.addfile(_tar_entry(directory, tarfile.DIRTYPE, mode))
        data = busybox.read_bytes()
        tar.addfile(_tar_entry("bin/busybox", tarfile.REGTYPE, 0o755, size=len(data)), io.BytesIO(data))
        for name, text in (("etc/passwd", ROOT_PASSWD), ("etc/group", ROOT_GROUP)):
            raw = text.encode()
            tar.addfile(_tar_entry(name, tarfile.REGTYPE, 0o644, size=len(raw)), io.BytesIO(raw))
        for applet in sorted(set(applets) - {"bin/busybox"}):
            tar.addfile(_tar_entry(applet, tarfile.SYMTYPE, 0o777, linkname="/bin/busybox"))
    return buffer.getvalue()


def _blob(layout: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def build_busybox_layout(dest: Path, busybox: Path) -> Path:
    """An OCI image layout of busybox at `dest`, built once (kept as a cache)."""
    if (dest / "index.json").exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".busybox-", dir=dest.parent))
    try:
        (work / "blobs" / "sha256").mkdir(parents=True)
        rootfs = _busybox_rootfs(busybox)
        layer = _blob(work, gzip.compress(rootfs, compresslevel=6, mtime=0))
        config = {
            "architecture": GOARCH.get(platform.machine(), platform.machine()),
            "os": "linux",
            "created": "1970-01-01T00:00:00Z",
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                       "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(rootfs).hexdigest()}"]},
            "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "floe: busybox-static rootfs"}],
        }
        config_blob = _blob(work, json.dumps(config, sort_keys=True).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_blob},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
        }
        manifest_blob = _blob(work, json.dumps(manifest, sort_keys=True).encode())
        index = {
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest_blob,
                "annotations": {"org.opencontainers.image.ref.name": BUSYBOX_TAG},
            }],
        }
        (work / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        (work / "index.json").write_text(json.dumps(index))
        shutil.rmtree(dest, ignore_errors=True)
        work.rename(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def _skopeo_copy(source: str, address: str, dest_path: str) -> None:
    commands.run([
        commands.binary("skopeo"), "--insecure-policy", "copy", "--quiet", "--format", "v2s2",
        "--dest-tls-verify=false", source, f"docker://{address}/{dest_path}",
    ])


def _no_colon(path: Path) -> str:
    # skopeo transports split their argument on ':', so a colon in the path cannot be expressed.
    if ":" in str(path):
        raise ProviderError(f"path {path} contains ':' which skopeo cannot take")
    return str(path)


def ensure_busybox(client: httpx.Client, address: str, cache: Path) -> None:
    """Make sure `library/busybox:latest` is in the registry (fast when it is)."""
    if manifest_exists(client, address, BUSYBOX_REPO, BUSYBOX_TAG):
        return
    layout = build_busybox_layout(cache / "busybox-oci", Path(commands.binary("busybox")))
    _skopeo_copy(f"oci:{_no_colon(layout)}:{BUSYBOX_TAG}", address, f"{BUSYBOX_REPO}:{BUSYBOX_TAG}")


def mirror_name(reference: str, address: str) -> tuple[str, str]:
    """(path:tag in floe's registry, name usable in a stack file) for an image reference.

    Docker Hub names are stored as the mirror serves them (`busybox` → `library/busybox`)
    and used unchanged; other registries' images are stored under their domain and used
    by their full floe-registry name.
    """
    if "@" in reference:
        raise ProviderError(f"image reference {reference!r}: digests are not supported, use a tag")
    name, tag = reference, "latest"
    colon = reference.rfind(":")
    if colon > reference.rfind("/"):
        name, tag = reference[:colon], reference[colon + 1:]
    first, _, rest = name.partition("/")
    domain, path = ("docker.io", name)
    if rest and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, rest
    if domain in HUB_DOMAINS:
        if "/" not in path:
            path = f"library/{path}"
        usable = f"{path.removeprefix('library/')}:{tag}"
    else:
        path = f"{domain.replace(':', '-')}/{path}"
        usable = f"{address}/{path}:{tag}"
    if not IMAGE_TAG_RE.match(tag) or not all(PATH_COMPONENT_RE.match(c) for c in path.split("/")):
        raise ProviderError(f"invalid image reference {reference!r}")
    return f"{path}:{tag}", usable


def import_archive(archive: Path, address: str) -> list[str]:
    """Push every tagged image of a `docker save` tarball; return the names to use in stack files."""
    source = _no_colon(archive.absolute())
    try:
        with tarfile.open(archive) as tar:
            member = tar.extractfile("manifest.json")
            if member is None:
                raise KeyError("manifest.json")
            manifest = json.load(member)
    except (OSError, KeyError, ValueError, tarfile.TarError) as exc:
        raise ProviderError(f"{archive} is not a docker save archive: {exc}") from None
    usable: list[str] = []
    for index, image in enumerate(manifest):
        for reference in image.get("RepoTags") or []:
            dest, name = mirror_name(reference, address)
            # @index picks the image by position: no ambiguity in how skopeo reads the tag.
            _skopeo_copy(f"docker-archive:{source}:@{index}", address, dest)
            usable.append(name)
    if not usable:
        raise ProviderError(f"{archive} holds no tagged image (docker save NAME:TAG, not an image id)")
    return usable

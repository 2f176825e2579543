"""Images in floe's registry: busybox and python built offline, and `docker save` archives pushed with skopeo.

Nodes use the registry as their docker.io mirror, so images are stored the way a mirror
serves Docker Hub names: `busybox` is `library/busybox`, a project's `tool` is
`<project id>/tool`. floe signs its own short tokens for its pushes (see registry_auth).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import platform
import re
import shutil
import tarfile
import tempfile
from pathlib import Path

import httpx

from floe import registry_auth
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
PYTHON_REPO, PYTHON_TAG = "library/python", "latest"
# The host's own Python (Debian's), not whichever python3 comes first on a user's PATH.
HOST_PYTHON = "/usr/bin/python3"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
log = logging.getLogger("floe.provider")
ROOT_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
ROOT_GROUP = "root:x:0:\nnobody:x:65534:\n"


def manifest_exists(client: httpx.Client, address: str, repo: str, tag: str, keys: registry_auth.Keys) -> bool:
    """Whether the registry has `repo:tag` (one HEAD request)."""
    token = keys.sign("floe", [{"type": "repository", "name": repo, "actions": ["pull"]}], ttl=60)
    headers = {"Accept": MANIFEST_ACCEPT, "Authorization": f"Bearer {token}"}
    response = client.head(f"http://{address}/v2/{repo}/manifests/{tag}", headers=headers)
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


def _write_layout(dest: Path, layers: list[bytes], run_config: dict, created_by: str, tag: str) -> Path:
    """An OCI image layout at `dest` from uncompressed layer tars, built once (kept as a cache)."""
    if (dest / "index.json").exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        (work / "blobs" / "sha256").mkdir(parents=True)
        # Level 1: most of the size gain at a fraction of level 6's time on a 30 MB layer.
        blobs = [_blob(work, gzip.compress(layer, compresslevel=1, mtime=0)) for layer in layers]
        config = {
            "architecture": GOARCH.get(platform.machine(), platform.machine()),
            "os": "linux",
            "created": "1970-01-01T00:00:00Z",
            "config": run_config,
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(x).hexdigest()}" for x in layers]},
            "history": [{"created": "1970-01-01T00:00:00Z", "created_by": created_by} for _ in layers],
        }
        config_blob = _blob(work, json.dumps(config, sort_keys=True).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_blob},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **b} for b in blobs],
        }
        manifest_blob = _blob(work, json.dumps(manifest, sort_keys=True).encode())
        index = {
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest_blob,
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }],
        }
        (work / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        (work / "index.json").write_text(json.dumps(index))
        shutil.rmtree(dest, ignore_errors=True)
        work.rename(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def build_busybox_layout(dest: Path, busybox: Path) -> Path:
    """An OCI image layout of busybox at `dest`, built once (kept as a cache)."""
    if (dest / "index.json").exists():
        return dest
    return _write_layout(dest, [_busybox_rootfs(busybox)], {"Env": [DEFAULT_PATH], "Cmd": ["sh"]},
                         "floe: busybox-static rootfs", BUSYBOX_TAG)


def _shared_libraries(files: list[str]) -> set[str]:
    """The libraries `ldd` says these ELF files load, the dynamic loader included."""
    out = commands.run([commands.binary("ldd"), *files], check=False).stdout
    found: set[str] = set()
    for line in out.splitlines():
        if not line.startswith(("\t", " ")):
            continue  # "FILE:" headers of a multi-file ldd
        words = line.split()
        if "=>" in words and words.index("=>") + 1 < len(words) and words[words.index("=>") + 1].startswith("/"):
            found.add(words[words.index("=>") + 1])
        elif words and words[0].startswith("/"):
            found.add(words[0])  # the loader: "/lib64/ld-linux-x86-64.so.2 (0x…)"
    return found


def _python_layer(python: Path) -> bytes:
    """Uncompressed tar of the host's python3: its binary, stdlib and the libraries they load."""
    real = Path(os.path.realpath(python))
    stdlib = Path(commands.run([str(real), "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"])
                  .stdout.strip())
    extensions = sorted(str(p) for p in stdlib.rglob("*.so") if "config-" not in p.parent.name)
    libraries = _shared_libraries([str(real), *extensions])

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        # config-*: the static libpython for building extensions (25 MB), useless at run time.
        if info.name.startswith(f"{str(stdlib).lstrip('/')}/config-"):
            return None
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
        return info

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        parents = {str(p) for f in [str(real), str(stdlib), *libraries] for p in Path(f).parents} - {"/"}
        for directory in sorted(parents):
            tar.addfile(_tar_entry(directory.lstrip("/"), tarfile.DIRTYPE, 0o755))
        tar.add(str(stdlib), arcname=str(stdlib).lstrip("/"), filter=clean)
        for path in sorted({str(real), *libraries}):
            data = Path(path).read_bytes()  # follows symlinks: the file lands under the name ldd gave
            tar.addfile(_tar_entry(path.lstrip("/"), tarfile.REGTYPE, 0o755, size=len(data)), io.BytesIO(data))
        for alias in ("python3", "python"):
            if alias != real.name:
                tar.addfile(_tar_entry(f"{str(real.parent).lstrip('/')}/{alias}", tarfile.SYMTYPE, 0o777,
                                       linkname=real.name))
    return buffer.getvalue()


def build_python_layout(dest: Path, busybox: Path, python: Path) -> Path:
    """An OCI image layout of the host's python3 on the busybox rootfs, built once (kept as a cache).

    Two layers, the first the busybox image's own, so the registry stores it once.
    """
    if (dest / "index.json").exists():
        return dest
    return _write_layout(
        dest, [_busybox_rootfs(busybox), _python_layer(python)],
        {"Env": [DEFAULT_PATH, "LANG=C.UTF-8"], "Cmd": ["python3"]},
        f"floe: the host's {Path(os.path.realpath(python)).name} on busybox-static", PYTHON_TAG,
    )


def push_token(keys: registry_auth.Keys, repo: str) -> str:
    """floe's own token for one repository, short-lived: it is on skopeo's command line."""
    access = [{"type": "repository", "name": repo, "actions": ["pull", "push", "delete"]}]
    return keys.sign("floe", access, ttl=120)


def _skopeo_copy(source: str, address: str, dest_path: str, keys: registry_auth.Keys) -> None:
    token = push_token(keys, dest_path.rpartition(":")[0])
    commands.run([
        commands.binary("skopeo"), "--insecure-policy", "copy", "--quiet", "--format", "v2s2",
        "--dest-tls-verify=false", "--dest-registry-token", token, source, f"docker://{address}/{dest_path}",
    ])


def _no_colon(path: Path) -> str:
    # skopeo transports split their argument on ':', so a colon in the path cannot be expressed.
    if ":" in str(path):
        raise ProviderError(f"path {path} contains ':' which skopeo cannot take")
    return str(path)


def ensure_shipped(client: httpx.Client, address: str, cache: Path, keys: registry_auth.Keys) -> None:
    """Make sure `library/busybox` and `library/python` are in the registry (fast when they are).

    Both are built offline from the host (busybox-static, its python3) once and cached.
    """
    busybox = Path(commands.binary("busybox"))
    if not manifest_exists(client, address, BUSYBOX_REPO, BUSYBOX_TAG, keys):
        layout = build_busybox_layout(cache / "busybox-oci", busybox)
        _skopeo_copy(f"oci:{_no_colon(layout)}:{BUSYBOX_TAG}", address, f"{BUSYBOX_REPO}:{BUSYBOX_TAG}", keys)
    python = Path(HOST_PYTHON)
    if not python.exists():
        log.warning("no %s on this host: the python image is not shipped", HOST_PYTHON)
        return
    if not manifest_exists(client, address, PYTHON_REPO, PYTHON_TAG, keys):
        layout = build_python_layout(cache / "python-oci", busybox, python)
        _skopeo_copy(f"oci:{_no_colon(layout)}:{PYTHON_TAG}", address, f"{PYTHON_REPO}:{PYTHON_TAG}", keys)


def mirror_name(reference: str, namespace: str) -> tuple[str, str]:
    """(path:tag in floe's registry, name usable in a stack file) for an image imported into `namespace`.

    Every image lands in the namespace, and is used by a Docker Hub name the mirror serves:
    `tool:1` → `NS/tool:1`; `foo/bar` → `NS/foo/bar`; `ghcr.io/x/y` → `NS/ghcr.io/x/y`;
    into `library`, `busybox:1` is `library/busybox:1` used as `busybox:1`, `foo/bar` is used as
    `library/foo/bar`.
    """
    if "@" in reference:
        raise ProviderError(f"image reference {reference!r}: digests are not supported, use a tag")
    name, tag = reference, "latest"
    colon = reference.rfind(":")
    if colon > reference.rfind("/"):
        name, tag = reference[:colon], reference[colon + 1:]
    first, _, rest = name.partition("/")
    path = name
    if rest and ("." in first or ":" in first or first == "localhost"):
        path = rest if first in HUB_DOMAINS else f"{first.replace(':', '-')}/{rest}"
    path = path.removeprefix("library/")
    if not path.startswith(f"{namespace}/"):
        path = f"{namespace}/{path}"
    short = path.removeprefix(f"{registry_auth.LIBRARY}/")
    # Docker drops `library/` only from one-component names: `foo/bar` means the `foo/bar` repository.
    usable = f"{short if '/' not in short else path}:{tag}"
    if not IMAGE_TAG_RE.match(tag) or not all(PATH_COMPONENT_RE.match(c) for c in path.split("/")):
        raise ProviderError(f"invalid image reference {reference!r}")
    return f"{path}:{tag}", usable


def import_archive(archive: Path, address: str, namespace: str, keys: registry_auth.Keys) -> list[str]:
    """Push every tagged image of a `docker save` tarball into `namespace`; return the names to use."""
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
            dest, name = mirror_name(reference, namespace)
            # @index picks the image by position: no ambiguity in how skopeo reads the tag.
            _skopeo_copy(f"docker-archive:{source}:@{index}", address, dest, keys)
            usable.append(name)
    if not usable:
        raise ProviderError(f"{archive} holds no tagged image (docker save NAME:TAG, not an image id)")
    return usable

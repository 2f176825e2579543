"""The restricted node policy: a dockerd authorization plugin that refuses host-root requests.

A local node is namespaces on the host's kernel, not a machine: a tenant who may run
`docker run --privileged` or bind the host's `/` into a container is root on the host. With
FLOE_NODE_POLICY=restricted every node's dockerd runs with `--authorization-plugin` naming
this plugin, which refuses privileged containers and execs, host bind mounts other than a
share's root `/mnt/NAME`, capabilities beyond Docker's default set, devices, the host's
pid/ipc/user namespaces, unconfined security profiles, volumes that mount host paths or
devices, plugin installs and swarm services asking for any of these. Host networking (the
node's own network namespace) stays allowed.

The plugin speaks Docker's legacy plugin protocol (HTTP on a unix socket): POST
/Plugin.Activate answers {"Implements": ["authz"]}; /AuthZPlugin.AuthZReq gets the request
(method, URI, headers, the body base64-encoded) and answers {"Allow": bool, "Msg": why};
/AuthZPlugin.AuthZRes allows every response. It runs inside the node's mount namespace,
whose /run is private, so dockerd finds it at /run/docker/plugins/floe-policy.sock with no
host-wide spec file. dockerd fails closed: while the plugin is down, requests wait for it
(dockerd retries with backoff, about 45 s) and are then refused; the node's start script
restarts it 0.2 s after it dies.

Standard library only: the node runs this file as `python -I -S authz.py SOCKET`.
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
import re
import socketserver
import sys
import time
from urllib.parse import unquote

PLUGIN_NAME = "floe-policy"
SOCKET = f"/run/docker/plugins/{PLUGIN_NAME}.sock"
SHARES_ROOT = "mnt"  # shares are mounted at /mnt/NAME in every node

# Docker's default capabilities (oci/caps/defaults.go): adding one of them changes nothing.
DEFAULT_CAPS = frozenset({
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
    "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
})
MOUNT_TYPES = frozenset({"bind", "volume", "tmpfs"})
# Namespaces a container may not share with its node; the network namespace may be (--network host).
HOST_NAMESPACES = {
    "PidMode": "--pid host (the node's processes, dockerd's among them)",
    "IpcMode": "--ipc host (nodes share the host's IPC namespace)",
    "UsernsMode": "--userns host",
}
# Options of the local volume driver's `o` that are safe on a tmpfs; anything else (bind,
# rbind, move, remount, …) is a mount(2) flag that could reach host paths.
TMPFS_OPTION = re.compile(r"^(?:(?:size|mode|uid|gid|nr_inodes|nr_blocks)=[\w.%]+|ro|rw|noexec|nosuid|nodev|"
                          r"exec|suid|dev|noatime|relatime|strictatime)$")
VERSION_PREFIX = re.compile(r"^/v([0-9.]+)(?=/)")


# Runs in the node before docker-init ($1 python, $2 this file, $3 the socket, $4 the log, then
# the command): the plugin, restarted whenever it dies (dockerd retries meanwhile), and a wait of
# at most 5 s for its socket: dockerd needs the plugin to start, and looks again only after 1 s.
START_SCRIPT = r"""
py="$1"; plugin="$2"; sock="$3"; log="$4"; shift 4
( while :; do "$py" -I -S "$plugin" "$sock" >>"$log" 2>&1 </dev/null; sleep 0.2; done ) &
i=0
while [ ! -S "$sock" ] && [ "$i" -lt 500 ]; do sleep 0.01; i=$((i + 1)); done
exec "$@"
"""


def node_command(command: list[str], log: str) -> list[str]:
    """`command` (the node's docker-init and dockerd) preceded by the plugin's start."""
    return ["/bin/sh", "-c", START_SCRIPT, PLUGIN_NAME, sys.executable, os.path.abspath(__file__), SOCKET, log,
            *command]


def daemon_options() -> dict:
    """What daemon.json needs for dockerd to ask the plugin about every request."""
    return {"authorization-plugins": [PLUGIN_NAME]}


class Refused(Exception):
    """A request the policy refuses; the message says why, as the tenant will read it."""


# -- JSON as dockerd decodes it ------------------------------------------------------------
# Go's encoding/json matches struct fields case-insensitively (Kelvin sign and long s
# included) and a repeated key sets a field again. So keys are folded, and every value a
# key had is kept: a request is refused if any of them is refused, whichever Go would use.


class _Object(dict):
    """A JSON object: folded key -> every value it was given."""


def _object(pairs: list[tuple[str, object]]) -> _Object:
    obj = _Object()
    for key, value in pairs:
        obj.setdefault(key.casefold(), []).append(value)
    return obj


def _values(obj: object, key: str) -> list:
    """Every value of `key` in `obj` (none if obj is not an object, or for null)."""
    if not isinstance(obj, _Object):
        return []
    return [v for v in obj.get(key.casefold(), []) if v is not None]


def _objects(obj: object, key: str) -> list[_Object]:
    return [v for v in _values(obj, key) if isinstance(v, _Object)]


def _strings(obj: object, key: str) -> list[str]:
    """Every string under `key`, whether given as a string or as a list of them."""
    out: list[str] = []
    for value in _values(obj, key):
        items = value if isinstance(value, list) else [value]
        for item in items:
            if not isinstance(item, str):
                raise Refused(f"{key} must hold strings")
            out.append(item)
    return out


def _parse(body: bytes | None) -> _Object:
    if not body:
        # dockerd forwards a body only when it is JSON (exactly `application/json`) and under
        # 1 MiB, yet decodes others: what the plugin cannot read, it cannot allow.
        raise Refused("the request has no JSON body the node policy can read (send Content-Type: application/json)")
    try:
        doc = json.loads(body, object_pairs_hook=_object)
    except (ValueError, RecursionError):
        raise Refused("the request body is not JSON the node policy can read") from None
    if not isinstance(doc, _Object):
        raise Refused("the request body is not a JSON object")
    return doc


# -- the rules -----------------------------------------------------------------------------


def check_bind_source(source: str) -> None:
    """A host path may be bound only if it is a share's root, /mnt/NAME.

    Not /mnt (its entries could be replaced) nor a directory inside a share: a tenant can
    write there, and a directory swapped for a symlink to / between this check and the
    mount (dockerd resolves the path when the container starts) would bind the host's root.
    """
    parts = [p for p in source.split("/") if p not in ("", ".")]
    if not (source.startswith("/") and len(parts) == 2 and parts[0] == SHARES_ROOT and parts[1] != ".."):
        raise Refused(
            f"bind mount of {source} refused: on this node only a share's root (/mnt/NAME) may be bound "
            "from the host"
        )


def _check_volume_options(options: list[_Object], where: str) -> None:
    """The local driver's options mount what they name (type=none,o=bind,device=/ binds the host's /)."""
    for opts in options:
        for key, values in opts.items():
            for value in values:
                if not isinstance(value, str):
                    raise Refused(f"{where}: option {key} must be a string")
                if key == "type" and value.casefold() != "tmpfs":
                    raise Refused(f"{where}: type {value!r} refused: a volume's driver options may only make a tmpfs")
                if key == "device" and value.casefold() != "tmpfs":
                    raise Refused(f"{where}: device {value!r} refused: volumes may not mount host paths or devices")
                if key == "o" and not all(TMPFS_OPTION.match(o) for o in value.split(",") if o):
                    raise Refused(f"{where}: mount options {value!r} refused (bind and other flags that reach host "
                                  "paths are not allowed)")
                if key not in ("type", "device", "o", "size"):
                    raise Refused(f"{where}: driver option {key!r} refused")


def _check_mounts(mounts: list, where: str) -> None:
    for mount in mounts:
        if not isinstance(mount, _Object):
            raise Refused(f"{where}: a mount must be an object")
        for kind in _strings(mount, "Type"):
            if kind.casefold() not in MOUNT_TYPES:
                raise Refused(f"{where}: mount type {kind!r} refused (allowed: bind under /mnt, volume, tmpfs)")
        for source in _strings(mount, "Source"):
            if source.startswith("/"):
                check_bind_source(source)
        for volume in _objects(mount, "VolumeOptions"):
            for driver in _objects(volume, "DriverConfig"):
                _check_volume_options(_objects(driver, "Options"), where)


def _check_caps(caps: list[str], where: str) -> None:
    for cap in caps:
        name = cap.upper().removeprefix("CAP_")
        if name not in DEFAULT_CAPS:
            raise Refused(f"{where}: capability {cap} refused: only Docker's default capabilities are allowed")


def _check_resources(obj: _Object) -> None:
    if any(_values(obj, "Devices")):
        raise Refused("devices refused: a container may not use the host's devices (--device)")
    if any(_values(obj, "DeviceCgroupRules")):
        raise Refused("device cgroup rules refused (--device-cgroup-rule)")


def check_host_config(hc: _Object) -> None:
    """The fields of a HostConfig that would reach beyond the container."""
    if any(v is not False for v in _values(hc, "Privileged")):
        raise Refused("privileged containers refused: --privileged is root on the host's kernel")
    for bind in _strings(hc, "Binds"):
        source = bind.split(":", 1)[0]
        if ":" in bind and source.startswith("/"):  # without a colon it names an anonymous volume
            check_bind_source(source)
    _check_mounts([m for v in _values(hc, "Mounts") for m in (v if isinstance(v, list) else [v])], "mount")
    _check_caps(_strings(hc, "CapAdd"), "--cap-add")
    _check_resources(hc)
    for key, why in HOST_NAMESPACES.items():
        if any(isinstance(v, str) and v.casefold() == "host" for v in _values(hc, key)):
            raise Refused(f"{why} refused")
    for opt in _strings(hc, "SecurityOpt"):
        if not opt.casefold().startswith("no-new-privileges"):
            raise Refused(f"--security-opt {opt.split('=', 1)[0].split(':', 1)[0]} refused: only "
                          "no-new-privileges is allowed")
    # An explicit list replaces the default masks: [] leaves /proc/sys writable (core_pattern).
    for key in ("MaskedPaths", "ReadonlyPaths"):
        if _values(hc, key):
            raise Refused(f"{key} refused: the default masked and read-only paths stay (systempaths=unconfined)")


def check_container_create(doc: _Object) -> None:
    # dockerd still reads HostConfig fields given at the top level (a deprecated form).
    check_host_config(doc)
    for hc in _values(doc, "HostConfig"):
        if not isinstance(hc, _Object):
            raise Refused("HostConfig must be an object")
        check_host_config(hc)


def check_service(doc: _Object) -> None:
    """A service's tasks are created by each node's executor without asking this plugin: check them here."""
    for task in _values(doc, "TaskTemplate"):
        if not isinstance(task, _Object):
            raise Refused("TaskTemplate must be an object")
        if _values(task, "PluginSpec") or any(
            isinstance(r, str) and r.casefold() == "plugin" for r in _values(task, "Runtime")
        ):
            raise Refused("plugin services refused: a Docker plugin may ask for host mounts and capabilities")
        for spec in _values(task, "ContainerSpec"):
            if not isinstance(spec, _Object):
                raise Refused("ContainerSpec must be an object")
            _check_mounts([m for v in _values(spec, "Mounts") for m in (v if isinstance(v, list) else [v])],
                          "service mount")
            _check_caps(_strings(spec, "CapabilityAdd"), "service --cap-add")
            for priv in _objects(spec, "Privileges"):
                for selinux in _objects(priv, "SELinuxContext"):
                    if any(v is not False for v in _values(selinux, "Disable")):
                        raise Refused("service privileges refused: SELinux labels may not be disabled")
                for key, bad in (("Seccomp", "unconfined"), ("AppArmor", "disabled")):
                    for profile in _objects(priv, key):
                        if any(isinstance(m, str) and m.casefold() in (bad, "custom")
                               for m in _values(profile, "Mode")):
                            raise Refused(f"service privileges refused: {key} stays Docker's default")


def _route(uri: str) -> tuple[str, tuple[int, ...] | None]:
    """The path as dockerd's router matches it, without its version prefix, and that version."""
    raw = uri.split("?", 1)[0]
    # The router matches the decoded path: /containers/%63reate is /containers/create.
    path = "/" + posixpath.normpath(unquote(raw)).lstrip("/")
    match = VERSION_PREFIX.match(path)
    if not match:
        return path, None
    # As dockerd compares versions: numbers between the dots ("01.23" is 1.23), "" is 0.
    return path[match.end():], tuple(int(n) if n else 0 for n in match.group(1).split("."))


def decide(method: str, uri: str, body: bytes | None, headers: dict[str, str] | None = None) -> str | None:
    """None to allow the request; otherwise why it is refused."""
    path, version = _route(uri)
    try:
        if method != "POST":
            return None
        if path == "/containers/create":
            check_container_create(_parse(body))
        elif re.fullmatch(r"/containers/[^/]+/exec", path):
            if any(v is not False for v in _values(_parse(body), "Privileged")):
                raise Refused("privileged exec refused: --privileged is root on the host's kernel")
        elif re.fullmatch(r"/containers/[^/]+/update", path):
            _check_resources(_parse(body))
        elif re.fullmatch(r"/containers/[^/]+/start", path):
            # Before API 1.24 a start could carry a HostConfig (privileged, binds) that dockerd
            # applies; a chunked one would not even show a Content-Length here.
            length = {k.casefold(): v for k, v in (headers or {}).items()}.get("content-length", "")
            if (version is not None and version < (1, 24)) or body or length not in ("", "0"):
                raise Refused("a container start through API < 1.24 or with a body (a HostConfig) is refused")
        elif path in ("/services/create",) or re.fullmatch(r"/services/[^/]+/update", path):
            check_service(_parse(body))
        elif path == "/volumes/create":
            doc = _parse(body)
            _check_volume_options(_objects(doc, "DriverOpts"), "volume")
        elif path.startswith("/plugins/"):
            raise Refused("installing or configuring Docker plugins is refused: a plugin may ask for host mounts "
                          "and capabilities")
    except Refused as exc:
        return str(exc)
    return None


# -- the plugin server ---------------------------------------------------------------------


def answer(path: str, raw: bytes) -> tuple[int, dict]:
    """The plugin's answer to one call of dockerd's: (HTTP status, JSON body)."""
    if path == "/Plugin.Activate":
        return 200, {"Implements": ["authz"]}
    if path == "/AuthZPlugin.AuthZRes":
        return 200, {"Allow": True}
    if path != "/AuthZPlugin.AuthZReq":
        return 404, {"Err": f"unknown method {path}"}
    method = uri = who = "?"
    try:
        req = json.loads(raw or b"{}")
        body = base64.b64decode(req["RequestBody"]) if req.get("RequestBody") else None
        method, uri = str(req.get("RequestMethod", "")), str(req.get("RequestUri", ""))
        who = str(req.get("User") or "local socket")
        reason = decide(method, uri, body, req.get("RequestHeaders") or {})
    except Exception as exc:  # noqa: BLE001 (whatever went wrong, the request is refused)
        reason = f"the node policy could not read the request: {exc}"
    if reason is None:
        return 200, {"Allow": True}
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} refused {method} {uri} ({who}): {reason}", flush=True)
    return 200, {"Allow": False, "Msg": f"floe node policy (restricted): {reason}"}


class _Handler(socketserver.StreamRequestHandler):
    """HTTP/1.1 as dockerd's plugin client speaks it (keep-alive, Content-Length bodies).

    By hand rather than with http.server, whose imports (email, html, …) would double the
    plugin's memory in every node.
    """

    def handle(self) -> None:
        while True:
            line = self.rfile.readline(65537)
            if not line:
                return
            parts = line.split()
            if len(parts) != 3:
                return
            headers: dict[str, str] = {}
            while (header := self.rfile.readline(65537)) not in (b"\r\n", b"\n", b""):
                name, _, value = header.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            if "chunked" in headers.get("transfer-encoding", "").lower():
                raw = b""
                while size := int(self.rfile.readline(65537).split(b";")[0] or b"0", 16):
                    raw += self.rfile.read(size)
                    self.rfile.readline()
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
            else:
                raw = self.rfile.read(int(headers.get("content-length") or 0))
            status, doc = answer(parts[1].decode("latin-1").split("?", 1)[0], raw)
            data = json.dumps(doc).encode()
            self.wfile.write(
                f"HTTP/1.1 {status} {'OK' if status == 200 else 'Not Found'}\r\n"
                f"Content-Type: application/vnd.docker.plugins.v1.2+json\r\nContent-Length: {len(data)}\r\n\r\n"
                .encode() + data
            )
            self.wfile.flush()
            if headers.get("connection", "").lower() == "close":
                return


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def serve(path: str = SOCKET) -> None:
    """Listen on `path` until killed; the socket appears only once it accepts connections."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.{os.getpid()}"
    for stale in (tmp, path):
        try:
            os.unlink(stale)
        except FileNotFoundError:
            pass
    server = _Server(tmp, _Handler)  # bound and listening
    os.chmod(tmp, 0o600)
    os.rename(tmp, path)
    server.serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1] if len(sys.argv) > 1 else SOCKET)

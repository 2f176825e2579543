"""A node's dockerd: its files, its launch inside the node's namespaces, readiness and adoption.

Process tree of a node (pid 1 of its own pid namespace is docker-init):

    nsenter --net=/run/netns/NS  →(exec) unshare --mount --uts --pid --fork --kill-child …
        └─ sh (mounts, hostname, joins cgroups) →(exec) docker-init → dockerd → containerd → shims

The unshare process is the handle floe keeps (pidfile): SIGKILL on it makes the kernel
SIGKILL its child (--kill-child), and the death of a pid namespace's init kills every
process in it, so one signal stops the whole node. unshare ignores SIGTERM.

Users reach dockerd over mutual TLS on ADDRESS:2376 through floe's TLS proxy (tlsproxy.py), a
child of the node's pid 1 started beside dockerd, which itself listens on its unix socket only:
the proxy reloads its certificates when the files change, dockerd could not (CA rotation).

With the restricted node policy, a sh before docker-init starts the policy's authorization
plugin (authz.py, restarted if it dies) in the node and waits for its socket in the node's /run.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import shlex
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from floe.host import cgroups, commands, mounts, processes
from floe.providers.base import NodeSpec, ProviderError, TLSMaterial
from floe.providers.local import authz

TLS_PORT = 2376
READY_TIMEOUT = 90.0
POLL_INTERVAL = 0.02
# sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107
SOCKET_NAME = "docker.sock"

# Runs as the node's pid 1 before docker-init; all variable parts are positional
# arguments, never spliced into the script.
#   $1 hostname, $2 the cluster's share directory ("" for none), $3 $4 floe's storage root
#   and nodes directory (whose mounts the node drops), $5 the TLS proxy's command line as one
#   shell-quoted word list ("" for none), then cgroup.procs files, "--", mount triples
#   (type target options), "--", command
#
# Shares: the host's share directory of the cluster is a shared mount, rbound here onto
# /mnt as a slave, so a share mounted there later appears at /mnt/<name> in every node.
# The node then drops its copies of floe's other mounts (share images, other clusters'
# share directories): they would keep those filesystems busy for as long as it lives.
NODE_SCRIPT = r"""
set -e
hostname "$1"
shares="$2"; storage="$3"; nodes="$4"; proxy="$5"; shift 5
while [ "$1" != "--" ]; do echo 0 > "$1"; shift; done; shift
mount -t tmpfs -o mode=755 tmpfs /run
umount -l /sys
mount -t sysfs sysfs /sys
while [ "$1" != "--" ]; do mount -t "$1" -o "X-mount.mkdir,$3" "$1" "$2"; shift 3; done; shift
if [ -n "$shares" ]; then
  mount --rbind "$shares" /mnt
  mount --make-rslave /mnt
fi
if [ -n "$storage" ] && [ -n "$nodes" ]; then
  { awk -v s="$storage" -v n="$nodes/" \
      '$5 == s || index($5, s "/") == 1 || (index($5, n) == 1 && $5 ~ /\/\.mnt(\/|$)/) {print $5}' \
      /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done; } || true
fi
if [ -n "$proxy" ]; then
  # Restarted if it ever dies; it goes with the node (a child of the node's pid 1).
  ( while :; do eval "$proxy"; sleep 1; done ) &
fi
exec "$@"
"""


@dataclass(frozen=True)
class NodePaths:
    """Files of one node under home/nodes/TAG/NAME (or a shortened NAME, see naming.node_dir_name)."""

    dir: Path
    name: str = ""  # the node's name, which the directory's may only begin with

    @property
    def node(self) -> str:
        return self.name or self.dir.name

    @property
    def config(self) -> Path:
        return self.dir / "daemon.json"

    @property
    def sock(self) -> Path:
        return self.dir / SOCKET_NAME

    @property
    def pidfile(self) -> Path:
        return self.dir / "node.pid"

    @property
    def log(self) -> Path:
        return self.dir / "dockerd.log"

    @property
    def policy_log(self) -> Path:
        return self.dir / "policy.log"

    @property
    def meta(self) -> Path:
        return self.dir / "node.json"

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def tls_dir(self) -> Path:
        return self.dir / "tls"


def daemon_config(spec: NodeSpec, paths: NodePaths, cgroup: str, restricted: bool = False) -> dict:
    """daemon.json of a node; `restricted`: every request is put to the node policy (authz.py)."""
    try:
        pool = ipaddress.IPv4Network(spec.docker_pool)
    except ValueError as exc:
        raise ProviderError(f"invalid docker_pool {spec.docker_pool!r}: {exc}") from None
    if pool.prefixlen > 23:
        raise ProviderError(f"docker_pool {pool} is too small: a /23 or larger is needed")
    bridge_net, pools_net = itertools.islice(pool.subnets(new_prefix=24), 2)
    config: dict = {
        "bip": f"{bridge_net.network_address + 1}/24",
        "default-address-pools": [{"base": str(pools_net), "size": 26}],
        # TLS on ADDRESS:2376 is the node's TLS proxy's (tlsproxy.py), so its certificates can change.
        "hosts": [f"unix://{paths.sock}"],
        "shutdown-timeout": 2,
        "labels": [f"{k}={v}" for k, v in sorted(spec.labels.items())],
        # Absolute: containers go to /<cgroup>/<id>, next to the daemons in /<cgroup>/daemon.
        "cgroup-parent": f"/{cgroup}",
        "iptables": True,
        "data-root": str(paths.data),
        # /run is a tmpfs private to the node: short socket paths, nothing left on disk,
        # and no sharing of /run/docker/netns or /run/containerd between nodes.
        "exec-root": "/run/docker",
        "pidfile": "/run/docker.pid",
        "log-opts": {"max-size": "10m", "max-file": "3"},
    }
    if restricted:
        config.update(authz.daemon_options())
    if spec.registry is not None:
        config["registry-mirrors"] = [f"http://{spec.registry.address}"]
        config["insecure-registries"] = [spec.registry.address]
    return config


def write_files(spec: NodeSpec, paths: NodePaths, cgroup: str, restricted: bool = False) -> None:
    """daemon.json, TLS files (key 0600) and node.json; the directory is 0700 (it holds docker.sock)."""
    if len(os.fsencode(paths.sock)) > MAX_SOCKET_PATH:
        raise ProviderError(f"node directory path too long for a unix socket: {paths.sock}")
    paths.dir.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.dir, 0o700)
    write_tls(paths, spec.tls)
    commands.write_file(paths.config, json.dumps(daemon_config(spec, paths, cgroup, restricted), indent=2))
    meta = {
        "name": spec.name, "address": spec.address, "tls_url": f"tcp://{spec.address}:{TLS_PORT}", "cgroup": cgroup,
    }
    commands.write_file(paths.meta, json.dumps(meta))


def write_tls(paths: NodePaths, tls: TLSMaterial) -> None:
    """The TLS proxy's files, each replaced atomically (key 0600).

    Key first, CA last: the proxy refuses a certificate without its key and retries a second
    later, so it never serves a mix of old and new files for long.
    """
    paths.tls_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    commands.write_file(paths.tls_dir / "key.pem", tls.key_pem, mode=0o600)
    commands.write_file(paths.tls_dir / "cert.pem", tls.cert_pem)
    commands.write_file(paths.tls_dir / "ca.pem", tls.ca_pem)


def dockerd_serves_tls(paths: NodePaths) -> bool:
    """Whether the node's dockerd listens on TCP itself (nodes started before the TLS proxy)."""
    try:
        config = json.loads(paths.config.read_text())
    except (OSError, ValueError):
        return False
    return bool(config.get("tlsverify")) or any(str(h).startswith("tcp://") for h in config.get("hosts", []))


def wait_serving(address: str, ca_pem: str, timeout: float = READY_TIMEOUT) -> None:
    """Wait until ADDRESS:TLS_PORT presents a certificate issued by `ca_pem`'s CA.

    Only the server's certificate is read (TLS 1.3 sends it before asking for the client's).
    """
    from cryptography import x509  # slow to import; only rotation needs it here
    from cryptography.exceptions import InvalidSignature

    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            served = ssl.get_server_certificate((address, TLS_PORT), timeout=2.0)
            x509.load_pem_x509_certificate(served.encode()).verify_directly_issued_by(ca)
            return
        except (OSError, ValueError, TypeError, InvalidSignature) as exc:
            last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if time.monotonic() > deadline:
            raise ProviderError(
                f"the TLS endpoint {address}:{TLS_PORT} does not serve a certificate of the new CA "
                f"after {timeout:.0f}s ({last})",
                temporary=True,
            )
        time.sleep(0.1)


def read_meta(paths: NodePaths) -> dict:
    """node.json (address, tls_url, cgroup) as written at start; {} if absent."""
    try:
        return json.loads(paths.meta.read_text())
    except (OSError, ValueError):
        return {}


def is_node_process(pid: int, paths: NodePaths) -> bool:
    """Whether `pid` is this node's unshare process (and not a recycled pid)."""
    argv = processes.cmdline(pid)
    return bool(argv) and os.path.basename(argv[0]) == "unshare" and str(paths.config) in argv


def live_pid(paths: NodePaths) -> int | None:
    """The pid of the node's running unshare process, from its pidfile, or None."""
    pid = processes.read_pid(paths.pidfile)
    if pid is not None and processes.running(pid) and is_node_process(pid, paths):
        return pid
    return None


def launch(
    netns_name: str,
    hostname: str,
    paths: NodePaths,
    cgroup_procs: list[str],
    shares_dir: Path | None = None,
    hidden: tuple[Path, Path] | None = None,
    tls_address: str | None = None,
    restricted: bool = False,
) -> subprocess.Popen:
    """Start the node detached (own session) and record its pid.

    `shares_dir` (a shared mount) becomes the node's /mnt; `hidden` names floe's storage
    root and nodes directory, whose share mounts the node drops from its own view;
    `tls_address` is where the node's TLS proxy listens (port TLS_PORT); `restricted` starts
    the node policy's plugin (authz.py) before dockerd.
    """
    proxy = shlex.join(tls_proxy_command(paths, tls_address)) if tls_address else ""
    mount_args: list[str] = []
    for m in cgroups.mounts():
        mount_args += [m.fstype, m.target, m.options]
    args = [
        commands.binary("nsenter"), f"--net=/run/netns/{netns_name}", "--",
        commands.binary("unshare"), "--mount", "--uts", "--pid", "--fork", "--mount-proc",
        "--kill-child", "--propagation", "slave", "--",
        "/bin/sh", "-c", NODE_SCRIPT, "floe-node",
        hostname, str(shares_dir or ""), *(str(p) for p in hidden or ("", "")), proxy,
        *cgroup_procs, "--", *mount_args, "--",
    ]
    command = [commands.binary("docker-init"), "--", commands.binary("dockerd"), "--config-file", str(paths.config)]
    args += authz.node_command(command, str(paths.policy_log)) if restricted else command
    proc = processes.spawn_detached(args, paths.log, paths.dir)
    commands.write_file(paths.pidfile, f"{proc.pid}\n")
    return proc


def tls_proxy_command(paths: NodePaths, address: str) -> list[str]:
    """The node's TLS proxy: this Python, isolated and without site-packages (it needs the stdlib only)."""
    return [
        sys.executable, "-I", "-S", str(Path(__file__).with_name("tlsproxy.py")),
        address, str(TLS_PORT), str(paths.tls_dir), str(paths.sock),
    ]


def wait_ready(paths: NodePaths, pid: int, timeout: float = READY_TIMEOUT) -> None:
    """Poll dockerd's /_ping on the unix socket until it answers; ProviderError with the log if not."""
    deadline = time.monotonic() + timeout
    # Plain HTTP on a unix socket: verify=False skips loading the CA bundle (~30 ms).
    transport = httpx.HTTPTransport(uds=str(paths.sock), verify=False)
    with httpx.Client(transport=transport, timeout=2.0, trust_env=False) as client:
        while True:
            if paths.sock.exists():
                try:
                    if client.get("http://docker/_ping").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
            if not processes.running(pid):
                raise ProviderError(
                    f"dockerd of {paths.node} exited during start:\n{commands.log_tail(paths.log)}"
                )
            if time.monotonic() > deadline:
                raise ProviderError(
                    f"dockerd of {paths.node} did not answer within {timeout:.0f}s:\n"
                    f"{commands.log_tail(paths.log)}",
                    temporary=True,
                )
            time.sleep(POLL_INTERVAL)


def remove_dir(paths: NodePaths) -> bool:
    """Delete the node's directory (data included), never crossing a mount; False if it was not there."""
    try:
        return mounts.remove_tree(paths.dir)
    except mounts.MountError as exc:
        raise ProviderError(str(exc), temporary=True) from None

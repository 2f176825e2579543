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
import logging
import os
import re
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
from floe.providers.local import authz, stats

log = logging.getLogger("floe.provider")

TLS_PORT = 2376
# Swarm generic resource of a GPU; Swarm names the task's variable DOCKER_RESOURCE_<kind>.
GPU_RESOURCE = "NVIDIA-GPU"
NVIDIA_RUNTIME = "nvidia-container-runtime"
NVIDIA_RUNTIME_CONFIG = "/etc/nvidia-container-runtime/config.toml"
LOOP_RELEASE_TIMEOUT = 10.0
READY_TIMEOUT = 90.0
POLL_INTERVAL = 0.02
# sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107
SOCKET_NAME = "docker.sock"

# Runs as the node's pid 1 before docker-init; all variable parts are positional
# arguments, never spliced into the script.
#   $1 hostname, $2 the cluster's share directory ("" for none), $3 $4 floe's storage root
#   and nodes directory (whose mounts the node drops), $5 the TLS proxy's command line as one
#   shell-quoted word list ("" for none), $6 the node's own directory, $7 the CPUs to pin to
#   ("" for all), $8 the disk image ("" for none) and $9 where it is mounted (the data-root),
#   $10 XDG_CONFIG_HOME for the daemons ("" to leave it unset), $11 the node journal's
#   systemd-journald ("" for none; see journal.py), then cgroup.procs files, "--",
#   mount triples (type target options), "--", bind pairs (source target), "--", command
#
# Shares: the host's share directory of the cluster is a shared mount, rbound here onto
# /mnt as a slave, so a share mounted there later appears at /mnt/<name> in every node.
# The node then drops its copies of floe's other mounts (share images, every mount under
# the nodes directory but its own directory's): they would keep those filesystems busy for
# as long as it lives.
# Disk: the image is loop-mounted here, in the node's own mount namespace: mount(8) gives the
# loop device autoclear, so the kernel frees it when the namespace dies with the node.
# Binds: the node's /proc/meminfo (its flavor's memory, which dockerd reports) and /dev/null
# over the GPU devices that are not the node's.
NODE_SCRIPT = r"""
set -e
hostname "$1"
shares="$2"; storage="$3"; nodes="$4"; proxy="$5"; own="$6"; cpus="$7"; image="$8"; data="$9"; xdg="${10}"
journald="${11}"
shift 11
while [ "$1" != "--" ]; do echo 0 > "$1"; shift; done; shift
if [ -n "$cpus" ]; then
  taskset -p -c "$cpus" $$ >/dev/null || echo "floe-node: cannot pin to CPUs $cpus" >&2
fi
mount -t tmpfs -o mode=755 tmpfs /run
umount -l /sys
mount -t sysfs sysfs /sys
while [ "$1" != "--" ]; do mount -t "$1" -o "X-mount.mkdir,$3" "$1" "$2"; shift 3; done; shift
if [ -n "$shares" ]; then
  mount --rbind "$shares" /mnt
  mount --make-rslave /mnt
fi
if [ -n "$storage" ] && [ -n "$nodes" ]; then
  { awk -v s="$storage" -v n="$nodes/" -v o="$own/" \
      '$5 == s || index($5, s "/") == 1 || (index($5, n) == 1 && index($5 "/", o) != 1) {print $5}' \
      /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done; } || true
fi
if [ -n "$image" ]; then
  mount -t ext4 -o loop,discard "$image" "$data"
fi
while [ "$1" != "--" ]; do mount --bind "$1" "$2"; shift 2; done; shift
if [ -n "$journald" ]; then
  # The node's journal (journal.py), up before dockerd restarts containers that log to it.
  mkdir -p /run/log/journal /run/systemd/journald.conf.d
  mount --bind "$own/journal" /run/log/journal
  cp "$own/journald.conf" /run/systemd/journald.conf.d/floe.conf
  # `|| :`: a journald that dies must not end the loop (set -e).
  ( while :; do "$journald" || :; sleep 1; done ) &
  i=0
  while [ ! -S /run/systemd/journal/socket ] && [ "$i" -lt 250 ]; do sleep 0.02; i=$((i + 1)); done
fi
if [ -n "$proxy" ]; then
  # Restarted if it ever dies (`|| :`: one that exits non-zero must not end the loop under
  # set -e); it goes with the node (a child of the node's pid 1).
  ( while :; do eval "$proxy" || :; sleep 1; done ) &
fi
if [ -n "$xdg" ]; then
  export XDG_CONFIG_HOME="$xdg"
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

    @property
    def disk_image(self) -> Path:
        """The ext4 image holding `data` when the node's flavor has a disk size."""
        return self.dir / "disk.img"

    @property
    def meminfo(self) -> Path:
        """The node's /proc/meminfo (its flavor's memory)."""
        return self.dir / "meminfo"

    @property
    def xdg_config(self) -> Path:
        """XDG_CONFIG_HOME of the node's daemons: the nvidia runtime's config for this node."""
        return self.dir / "config"


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
        # dockerd's own metrics on the node's loopback: floe fetches them from inside the node
        # (stats.py); nothing outside the node reaches them.
        "metrics-addr": stats.metrics_address(),
    }
    if spec.gpus:
        # Swarm schedules `--generic-resource NVIDIA-GPU=N` onto nodes that advertise these and
        # hands a task the UUIDs it got in DOCKER_RESOURCE_NVIDIA-GPU (see write_nvidia_config).
        config["node-generic-resources"] = [f"{GPU_RESOURCE}={g.uuid}" for g in spec.gpus]
        runtime = commands.which(NVIDIA_RUNTIME)
        if runtime is not None:
            config["runtimes"] = {"nvidia": {"path": runtime}}
            config["default-runtime"] = "nvidia"
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


@dataclass(frozen=True)
class NodeShape:
    """What launch gives the node beyond its network: pinned CPUs, its disk, binds in its mount namespace."""

    cpus: tuple[int, ...] = ()  # CPUs to pin the daemons to; () = every CPU
    disk_image: Path | None = None  # loop-mounted on the data-root inside the node
    binds: tuple[tuple[str, str], ...] = ()  # (source, target) bind mounts inside the node
    xdg_config: Path | None = None  # XDG_CONFIG_HOME of the daemons (nvidia runtime config)


# -- memory ---------------------------------------------------------------------------


def meminfo_text(host_meminfo: str, memory_mb: int) -> str:
    """/proc/meminfo of a node of `memory_mb`: MemTotal is the flavor's (the host's if that is less).

    dockerd reports MemTotal in `docker info` and Swarm advertises it. MemFree and
    MemAvailable are capped by it; the file is a snapshot taken at the node's start, and only
    the node's own daemons read it (containers mount a /proc of their own).
    """
    lines = []
    total_kb: int | None = None
    for line in host_meminfo.splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if key in ("MemTotal", "MemFree", "MemAvailable") and fields and fields[0].isdigit():
            if key == "MemTotal":
                total_kb = min(int(fields[0]), memory_mb * 1024)
            value = min(int(fields[0]), total_kb if total_kb is not None else memory_mb * 1024)
            line = f"{key + ':':<16}{value:>8} kB"
        lines.append(line)
    if total_kb is None:  # no MemTotal line: still tell dockerd the node's size
        lines.insert(0, f"{'MemTotal:':<16}{memory_mb * 1024:>8} kB")
    return "\n".join(lines) + "\n"


def write_meminfo(paths: NodePaths, memory_mb: int | None) -> Path | None:
    """The node's meminfo file (None, and no file, for a node without a memory size)."""
    if not memory_mb:
        paths.meminfo.unlink(missing_ok=True)
        return None
    commands.write_file(paths.meminfo, meminfo_text(Path("/proc/meminfo").read_text(), memory_mb))
    return paths.meminfo


# -- disk -----------------------------------------------------------------------------


def _mkfs(image: Path) -> None:
    """ext4 on a fresh sparse file: no reserved blocks, nothing zeroed that is zero already.

    assume_storage_prezeroed (e2fsprogs 1.47) marks the inode tables initialised, so neither
    mkfs nor the kernel's lazy init writes them: 160 GB costs ~6 MB and a few ms.
    Older e2fsprogs lack the option; lazy init then zeroes the tables after the first mount.
    """
    base = ["mkfs.ext4", "-q", "-F", "-m", "0", "-L", "floe-node"]
    fast = "lazy_itable_init=1,lazy_journal_init=1,nodiscard"
    try:
        mounts.run([*base, "-E", f"{fast},assume_storage_prezeroed=1", str(image)], timeout=300)
    except mounts.MountError:
        mounts.run([*base, "-E", fast, str(image)], timeout=300)


def ensure_disk(paths: NodePaths, disk_gb: int | None) -> Path | None:
    """The node's disk image, made (or grown) to `disk_gb` GiB; None when the data-root is a plain directory.

    A node whose image exists keeps it whatever `disk_gb` says now (its data lives there);
    a larger size grows it, a smaller one is not applied (ext4 cannot shrink online and
    the data may not fit). A node with data from before disks existed keeps its plain
    directory. Call only while the node is not running.
    """
    image = paths.disk_image
    size = (disk_gb or 0) << 30
    if image.exists():
        current = image.stat().st_size
        if size > current:
            try:
                os.truncate(image, size)
                # resize2fs refuses a filesystem not checked since it was last mounted.
                mounts.run(["e2fsck", "-f", "-p", str(image)], timeout=600)
                mounts.run(["resize2fs", str(image)], timeout=600)
            except (OSError, mounts.MountError) as exc:
                raise ProviderError(f"cannot grow the disk of node {paths.node} to {disk_gb} GB: {exc}") from None
        elif size and size < current:
            log.warning("node %s keeps its %d GB disk (asked %d GB): a disk does not shrink",
                        paths.node, current >> 30, disk_gb)
        paths.data.mkdir(exist_ok=True)
        return image
    if not disk_gb:
        return None
    if paths.data.is_dir() and any(paths.data.iterdir()):
        log.info("node %s keeps its data directory: it holds data from before nodes had disks", paths.node)
        return None
    paths.data.mkdir(parents=True, exist_ok=True)
    # Made under another name and renamed: a crash in between leaves no half-made image in use.
    partial = image.with_name(image.name + ".partial")
    try:
        with open(partial, "wb") as f:
            f.truncate(size)
        _mkfs(partial)
        os.replace(partial, image)
    except (OSError, mounts.MountError) as exc:
        partial.unlink(missing_ok=True)
        raise ProviderError(f"cannot make the {disk_gb} GB disk of node {paths.node}: {exc}") from None
    return image


def loops_under(directory: Path) -> list[str]:
    """Loop devices whose backing file lies under `directory` (deleted files included)."""
    prefix = str(directory).rstrip("/") + "/"
    found = []
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            path = backing.read_text().strip()
        except OSError:  # detached meanwhile
            continue
        if path.startswith(prefix):
            found.append(f"/dev/{backing.parent.parent.name}")
    return sorted(found)


def wait_loops_released(directory: Path, timeout: float = LOOP_RELEASE_TIMEOUT) -> list[str]:
    """Wait until no loop device is backed by a file under `directory`; return those left.

    A node's loop device goes when its mount namespace does, which the kernel finishes a
    moment after the node's last process exits. One still there at the end is detached if
    nothing holds it (one made without autoclear); one still in use is returned.
    """
    deadline = time.monotonic() + timeout
    while True:
        left = loops_under(directory)
        if not left:
            return []
        if time.monotonic() > deadline:
            for dev in left:
                try:
                    mounts.run(["losetup", "--detach", dev], timeout=10)
                except mounts.MountError:
                    pass
            return loops_under(directory)
        time.sleep(POLL_INTERVAL)


# -- GPUs -----------------------------------------------------------------------------


def write_nvidia_config(paths: NodePaths) -> tuple[Path, str | None]:
    """The node's nvidia-container-runtime config: the host's with `swarm-resource` set.

    With it, the runtime's hook gives a Swarm task the GPUs Swarm chose for it (their UUIDs
    in DOCKER_RESOURCE_NVIDIA-GPU) rather than NVIDIA_VISIBLE_DEVICES. Returns the file (under
    the daemons' XDG_CONFIG_HOME, which the runtime reads) and the host's config path to bind
    it over (the hook, run by runc without that variable, reads /etc), None if there is none.
    """
    host = Path(NVIDIA_RUNTIME_CONFIG)
    try:
        text = host.read_text()
    except OSError:
        text = ""
    # swarm-resource is a top-level key: it must come before the first [table].
    kept = [line for line in text.splitlines() if not re.match(r"\s*swarm-resource\s*=", line)]
    config = "\n".join([f'swarm-resource = "DOCKER_RESOURCE_{GPU_RESOURCE}"', *kept]) + "\n"
    target = paths.xdg_config / "nvidia-container-runtime" / "config.toml"
    target.parent.mkdir(parents=True, exist_ok=True)
    commands.write_file(target, config)
    return target, (str(host) if host.is_file() else None)


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
    shape: NodeShape | None = None,
    journald: str | None = None,
) -> subprocess.Popen:
    """Start the node detached (own session) and record its pid.

    `shares_dir` (a shared mount) becomes the node's /mnt; `hidden` names floe's storage
    root and nodes directory, whose share mounts the node drops from its own view;
    `tls_address` is where the node's TLS proxy listens (port TLS_PORT); `restricted` starts
    the node policy's plugin (authz.py) before dockerd; `shape` pins CPUs, mounts the disk
    image and makes the binds of the node's flavor and GPUs; `journald` runs the node's journal
    (journal.py: its config and directory written first).
    """
    shape = shape or NodeShape()
    proxy = shlex.join(tls_proxy_command(paths, tls_address)) if tls_address else ""
    mount_args: list[str] = []
    for m in cgroups.mounts():
        mount_args += [m.fstype, m.target, m.options]
    bind_args = [part for pair in shape.binds for part in pair]
    args = [
        commands.binary("nsenter"), f"--net=/run/netns/{netns_name}", "--",
        commands.binary("unshare"), "--mount", "--uts", "--pid", "--fork", "--mount-proc",
        "--kill-child", "--propagation", "slave", "--",
        "/bin/sh", "-c", NODE_SCRIPT, "floe-node",
        hostname, str(shares_dir or ""), *(str(p) for p in hidden or ("", "")), proxy,
        str(paths.dir), ",".join(str(c) for c in shape.cpus),
        str(shape.disk_image or ""), str(paths.data), str(shape.xdg_config or ""), journald or "",
        *cgroup_procs, "--", *mount_args, "--", *bind_args, "--",
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

"""The `glusterfs` backend: a replicated GlusterFS volume per share, served by floe's storage nodes.

Storage nodes (3 by default, FLOE_GLUSTER_REPLICAS) are network namespaces on a bridge of
their own, each running one glusterd in its own mount and PID namespaces, with a tmpfs on
/run and its own /var/lib/glusterd and /var/log/glusterfs (bind mounts of directories under
FLOE_HOME/storage/gluster/nodes/sN): one host holds a real Gluster trusted pool. A share is a
`replica N` volume with one brick per node (FLOE_HOME/storage/gluster/bricks/sN/<volume>);
its size is Gluster's quota on the volume's root (enforced within about a second of writes,
so a share can overshoot its size a little before writes fail with EDQUOT).

Clusters mount a share with the FUSE client (`mount -t glusterfs`), made on the host in the
cluster's share directory and propagated to its nodes like any share; the volume's
`auth.allow` holds the host's address on the storage bridge plus any `ip` access rules.
Killing a storage node's PID namespace takes glusterd and every brick and self-heal daemon
with it; its state directory brings it back as it was (volumes, peers, data).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import subprocess
import threading
import time
from pathlib import Path

from floe.host import commands, mounts, processes
from floe.storage.base import (
    ACCESS_IP,
    EXTEND,
    ONLINE_EXTEND,
    READ_ONLY_MOUNTS,
    REPLICATION,
    SHRINK,
    Created,
    ExportLocation,
    ShareBackend,
    ShareRef,
    ShareTypeInfo,
    ShrinkRefused,
    StorageError,
    Usage,
)

REQUIRED = ("glusterd", "gluster", "glusterfs", "mount.glusterfs", "nsenter", "unshare")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
GLUSTERD_PORT = 24007
READY_TIMEOUT = 60.0
# Quota checks: every write within a second of the limit is checked against it (the defaults,
# 5 s and 60 s, let a share overshoot by seconds of writes; 0 costs half the throughput).
QUOTA_TIMEOUTS = {"soft-timeout": "1", "hard-timeout": "1"}
MIN_SIZE = 16 * 1024 * 1024

# Runs as the storage node's pid 1: $1 state directory for /var/lib/glusterd, $2 for logs.
NODE_SCRIPT = r"""
set -e
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/gluster
mount --bind "$1" /var/lib/glusterd
mount --bind "$2" /var/log/glusterfs
exec glusterd -N -p /run/glusterd.pid
"""

_lock = threading.Lock()


def _replicas() -> int:
    try:
        return max(1, int(os.environ.get("FLOE_GLUSTER_REPLICAS") or 3))
    except ValueError:
        return 3


def _check_id(share_id: str) -> str:
    if not UUID_RE.match(share_id):
        raise StorageError(f"invalid share id {share_id!r}: expected a lowercase uuid")
    return share_id



def _run(args: list[str], timeout: float = 120) -> str:
    try:
        return mounts.run(args, timeout=timeout)
    except mounts.MountError as exc:
        raise StorageError(str(exc), temporary=True) from None


class GlusterBackend(ShareBackend):
    """Replicated GlusterFS volumes on storage nodes in namespaces; needs root and glusterfs-server."""

    name = "glusterfs"
    share_proto = "GLUSTERFS"
    capabilities = frozenset({EXTEND, ONLINE_EXTEND, SHRINK, READ_ONLY_MOUNTS, REPLICATION, ACCESS_IP})

    def __init__(self, storage_root: Path, subnet: str | None = None, replicas: int | None = None):
        self.storage_root = Path(storage_root).absolute()
        self.root = self.storage_root / "gluster"
        self.stage = self.storage_root / "stage"
        self.replicas = replicas or _replicas()
        self.subnet = ipaddress.IPv4Network(subnet) if subnet else None
        # Host objects carry a hash of the storage root, so two floe homes never share a pool.
        self.tag = hashlib.sha1(str(self.storage_root).encode()).hexdigest()[:6]

    @classmethod
    def type_info(cls) -> ShareTypeInfo:
        replicas = _replicas()
        return ShareTypeInfo(
            name=cls.name,
            share_proto=cls.share_proto,
            description=f"A GlusterFS volume replicated on {replicas} storage nodes, mounted with the FUSE "
            "client; the size is Gluster's quota (enforced within about a second of writes).",
            extra_specs={
                "driver_handles_share_servers": "False",
                "share_backend_name": "glusterfs",
                "storage_protocol": "GLUSTERFS",
                "snapshot_support": "False",
                "create_share_from_snapshot_support": "False",
                "revert_to_snapshot_support": "False",
                "mount_snapshot_support": "False",
                "replica_count": str(replicas),
                "floe:size_enforcement": "gluster quota",
                "floe:replication": f"replica {replicas}",
            },
            capabilities=cls.capabilities,
        )

    # -- names and paths ---------------------------------------------------------------

    @property
    def bridge(self) -> str:
        return f"flgb{self.tag}"

    def netns(self, i: int) -> str:
        return f"flgs{self.tag}-{i}"

    def veth(self, i: int) -> str:
        return f"flgv{self.tag}{i}"

    @property
    def comment(self) -> str:
        return f"floe:gluster-{self.tag}"

    def node_dir(self, i: int) -> Path:
        return self.root / "nodes" / f"s{i}"

    def brick(self, i: int, volume: str) -> Path:
        return self.root / "bricks" / f"s{i}" / volume

    def address(self, i: int) -> str:
        assert self.subnet is not None
        return str(self.subnet.network_address + 2 + i)

    @property
    def gateway(self) -> str:
        assert self.subnet is not None
        return str(self.subnet.network_address + 1)

    @staticmethod
    def volume(share_id: str) -> str:
        return f"floe-{_check_id(share_id)}"

    # -- storage nodes -------------------------------------------------------------------

    def _pid(self, i: int) -> int | None:
        """The storage node's unshare process (its handle), if it runs."""
        try:
            pid = int((self.node_dir(i) / "node.pid").read_text().strip())
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        prefix = f"{self.node_dir(i)}/".encode()
        if os.path.basename(argv[0].decode()) == "unshare" and any(a.startswith(prefix) for a in argv):
            return pid
        return None

    def gluster(
        self, *args: str, node: int = 0, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        """The gluster CLI inside storage node `node` (it talks to its glusterd over /run/glusterd.socket)."""
        pid = self._pid(node)
        inner = _child(pid) if pid is not None else None
        if inner is None:
            raise StorageError(f"storage node {node} is not running", temporary=True)
        # Into glusterd's PID namespace too: the node's /proc belongs to it, and the CLI reads /proc/self.
        proc = subprocess.run(
            ["nsenter", "-t", str(inner), "-m", "-n", "-p", "gluster", "--mode=script", *args],
            capture_output=True, text=True, timeout=timeout, env=commands.clean_env(),
        )
        if check and proc.returncode != 0:
            raise StorageError(f"gluster {' '.join(args)}: {(proc.stderr or proc.stdout).strip()}", temporary=True)
        return proc

    def _network(self) -> None:
        from floe.host import firewall, netns

        assert self.subnet is not None
        try:
            netns.ensure_link(self.bridge, "bridge", self.gateway, self.subnet.prefixlen)
            firewall.ensure([
                ("FORWARD", ["-i", self.bridge, "-o", self.bridge, "-j", "ACCEPT"]),
                ("INPUT", ["-i", self.bridge, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"]),
                ("INPUT", ["-i", self.bridge, "-j", "DROP"]),
            ], self.comment, top=True)
            for i in range(self.replicas):
                netns.ensure_node_netns(self.netns(i), self.veth(i), self.bridge, self.address(i),
                                        self.subnet.prefixlen, [])
        except Exception as exc:  # ProviderError or a netlink error: the pool cannot start
            raise StorageError(f"cannot set up the storage network: {exc}", temporary=True) from None

    def _launch(self, i: int) -> None:
        d = self.node_dir(i)
        for sub in ("lib", "log"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "bricks" / f"s{i}").mkdir(parents=True, exist_ok=True)
        args = [
            commands.which("nsenter") or "nsenter", f"--net=/run/netns/{self.netns(i)}", "--",
            commands.which("unshare") or "unshare", "--mount", "--pid", "--fork", "--mount-proc", "--kill-child",
            "--propagation", "private", "--", "/bin/sh", "-c", NODE_SCRIPT, "floe-storage",
            str(d / "lib"), str(d / "log"),
        ]
        proc = processes.spawn_detached(args, d / "node.log", d)
        (d / "node.pid").write_text(f"{proc.pid}\n")
        # The server reaps it if it dies while this process runs (no zombie).
        threading.Thread(target=proc.wait, daemon=True).start()

    def _wait_glusterd(self, i: int) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self._pid(i) is not None and self.gluster("pool", "list", node=i, check=False).returncode == 0:
                return
            if time.monotonic() > deadline:
                log = (self.node_dir(i) / "node.log")
                tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
                raise StorageError(f"glusterd of storage node {i} did not answer: {tail}", temporary=True)
            time.sleep(0.1)

    def ensure_pool(self) -> None:
        """Storage nodes running and peered (idempotent: adopts what runs, restarts what does not)."""
        if self.subnet is None:
            raise StorageError("the glusterfs backend has no storage network (subnet) configured")
        with _lock:
            self._network()
            for i in range(self.replicas):
                if self._pid(i) is None:
                    self._launch(i)
            for i in range(self.replicas):
                self._wait_glusterd(i)
            for i in range(1, self.replicas):
                self.gluster("peer", "probe", self.address(i))
            deadline = time.monotonic() + READY_TIMEOUT
            while True:
                listing = self.gluster("pool", "list").stdout
                if listing.count("Connected") >= self.replicas:
                    return
                if time.monotonic() > deadline:
                    raise StorageError(f"storage nodes did not all connect: {listing}", temporary=True)
                time.sleep(0.2)

    # -- volumes ------------------------------------------------------------------------

    def _info(self, volume: str) -> str | None:
        proc = self.gluster("volume", "info", volume, check=False)
        return proc.stdout if proc.returncode == 0 else None

    def _quota(self, volume: str, size_bytes: int) -> None:
        if "features.quota: on" not in (self._info(volume) or ""):
            self.gluster("volume", "quota", volume, "enable")
        for key, value in QUOTA_TIMEOUTS.items():
            self.gluster("volume", "quota", volume, key, value)
        self.gluster("volume", "set", volume, "features.quota-deem-statfs", "on")  # df shows the share's size
        self.gluster("volume", "quota", volume, "limit-usage", "/", f"{size_bytes // (1024 * 1024)}MB")

    def _auth(self, volume: str, extra: set[str]) -> None:
        self.gluster("volume", "set", volume, "auth.allow", ",".join(sorted({self.gateway, *extra})))

    def _allowed(self, volume: str) -> set[str]:
        out = self.gluster("volume", "get", volume, "auth.allow").stdout
        m = re.search(r"auth\.allow\s+(\S+)", out)
        values = set(m.group(1).split(",")) if m else set()
        return {v for v in values if v not in ("*", self.gateway)}

    def _locations(self, volume: str) -> list[ExportLocation]:
        return [ExportLocation(path=f"{self.address(i)}:/{volume}", preferred=i == 0) for i in range(self.replicas)]

    def check(self) -> None:
        if os.geteuid() != 0:
            raise StorageError("the glusterfs backend must run as root (namespaces, glusterd, FUSE mounts)")
        missing = [b for b in REQUIRED if commands.which(b) is None]
        if missing:
            raise StorageError(f"missing programs: {', '.join(missing)} (Debian package: glusterfs-server)")
        if not Path("/dev/fuse").exists():
            raise StorageError("this kernel has no FUSE (/dev/fuse is missing)")

    def create(self, share: ShareRef) -> Created:
        if share.size_bytes < MIN_SIZE:
            raise StorageError(f"a glusterfs share needs at least {MIN_SIZE // 2**20} MiB")
        self.ensure_pool()
        volume = self.volume(share.id)
        info = self._info(volume)
        if info is None:
            bricks = [f"{self.address(i)}:{self.brick(i, volume)}" for i in range(self.replicas)]
            layout = ["replica", str(self.replicas)] if self.replicas > 1 else []
            # force: the bricks are directories of the host's root filesystem.
            self.gluster("volume", "create", volume, *layout, *bricks, "force")
            info = self._info(volume) or ""
        if "Status: Started" not in info:
            self.gluster("volume", "start", volume)
        self._quota(volume, share.size_bytes)
        self._auth(volume, set())
        return Created(state={"volume": volume, "replicas": self.replicas},
                       export_locations=self._locations(volume))

    def ensure(self, share: ShareRef) -> None:
        self.ensure_pool()
        volume = self.volume(share.id)
        info = self._info(volume)
        if info is None:
            raise StorageError(f"the volume of share {share.id} is missing from the storage pool")
        if "Status: Started" not in info:
            self.gluster("volume", "start", volume)

    def delete(self, share: ShareRef) -> None:
        volume = self.volume(share.id)
        if self.subnet is not None and any(self._pid(i) is not None for i in range(self.replicas)):
            self.ensure_pool()
            info = self._info(volume)
            if info is not None:
                if "Status: Started" in info:
                    self.gluster("volume", "stop", volume, "force")
                self.gluster("volume", "delete", volume)
        for i in range(self.replicas):
            try:
                mounts.remove_tree(self.brick(i, volume))
            except mounts.MountError as exc:
                raise StorageError(str(exc), temporary=True) from None

    def extend(self, share: ShareRef, new_size_bytes: int) -> dict:
        self.ensure(share)
        self._quota(self.volume(share.id), new_size_bytes)
        return dict(share.state)

    def shrink(self, share: ShareRef, new_size_bytes: int) -> dict:
        used = self.usage(share).used_bytes
        if used > new_size_bytes:
            raise ShrinkRefused(f"the data does not fit: {used / 2**30:.2f} GiB in use")
        self._quota(self.volume(share.id), new_size_bytes)
        return dict(share.state)

    def _mount(self, share: ShareRef, where: Path, read_only: bool) -> None:
        volume = self.volume(share.id)
        logs = self.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        backups = ":".join(self.address(i) for i in range(1, self.replicas))
        options = [f"log-file={logs / (volume + '-' + hashlib.sha1(str(where).encode()).hexdigest()[:8])}.log"]
        if backups:
            options.append(f"backup-volfile-servers={backups}")
        if read_only:
            options.append("ro")
        args = ["mount", "-t", "glusterfs", "-o", ",".join(options), f"{self.address(0)}:/{volume}", str(where)]
        for attempt in range(5):  # bricks of a volume started a moment ago may not listen yet
            try:
                _run(args)
                return
            except StorageError:
                if attempt == 4:
                    raise
                time.sleep(0.5 * (attempt + 1))

    def mount(self, share: ShareRef, target: Path, read_only: bool) -> None:
        self.ensure(share)
        try:
            mounts.place(target, lambda d: self._mount(share, d, read_only), self.stage)
        except mounts.MountError as exc:
            raise StorageError(str(exc), temporary=True) from None

    def is_mounted_at(self, share: ShareRef, target: Path) -> bool:
        volume = self.volume(share.id)
        return any(m.fstype.startswith("fuse.glusterfs") and m.source.endswith(f":/{volume}")
                   for m in mounts.mounts_at(target))

    def usage(self, share: ShareRef) -> Usage:
        self.ensure(share)
        self.stage.mkdir(parents=True, exist_ok=True)
        probe = self.stage / f"usage-{share.id[:8]}"
        probe.mkdir(exist_ok=True)
        try:
            self._mount(share, probe, read_only=True)
            st = os.statvfs(probe)
            return Usage(total_bytes=st.f_blocks * st.f_frsize, used_bytes=(st.f_blocks - st.f_bfree) * st.f_frsize)
        finally:
            mounts.unmount(probe)
            probe.rmdir()

    def allow(self, share: ShareRef, access_type: str, access_to: str, access_level: str) -> dict:
        if access_type == "ip":
            volume = self.volume(share.id)
            self.ensure(share)
            net = ipaddress.ip_network(access_to)
            self._auth(volume, self._allowed(volume) | {str(net.network_address) if net.num_addresses == 1
                                                        else str(net)})
        return {}

    def deny(self, share: ShareRef, access_type: str, access_to: str) -> None:
        if access_type == "ip":
            volume = self.volume(share.id)
            self.ensure(share)
            net = ipaddress.ip_network(access_to)
            gone = {str(net), str(net.network_address)}
            self._auth(volume, self._allowed(volume) - gone)

    # -- cleanup ----------------------------------------------------------------------------

    def host_objects(self) -> list[str]:
        from floe.host import netns

        found = [f"storage node {i} (pid {pid})" for i in range(self.replicas) if (pid := self._pid(i))]
        found += [f"netns {n}" for n in netns.list_netns() if n.startswith(f"flgs{self.tag}-")]
        found += [f"link {link}" for link in netns.link_names() if link.startswith((self.bridge, f"flgv{self.tag}"))]
        return found

    def stop_pool(self) -> list[str]:
        """Kill every storage node (its PID namespace takes glusterd and the bricks along)."""
        removed = []
        for d in sorted((self.root / "nodes").glob("s*")) if (self.root / "nodes").is_dir() else []:
            i = int(d.name[1:]) if d.name[1:].isdigit() else None
            pid = self._pid(i) if i is not None else None
            if pid is not None:
                os.kill(pid, 9)
                for _ in range(200):
                    if not Path(f"/proc/{pid}").exists() or b"Z" in _state(pid):
                        break
                    time.sleep(0.01)
                removed.append(f"storage node {d.name} (pid {pid})")
        return removed

    def purge(self, delete_data: bool = False) -> list[str]:
        """Stop the storage nodes and remove their network; state and bricks stay unless `delete_data`."""
        from floe.host import firewall, netns

        removed = self.stop_pool()
        for n in netns.list_netns():
            if n.startswith(f"flgs{self.tag}-") and netns.delete_netns(n):
                removed.append(f"netns {n}")
        for link in netns.link_names():
            if link.startswith(f"flgv{self.tag}") and netns.delete_link(link):
                removed.append(f"veth {link}")
        if netns.delete_link(self.bridge):
            removed.append(f"bridge {self.bridge}")
        removed += [f"iptables {r}" for r in firewall.delete_tagged(self.comment)]
        if delete_data and self.root.exists():
            try:
                mounts.remove_tree(self.root)
                removed.append(f"directory {self.root}")
            except mounts.MountError:
                pass
        return removed


def _child(pid: int) -> int | None:
    """The first child of `pid` (unshare's: the node's pid 1, glusterd)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def _state(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[-1][:3]
    except OSError:
        return b"Z"

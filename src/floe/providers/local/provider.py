"""LocalProvider: every node is a network namespace with its own dockerd, on one host.

Host objects per cluster (all carry the tag, see naming): bridge `flb-<tag>` with
iptables rules, per node a netns `floe-<tag>-<node>` joined by veth `fv<tag><hash>`,
cgroups `floe-<tag>-<node>` and home/nodes/<tag>/<node>/ (a shortened <node> where the
full one would leave no room for the socket path). floe's own infra network is a port-less
bridge, named after the home and the range, holding the registry's address; nodes get one
route to it and nothing else. Project networks (bridges `flp-<network tag>` with no host
address, a veth `fn<tag><hash>` per node: eth1, eth2, …) are in networks.py; a node's flavor and
GPUs (cgroups, pinned CPUs, meminfo, disk image, device masks) in shape.py.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from floe import registry_auth
from floe.config import NODE_POLICIES
from floe.host import cgroups, commands, firewall, gpus, mounts, neighbours, netns, processes
from floe.providers.base import (
    GPUDevice,
    InfraProvider,
    NetworkSpec,
    NodeInfo,
    NodeLog,
    NodeNetwork,
    NodeSpec,
    NodeStats,
    ProjectNetworkSpec,
    ProviderError,
    ProviderWithDaemonMetrics,
    ProviderWithGPUs,
    ProviderWithImageImport,
    ProviderWithNetworks,
    ProviderWithNodeLogs,
    ProviderWithNodeProcesses,
    ProviderWithNodeStats,
    ProviderWithShareMounts,
    ProviderWithTLSRenewal,
    RegistryInfo,
)
from floe.providers.local import daemons, images, journal, naming, node, registry, shape, stats
from floe.providers.local import logs as node_log_files
from floe.providers.local import networks as project_networks

if TYPE_CHECKING:
    import docker

log = logging.getLogger("floe.provider")

REQUIRED_BINARIES = (
    "dockerd", "docker-init", "containerd", "containerd-shim-runc-v2", "runc", "nsenter", "unshare",
    "iptables", "docker-registry", "skopeo", "busybox", "hostname", "mount", "mkfs.ext4", "taskset",
)
# The share directory of a cluster under home/nodes/<tag>/ (see _ensure_mount_dir).
SHARES_DIR = ".mnt"
# Written in the registry directory once the infra objects carry the home's names: a home
# with a registry but without it still owns the names of before (naming.legacy_*).
INFRA_MARKER = "infra.json"
# Seconds a GPU discovery (nvidia-smi -L) is reused: every node start needs the host's GPUs.
GPU_DISCOVERY_TTL = 60.0
# argv[0] of the processes a node runs whose command line names its directory.
NODE_PROGRAMS = {"nsenter", "unshare", "sh", "docker-init", "dockerd", "munged"}
# The cluster's files directory (ProviderWithNodeProcesses), a dot name like SHARES_DIR.
CLUSTER_FILES_DIR = ".cluster"

# Locks per object (a node, a network, a registry), shared by every provider instance of
# this process: the same object is handled serially, different objects in parallel.
_locks: dict[tuple[str, ...], threading.Lock] = {}
_locks_guard = threading.Lock()


def _kill_nodes(unshare_pids: set[int], inner_pids: set[int]) -> bool:
    """Kill nodes' processes; True once all are gone.

    The inner processes (docker-init, pid 1 of a node, among them) go first: unshare
    then reaps its child and exits by itself, so no zombie is left for the host's init
    to collect. An unshare that lingers is killed too (it ignores SIGTERM, not SIGKILL).
    """
    processes.kill(inner_pids)
    if inner_pids:
        processes.wait_gone(unshare_pids, timeout=2.0)
    processes.kill(p for p in unshare_pids if processes.running(p))
    return processes.wait_gone(unshare_pids | inner_pids)


class LocalProvider(
    InfraProvider, ProviderWithImageImport, ProviderWithShareMounts, ProviderWithTLSRenewal, ProviderWithNetworks,
    ProviderWithGPUs, ProviderWithNodeProcesses, ProviderWithNodeStats, ProviderWithDaemonMetrics, ProviderWithNodeLogs,
):
    """Nodes as network namespaces with their own dockerd; needs root."""

    name = "local"

    def __init__(
        self, home: Path, infra_subnet: str, registry_port: int = 5000, node_policy: str = "open",
        nvidia_smi: str = gpus.DEFAULT_NVIDIA_SMI, gpu_device_dir: str = gpus.DEFAULT_DEVICE_DIR,
    ):
        self.home = Path(home).absolute()
        if node_policy not in NODE_POLICIES:
            raise ProviderError(f"unknown node policy {node_policy!r}: use one of {', '.join(NODE_POLICIES)}")
        # Applies to the nodes this provider starts: a running node keeps the policy it started with.
        self.node_policy = node_policy
        try:
            self.infra_net = ipaddress.IPv4Network(infra_subnet)
        except ValueError as exc:
            raise ProviderError(f"invalid infra subnet {infra_subnet!r}: {exc}") from None
        if self.infra_net.prefixlen > 30:
            raise ProviderError(f"infra subnet {self.infra_net} is too small")
        if not 0 < registry_port < 65536:
            raise ProviderError(f"invalid registry port {registry_port}")
        self.infra_ip = str(self.infra_net.network_address + 1)
        self.registry_port = registry_port
        self.registry_address = f"{self.infra_ip}:{registry_port}"
        # floe's token realm listens beside the registry (the API's own address is loopback,
        # which nodes cannot reach); the server binds it (registry_token_endpoint).
        self.token_port = registry_port + 1 if registry_port < 65535 else registry_port - 1
        self._keys = registry_auth.keys(self.home)
        self._registry_paths = registry.RegistryPaths(self.home / "registry")
        self._api_version: str | None = None  # the nodes' Docker API version, once a node told it
        # GPU discovery (host_gpus): FLOE_NVIDIA_SMI and FLOE_GPU_DEVICE_DIR.
        self.nvidia_smi = nvidia_smi
        self.gpu_device_dir = gpu_device_dir
        self._gpus: tuple[float, list[GPUDevice]] | None = None
        self._container_names = stats.ContainerNames()  # node_stats' names of containers

    # -- helpers ---------------------------------------------------------------

    @property
    def nodes_dir(self) -> Path:
        return self.home / "nodes"

    def _node_dir_room(self) -> int:
        """Characters left for a node's directory name once its socket path is spelled out."""
        return node.MAX_SOCKET_PATH - len(os.fsencode(f"{self.nodes_dir}/00000000//{node.SOCKET_NAME}"))

    def _node_paths(self, tag: str, name: str) -> node.NodePaths:
        # The full name whenever it fits, which every directory made before shortening existed did.
        return node.NodePaths(self.nodes_dir / tag / naming.node_dir_name(name, self._node_dir_room()), name)

    @property
    def storage_dir(self) -> Path:
        """floe's storage root (share images): nodes drop their copies of mounts there."""
        return self.home / "storage"

    def _mount_dir(self, tag: str) -> Path:
        # A dot name: never a node's (node names are DNS labels).
        return self.nodes_dir / tag / SHARES_DIR

    def _lock(self, *key: str) -> threading.Lock:
        with _locks_guard:
            return _locks.setdefault((str(self.home), *key), threading.Lock())

    def _network_rules(self, bridge: str) -> list[firewall.Rule]:
        # Order matters: ACCEPTs before DROPs. Nodes talk to each other and to the
        # registry; nothing is forwarded to or from anywhere else.
        return [
            ("FORWARD", ["-i", bridge, "-o", bridge, "-j", "ACCEPT"]),
            ("FORWARD", ["-i", bridge, "-j", "DROP"]),
            ("FORWARD", ["-o", bridge, "-j", "DROP"]),
            ("INPUT", ["-i", bridge, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"]),
            ("INPUT", ["-i", bridge, "-p", "tcp", "-d", self.infra_ip, "--dport", str(self.registry_port),
                       "-j", "ACCEPT"]),
            ("INPUT", ["-i", bridge, "-p", "tcp", "-d", self.infra_ip, "--dport", str(self.token_port),
                       "-j", "ACCEPT"]),
            ("INPUT", ["-i", bridge, "-j", "DROP"]),
        ]

    def _infra_rules(self) -> list[firewall.Rule]:
        # Appended (after the clusters' ACCEPTs): the registry answers the host itself and
        # floe's bridges only, even if another machine routes the infra address to us.
        ip = f"{self.infra_ip}/32"
        return [
            ("INPUT", ["-i", "lo", "-d", ip, "-j", "ACCEPT"]),
            ("INPUT", ["-d", ip, "-p", "tcp", "--dport", str(self.registry_port), "-j", "DROP"]),
            ("INPUT", ["-d", ip, "-p", "tcp", "--dport", str(self.token_port), "-j", "DROP"]),
        ]

    # -- interface -------------------------------------------------------------

    def check(self) -> None:
        """Raise ProviderError with a clear reason if this host cannot run local nodes."""
        room = self._node_dir_room()
        if room < 1 + naming.SHORT_DIR_HASH:  # not even a hashed node directory would fit
            raise ProviderError(
                f"FLOE_HOME {self.home} is too long: a node's docker.sock must fit a unix socket path "
                f"({node.MAX_SOCKET_PATH} bytes); use a home of at most "
                f"{len(os.fsencode(self.home)) + room - 1 - naming.SHORT_DIR_HASH} characters"
            )
        if os.geteuid() != 0:
            raise ProviderError("the local provider must run as root (it creates namespaces and bridges)")
        missing = [b for b in REQUIRED_BINARIES if commands.which(b) is None]
        if missing:
            raise ProviderError(
                f"missing programs: {', '.join(missing)} (Debian packages: docker.io, docker-registry, "
                "skopeo, busybox-static, iptables, util-linux, e2fsprogs)"
            )
        if not Path("/proc/self/ns/net").exists():
            raise ProviderError("this kernel has no network namespaces")
        if not cgroups.hierarchies():
            raise ProviderError("no cgroup hierarchy is mounted under /sys/fs/cgroup")
        busybox = Path(commands.binary("busybox")).read_bytes()[:4096]
        if b"/ld-" in busybox:  # an ELF interpreter path: dynamically linked
            raise ProviderError("busybox is dynamically linked; install busybox-static for the base image")

    def _uses_legacy_infra(self) -> bool:
        """Whether this home ran before infra names depended on the home (and still owns the old ones)."""
        paths = self._registry_paths
        return paths.config.exists() and not (paths.dir / INFRA_MARKER).exists()

    def _remove_legacy_infra(self) -> list[str]:
        """This home's infra objects under their old names: the link, and exactly this home's rules.

        Only the rules this home would have made go, not all that carry the old comment: another
        home on the same range (with another port) shares that comment.
        """
        removed: list[str] = []
        link = naming.legacy_infra_link_name(self.infra_net)
        if netns.delete_link(link):
            removed.append(f"infra link {link}")
        removed += [
            f"iptables {r}" for r in firewall.remove(self._infra_rules(), naming.legacy_infra_comment(self.infra_net))
        ]
        return removed

    def ensure_infra(self) -> None:
        """The infra link holding the registry's address and its rules, under this home's names."""
        paths = self._registry_paths
        # A port-less bridge stands in for a dummy link: these kernels lack the dummy
        # driver, and a bridge that is up holds a local address just as well.
        netns.ensure_link(
            naming.infra_link_name(self.home, self.infra_net), "bridge", self.infra_ip, self.infra_net.prefixlen
        )
        firewall.ensure(self._infra_rules(), naming.infra_comment(self.home, self.infra_net), top=False)
        marker = paths.dir / INFRA_MARKER
        if not marker.exists():
            # Upgrade: the new link holds the address now, so the old one can go.
            if self._uses_legacy_infra():
                for what in self._remove_legacy_infra():
                    log.info("removed %s (named before infra names depended on the home)", what)
            paths.dir.mkdir(parents=True, exist_ok=True)
            commands.write_file(marker, json.dumps({
                "link": naming.infra_link_name(self.home, self.infra_net),
                "comment": naming.infra_comment(self.home, self.infra_net),
            }) + "\n")

    def registry_token_endpoint(self) -> tuple[str, int]:
        """Where floe's token realm must listen for the registry's clients (the host and nodes)."""
        return self.infra_ip, self.token_port

    def _token_auth(self) -> registry.TokenAuth:
        keys = self._keys.ensure()
        return registry.TokenAuth(
            realm=f"http://{self.infra_ip}:{self.token_port}{registry_auth.TOKEN_PATH}",
            service=registry_auth.SERVICE, issuer=registry_auth.ISSUER, rootcertbundle=keys.cert_file,
        )

    def ensure_registry(self) -> RegistryInfo:
        """Start (or adopt) the registry on the infra address and make sure the shipped images are in it."""
        paths = self._registry_paths
        with self._lock("registry"):
            self.ensure_infra()
            pid = registry.ensure_running(paths, self.infra_ip, self.registry_port, self._token_auth())
            # Plain HTTP: verify=False skips loading the CA bundle (~30 ms per client).
            with httpx.Client(timeout=10.0, trust_env=False, verify=False) as client:
                registry.wait_ready(client, self.registry_address, pid, paths)
                images.ensure_shipped(client, self.registry_address, paths.cache, self._keys)
        return RegistryInfo(address=self.registry_address, subnet=str(self.infra_net))

    def import_image_archive(self, path: Path, namespace: str) -> list[str]:
        """Push the images of a `docker save` tarball into `namespace`; return names for stack files."""
        self.ensure_registry()
        return images.import_archive(Path(path), self.registry_address, namespace, self._keys)

    def ensure_network(self, net: NetworkSpec) -> None:
        """Bridge flb-<tag> with the gateway address, and its tagged iptables rules (idempotent)."""
        tag = naming.check_tag(net.cluster_tag)
        try:
            subnet = ipaddress.IPv4Network(net.subnet)
            gateway = ipaddress.IPv4Address(net.gateway)
        except ValueError as exc:
            raise ProviderError(f"invalid network {net.subnet} / {net.gateway}: {exc}") from None
        if gateway not in subnet or gateway in (subnet.network_address, subnet.broadcast_address):
            raise ProviderError(f"gateway {gateway} is not a host address of {subnet}")
        bridge = naming.bridge_name(tag)
        with self._lock("network", tag):
            # The cluster's directory comes first: it is what marks every later host object of
            # the cluster as this home's (owned_cluster_tags), even if floe dies right after.
            (self.nodes_dir / tag).mkdir(parents=True, exist_ok=True, mode=0o700)
            netns.ensure_link(bridge, "bridge", str(gateway), subnet.prefixlen)
            firewall.ensure(self._network_rules(bridge), naming.comment(tag), top=True)

    def delete_network(self, net: NetworkSpec) -> None:
        """Remove the bridge and its rules; missing is fine."""
        tag = naming.check_tag(net.cluster_tag)
        bridge = naming.bridge_name(tag)
        with self._lock("network", tag):
            netns.delete_link(bridge)
            firewall.delete_tagged(naming.comment(tag), must_contain=[bridge])

    def start_node(self, spec: NodeSpec) -> NodeInfo:
        """Start the node (or adopt its running dockerd); return once dockerd answers."""
        tag = naming.check_tag(spec.cluster_tag)
        name = naming.check_node_name(spec.name)
        net = spec.network
        if net.cluster_tag != tag:
            raise ProviderError(f"node {name} of cluster {tag} on network of cluster {net.cluster_tag}")
        try:
            subnet = ipaddress.IPv4Network(net.subnet)
            address = ipaddress.IPv4Address(spec.address)
        except ValueError as exc:
            raise ProviderError(f"invalid address for node {name}: {exc}") from None
        if address not in subnet:
            raise ProviderError(f"node address {address} is not in {subnet}")
        paths = self._node_paths(tag, name)
        cgroup = naming.cgroup_name(tag, name)
        own_gpus = shape.check(spec, self.host_gpus())  # before anything changes
        with self._lock("node", tag, name):
            pid = node.live_pid(paths)
            if pid is None:
                # Leftovers of a node that died with its pidfile lost would hold the socket.
                stale = cgroups.members(cgroup)
                processes.kill(stale)
                processes.wait_gone(stale)
                if not netns.link_exists(naming.bridge_name(tag)):
                    self.ensure_network(net)
                self._ensure_neighbour_capacity(tag, spec.cluster_size)
                routes = [(spec.registry.subnet, net.gateway)] if spec.registry else []
                netns.ensure_node_netns(
                    naming.netns_name(tag, name), naming.veth_name(tag, name), naming.bridge_name(tag),
                    str(address), subnet.prefixlen, routes,
                )
                node.write_files(spec, paths, cgroup, restricted=self.node_policy == "restricted")
                shares = self._ensure_mount_dir(tag)
                masked = shape.masked_gpu_devices(self.host_gpus(), own_gpus, self.gpu_device_dir)
                procs, node_shape = shape.prepare(spec, paths, cgroup, own_gpus, masked)
                pid = node.launch(
                    naming.netns_name(tag, name), name, paths, procs, shares, (self.storage_dir, self.nodes_dir),
                    tls_address=str(address), restricted=self.node_policy == "restricted", shape=node_shape,
                    journald=journal.prepare(paths.dir),
                ).pid
            self._ensure_node_networks(tag, name, spec.networks)
            stats.guard_metrics_port(naming.netns_name(tag, name))  # adopted nodes get it too
            node.wait_ready(paths, pid)
        return NodeInfo(
            name=name, address=str(address), running=True, docker_url=f"unix://{paths.sock}",
            tls_url=f"tcp://{address}:{node.TLS_PORT}", pid=pid,
        )

    def renew_node_tls(self, spec: NodeSpec) -> None:
        """New TLS files for the node; its TLS proxy serves them within a second, dockerd untouched.

        A node started before floe had the proxy (its dockerd serving TLS itself, which dockerd
        cannot reload) is restarted once in the new layout: its containers restart with it.
        """
        tag = naming.check_tag(spec.cluster_tag)
        name = naming.check_node_name(spec.name)
        paths = self._node_paths(tag, name)
        with self._lock("node", tag, name):
            pid = node.live_pid(paths)
            node.write_tls(paths, spec.tls)
            legacy = pid is not None and node.dockerd_serves_tls(paths)
            if legacy:
                log.info("restarting node %s/%s once: its dockerd served TLS itself", tag, name)
                if not _kill_nodes({pid}, cgroups.members(naming.cgroup_name(tag, name))):
                    raise ProviderError(f"processes of node {tag}/{name} did not exit", temporary=True)
        if pid is None:
            return  # its next start serves the new files
        if legacy:
            self.start_node(spec)
        node.wait_serving(spec.address, spec.tls.ca_pem)

    def _ensure_neighbour_capacity(self, tag: str, cluster_size: int) -> None:
        """Make the host's ARP table hold every cluster's mesh (see neighbours.ensure_neighbour_capacity)."""
        sizes = {tag: cluster_size}
        if self.nodes_dir.exists():
            for c in self.nodes_dir.iterdir():
                try:
                    count = sum(1 for d in c.iterdir() if d.name != SHARES_DIR)
                except OSError:  # not a directory, or a cluster deleted meanwhile
                    continue
                sizes[c.name] = max(sizes.get(c.name, 0), count)
        # Each node resolves every other node of its cluster, its gateway and the registry.
        raised = neighbours.ensure_neighbour_capacity(sum(n * (n + 2) for n in sizes.values()) + 256)
        if raised is not None:
            log.info("raised the host's ARP table limit (net.ipv4.neigh.default.gc_thresh3) to %d", raised)

    def _ensure_mount_dir(self, tag: str) -> Path:
        """The cluster's share directory as a shared mount, made before its first node starts.

        Nodes rbind it onto /mnt as slaves: a share mounted under it later (attach) appears
        in every node, those started afterwards included.
        """
        path = self._mount_dir(tag)
        with self._lock("mnt", tag):
            try:
                mounts.ensure_self_bind(path, "shared")
            except mounts.MountError as exc:
                raise ProviderError(f"cannot prepare the share directory of cluster {tag}: {exc}") from None
        return path

    # -- flavors and GPUs (see docs/flavors-local.md) --------------------------------------------

    def host_gpus(self) -> list[GPUDevice]:
        """Every GPU of the host in index order ([] without nvidia-smi); asked again after a minute."""
        now = time.monotonic()
        if self._gpus is None or now - self._gpus[0] > GPU_DISCOVERY_TTL:
            found = gpus.discover(self.nvidia_smi, self.gpu_device_dir)
            self._gpus = (now, [GPUDevice(index=g.index, uuid=g.uuid, device=g.device, model=g.model) for g in found])
        return list(self._gpus[1])

    def cluster_mount_dir(self, cluster_tag: str) -> Path | None:
        """The cluster's share directory if its nodes receive mounts made there (see ProviderWithShareMounts)."""
        path = self._mount_dir(naming.check_tag(cluster_tag))
        entries = mounts.mounts_at(path)
        return path if entries and entries[0].shared else None

    def node_mount_view(self, cluster_tag: str, name: str) -> Path | None:
        """A running node's /mnt as the host sees it through the node's mount namespace."""
        paths = self._node_paths(naming.check_tag(cluster_tag), naming.check_node_name(name))
        pid = node.live_pid(paths)
        return Path(f"/proc/{pid}/root/mnt") if pid is not None else None

    def node_info(self, cluster_tag: str, name: str) -> NodeInfo | None:
        """What the host has of this node (running = its process is alive), or None."""
        tag = naming.check_tag(cluster_tag)
        name = naming.check_node_name(name)
        paths = self._node_paths(tag, name)
        pid = node.live_pid(paths)
        if pid is None and not paths.dir.exists() and naming.netns_name(tag, name) not in netns.list_netns():
            return None
        meta = node.read_meta(paths)
        return NodeInfo(
            name=name, address=meta.get("address", ""), running=pid is not None,
            docker_url=f"unix://{paths.sock}", tls_url=meta.get("tls_url", ""), pid=pid,
        )

    def stop_node(self, cluster_tag: str, name: str) -> None:
        """Kill the node's processes and remove its netns, veth, cgroups and directory."""
        tag = naming.check_tag(cluster_tag)
        name = naming.check_node_name(name)
        with self._lock("node", tag, name):
            self._remove_node(tag, name)

    def _remove_node(self, tag: str, name: str) -> list[str]:
        paths = self._node_paths(tag, name)
        self._container_names.forget(paths.sock)
        cgroup = naming.cgroup_name(tag, name)
        removed: list[str] = []
        pid = node.live_pid(paths)
        unshare = {pid} if pid is not None else set()
        members = cgroups.members(cgroup)
        if unshare or members:
            removed.append(f"node {tag}/{name}: {len(unshare | members)} processes")
        if not _kill_nodes(unshare, members) or not cgroups.remove(cgroup):
            raise ProviderError(f"processes of node {tag}/{name} did not exit", temporary=True)
        if netns.delete_link(naming.veth_name(tag, name)):
            removed.append(f"veth {naming.veth_name(tag, name)}")
        removed += project_networks.detach_all(tag, name)  # before the netns: their host sides go now
        if netns.delete_netns(naming.netns_name(tag, name)):
            removed.append(f"netns {naming.netns_name(tag, name)}")
        # Its disk's loop device goes with its mount namespace, a moment after its processes.
        if left := node.wait_loops_released(paths.dir):
            raise ProviderError(f"the disk of node {tag}/{name} is still in use ({', '.join(left)})", temporary=True)
        if node.remove_dir(paths):
            removed.append(f"directory {paths.dir}")
        # The cluster's directory (its share directory included) goes with its last node.
        cluster_dir = paths.dir.parent
        with self._lock("mnt", tag):
            try:
                others = [d for d in cluster_dir.iterdir() if d.name not in (SHARES_DIR, CLUSTER_FILES_DIR)]
            except FileNotFoundError:
                return removed
            if not others:
                removed += [f"mount {m}" for m in mounts.unmount_tree(cluster_dir)]
                try:
                    mounts.remove_tree(cluster_dir)
                except mounts.MountError as exc:
                    raise ProviderError(str(exc), temporary=True) from None
        return removed

    # -- what nodes use (see stats.py) ---------------------------------------------------------

    def node_stats(self, cluster_tag: str, name: str) -> NodeStats | None:
        """CPU and memory of the node's cgroup, its interfaces' counters, its disk, its containers."""
        tag = naming.check_tag(cluster_tag)
        name = naming.check_node_name(name)
        paths = self._node_paths(tag, name)
        pid = node.live_pid(paths)
        if pid is None:
            self._container_names.forget(paths.sock)
            return None
        return stats.read_node_stats(pid, naming.cgroup_name(tag, name), paths.data, paths.sock,
                                     self._container_names)

    def daemon_metrics(self, cluster_tag: str, name: str) -> bytes | None:
        """The node's dockerd metrics, fetched from inside its network namespace (see stats.py)."""
        tag = naming.check_tag(cluster_tag)
        name = naming.check_node_name(name)
        paths = self._node_paths(tag, name)
        if node.live_pid(paths) is None:
            return None
        if not stats.has_metrics_address(paths.config):
            raise ProviderError(
                f"the dockerd of node {name} was started without a metrics address: it gets one when the node "
                "next starts"
            )
        return stats.fetch_daemon_metrics(naming.netns_name(tag, name), name)

    def docker_client(self, info: NodeInfo) -> docker.DockerClient:
        """A docker SDK client on the node's unix socket.

        Every node runs the host's one dockerd binary, so the API version is asked of the first
        node only: the SDK's default ("auto") costs a /version round trip per client built.
        """
        import docker

        client = docker.DockerClient(base_url=info.docker_url, version=self._api_version or "auto")
        if self._api_version is None:
            self._api_version = client.api.api_version
        return client

    def host_cluster_tags(self) -> set[str]:
        """Tags found on netns, links, iptables comments, cgroups and node directories."""
        tags: set[str] = set()
        for ns in netns.list_netns():
            if m := naming.NETNS_RE.match(ns):
                tags.add(m.group(1))
        for link in netns.link_names():
            if m := naming.BRIDGE_RE.match(link) or naming.VETH_RE.match(link) or naming.NODE_NET_VETH_RE.match(link):
                tags.add(m.group(1))
        for line in firewall.listing():
            if m := naming.COMMENT_RE.search(line):
                tags.add(m.group(1))
        for cgroup in cgroups.names():
            if m := naming.CGROUP_RE.match(cgroup):
                tags.add(m.group(1))
        return tags | self.home_cluster_tags()

    def purge_cluster(self, cluster_tag: str) -> list[str]:
        """Remove every trace of a cluster on the host, known to the database or not."""
        tag = naming.check_tag(cluster_tag)
        removed: list[str] = []
        cluster_dir = self.nodes_dir / tag
        prefix = f"floe-{tag}-"
        node_cgroups = sorted(c for c in cgroups.names() if c.startswith(prefix))
        # Only floe's own programs: a user's `tail -f` of a node log must survive.
        named = {
            pid: os.path.basename(argv[0])
            for pid, argv in processes.pids_with_path(f"{cluster_dir}/").items()
            if os.path.basename(argv[0]) in NODE_PROGRAMS
        }
        unshare = {pid for pid, prog in named.items() if prog == "unshare"}
        inner = set(named) - unshare
        for cgroup in node_cgroups:
            inner |= cgroups.members(cgroup)
        if unshare or inner:
            removed.append(f"{len(unshare | inner)} processes of cluster {tag}: {sorted(unshare | inner)}")
        if not _kill_nodes(unshare, inner):
            raise ProviderError(f"processes of cluster {tag} did not exit", temporary=True)
        for cgroup in node_cgroups:
            if not cgroups.remove(cgroup):
                raise ProviderError(f"cgroup {cgroup} is still busy", temporary=True)
            removed.append(f"cgroup {cgroup}")
        for link in netns.link_names():
            if (m := naming.VETH_RE.match(link)) and m.group(1) == tag and netns.delete_link(link):
                removed.append(f"veth {link}")
        removed += project_networks.purge_cluster_veths(tag)
        for ns in netns.list_netns():
            if ns.startswith(prefix) and netns.delete_netns(ns):
                removed.append(f"netns {ns}")
        if netns.delete_link(naming.bridge_name(tag)):
            removed.append(f"bridge {naming.bridge_name(tag)}")
        removed += [f"iptables {rule}" for rule in firewall.delete_tagged(naming.comment(tag))]
        # Shares attached to the cluster are mounted in its share directory: unmount them
        # (their data stays where it lives) and never let the delete cross into a mount.
        if left := node.wait_loops_released(cluster_dir):
            raise ProviderError(f"disks of cluster {tag} are still in use ({', '.join(left)})", temporary=True)
        unmounted = mounts.unmount_tree(cluster_dir) if cluster_dir.exists() else []
        removed += [f"mount {m}" for m in unmounted]
        try:
            if mounts.remove_tree(cluster_dir):
                removed.append(f"directory {cluster_dir}")
        except mounts.MountError as exc:
            raise ProviderError(str(exc), temporary=True) from None
        return removed

    # -- programs in nodes and cluster daemons (ProviderWithNodeProcesses; see daemons.py) -------

    def cluster_files_dir(self, cluster_tag: str, create: bool = True) -> Path:
        directory = self.nodes_dir / naming.check_tag(cluster_tag) / CLUSTER_FILES_DIR
        if create:
            directory.mkdir(parents=True, exist_ok=True, mode=0o755)
        return directory

    def _running_node(self, tag: str, name: str) -> tuple[node.NodePaths, int]:
        paths = self._node_paths(naming.check_tag(tag), naming.check_node_name(name))
        pid = node.live_pid(paths)
        inner = daemons.inner_pid(pid) if pid is not None else None
        if inner is None:
            raise ProviderError(f"node {name} is not running", temporary=True)
        return paths, inner

    def node_run(self, cluster_tag: str, name: str, argv: list[str], timeout: float = 60.0,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        _, inner = self._running_node(cluster_tag, name)
        return daemons.run_in_node(inner, naming.cgroup_name(cluster_tag, name), argv, timeout, env)

    def start_node_daemon(self, cluster_tag: str, name: str, daemon: str, argv: list[str],
                          env: dict[str, str] | None = None) -> bool:
        paths, inner = self._running_node(cluster_tag, name)
        with self._lock("daemon", cluster_tag, name, daemon):
            return daemons.start_node_daemon(
                paths.dir / "daemons", inner, naming.cgroup_name(cluster_tag, name),
                daemons.check_daemon_name(daemon), argv, env,
            )

    def node_daemon_running(self, cluster_tag: str, name: str, daemon: str) -> bool:
        paths = self._node_paths(naming.check_tag(cluster_tag), naming.check_node_name(name))
        pidfile = paths.dir / "daemons" / f"{daemons.check_daemon_name(daemon)}.pid"
        return daemons.live_node_daemon(pidfile, daemon) is not None

    def stop_node_daemon(self, cluster_tag: str, name: str, daemon: str) -> None:
        paths = self._node_paths(naming.check_tag(cluster_tag), naming.check_node_name(name))
        pidfile = paths.dir / "daemons" / f"{daemons.check_daemon_name(daemon)}.pid"
        with self._lock("daemon", cluster_tag, name, daemon):
            daemons.stop(daemons.live_node_daemon(pidfile, daemon))

    def start_cluster_daemon(self, cluster_tag: str, daemon: str, argv: list[str]) -> bool:
        directory = self.cluster_files_dir(cluster_tag)
        with self._lock("daemon", cluster_tag, daemons.check_daemon_name(daemon)):
            return daemons.start_host_daemon(directory, daemon, argv)

    def cluster_daemon_running(self, cluster_tag: str, daemon: str) -> bool:
        directory = self.nodes_dir / naming.check_tag(cluster_tag) / CLUSTER_FILES_DIR
        return daemons.live_host_daemon(directory, daemons.check_daemon_name(daemon)) is not None

    def stop_cluster_daemon(self, cluster_tag: str, daemon: str) -> None:
        directory = self.nodes_dir / naming.check_tag(cluster_tag) / CLUSTER_FILES_DIR
        with self._lock("daemon", cluster_tag, daemons.check_daemon_name(daemon)):
            daemons.stop(daemons.live_host_daemon(directory, daemon))

    def open_host_ports(self, net: NetworkSpec, first: int, last: int) -> None:
        tag = naming.check_tag(net.cluster_tag)
        if not 0 < first <= last < 65536:
            raise ProviderError(f"invalid port range {first}-{last}")
        gateway = str(ipaddress.IPv4Address(net.gateway))
        rule = ("INPUT", ["-i", naming.bridge_name(tag), "-p", "tcp", "-d", gateway, "--dport", f"{first}:{last}",
                          "-j", "ACCEPT"])
        # At the top: before the bridge's DROP; it carries the cluster's comment, so it goes with it.
        firewall.ensure([rule], naming.comment(tag), top=True)

    # -- node logs (ProviderWithNodeLogs; see logs.py) ---------------------------------------------

    def node_logs(self, cluster_tag: str, name: str) -> list[NodeLog]:
        tag = naming.check_tag(cluster_tag)
        return node_log_files.node_logs(self._node_paths(tag, naming.check_node_name(name)),
                                        self.nodes_dir / tag / CLUSTER_FILES_DIR)

    # -- project networks (ProviderWithNetworks; see providers/local/networks.py) ---------------

    def ensure_project_network(self, net: ProjectNetworkSpec) -> None:
        """The network's isolated bridge and its rules (idempotent)."""
        tag, _ = project_networks.check_spec(net)
        with self._lock("project-network", tag):
            project_networks.ensure(self.home, tag)

    def delete_project_network(self, tag: str) -> None:
        """Remove the network's bridge, rules and the host sides of nodes still on it; missing is fine."""
        tag = naming.check_tag(tag)
        with self._lock("project-network", tag):
            for what in project_networks.delete(self.home, tag):
                log.info("project network %s: removed %s", tag, what)

    def attach_node_network(self, cluster_tag: str, name: str, net: NodeNetwork) -> None:
        """Give node `name` its interface on `net` now, dockerd and containers untouched (idempotent)."""
        tag = naming.check_tag(cluster_tag)
        name = naming.check_node_name(name)
        with self._lock("node", tag, name):
            self._ensure_node_networks(tag, name, (net,))

    def _ensure_node_networks(self, tag: str, name: str, nets: tuple[NodeNetwork, ...] | list[NodeNetwork]) -> None:
        """Every interface of `nets` in the node's namespace; the caller holds the node's lock.

        Interfaces of other networks are left as they are: the spec lists what must be there.
        """
        checked = [(project_networks.check_node_network(n), n) for n in nets]  # all valid before any change
        ifnames = [n.ifname for n in nets]
        if len(set(ifnames)) != len(ifnames):
            raise ProviderError(f"node {tag}/{name}: two networks on one interface ({', '.join(ifnames)})")
        for (net_tag, subnet, _), n in checked:
            if not netns.link_exists(naming.project_bridge_name(net_tag)):
                self.ensure_project_network(ProjectNetworkSpec(net_tag, str(subnet)))
            if project_networks.attach(tag, name, n):
                log.info("node %s/%s: %s on project network %s", tag, name, n.ifname, net_tag)

    def project_network_tags(self) -> set[str]:
        """Tags of this home's project networks on the host (orphan cleanup compares them with the database)."""
        return project_networks.home_tags(self.home)

    def purge_project_networks(self, *, only_this_home: bool = True) -> list[str]:
        """Remove this home's project networks (with `only_this_home=False`, every floe's on the host)."""
        tags = project_networks.home_tags(self.home)
        if not only_this_home:
            tags |= project_networks.host_tags()
        removed: list[str] = []
        for tag in sorted(tags):
            with self._lock("project-network", tag):
                removed += project_networks.delete(self.home, tag)
        with contextlib.suppress(OSError):  # the markers' directory, once empty
            (self.home / project_networks.NETWORKS_DIR).rmdir()
        return removed

    def purge_infra(self) -> list[str]:
        """Stop this home's registry and remove the infra link, its rules and the registry files."""
        removed = registry.stop(self._registry_paths)
        if self._uses_legacy_infra():
            removed += self._remove_legacy_infra()
        link = naming.infra_link_name(self.home, self.infra_net)
        if netns.delete_link(link):
            removed.append(f"infra link {link}")
        removed += [f"iptables {r}" for r in firewall.delete_tagged(naming.infra_comment(self.home, self.infra_net))]
        if self._registry_paths.dir.exists():
            shutil.rmtree(self._registry_paths.dir, ignore_errors=True)
            removed.append(f"directory {self._registry_paths.dir}")
        return removed

    def owned_cluster_tags(self) -> set[str]:
        return self.home_cluster_tags()

    def home_cluster_tags(self) -> set[str]:
        """Tags of the clusters with a directory or a running node under this home."""
        tags: set[str] = set()
        if self.nodes_dir.is_dir():
            tags.update(d.name for d in self.nodes_dir.iterdir() if naming.TAG_RE.match(d.name) and d.is_dir())
        # Anchored: another home whose path ends like this one's is not this one.
        in_home = re.compile(r"(?:^|=)" + re.escape(f"{self.nodes_dir}/") + r"([0-9a-f]{8})/")
        for argv in processes.pids_with_path(f"{self.nodes_dir}/").values():
            tags.update(m.group(1) for arg in argv if (m := in_home.search(arg)))
        return tags

    def purge_all(self, *, only_this_home: bool = False) -> list[str]:
        """`floe cleanup --all`: every floe cluster on this host, then this home's registry and infra.

        With `only_this_home`, only the clusters of this home (see home_cluster_tags) are
        purged, so that another floe on the same host (another test run) is left alone.
        """
        removed: list[str] = []
        tags = self.home_cluster_tags() if only_this_home else self.host_cluster_tags()
        for tag in sorted(tags):
            removed += self.purge_cluster(tag)
        removed += self.purge_project_networks(only_this_home=only_this_home)
        removed += self.purge_infra()
        if self.nodes_dir.exists():
            removed += [f"mount {m}" for m in mounts.unmount_tree(self.nodes_dir)]
            try:
                mounts.remove_tree(self.nodes_dir)
            except mounts.MountError as exc:
                raise ProviderError(str(exc), temporary=True) from None
            removed.append(f"directory {self.nodes_dir}")
        return removed

"""The infra-provider interface: where nodes come from.

A provider turns typed specs into running machines that each run a Docker daemon
reachable over TLS. Every call is idempotent: calling it again after a crash
finishes the work or finds it done. Providers know nothing of the database.
"""

from __future__ import annotations

import abc
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from floe.host.errors import HostError

if TYPE_CHECKING:  # the docker SDK is imported lazily by implementations
    import subprocess

    import docker


#: A provider call failed; `temporary` says whether retrying may help. It is the host toolkit's
#: error, so what a provider's host work raises reaches the engine as one error family.
ProviderError = HostError


@dataclass(frozen=True)
class TLSMaterial:
    """PEM-encoded CA certificate plus the node's own server certificate and key."""

    ca_pem: str
    cert_pem: str
    key_pem: str


@dataclass(frozen=True)
class NetworkSpec:
    """A cluster network: one bridge on the host, gateway address held by the host."""

    cluster_tag: str  # 8 hex chars carried by every host object of the cluster
    name: str  # "mgmt" (a "data" network comes later)
    subnet: str  # e.g. "10.160.1.0/24"
    gateway: str  # host's address on the bridge, e.g. "10.160.1.1"


@dataclass(frozen=True)
class RegistryInfo:
    """The image registry every node trusts (and uses as its docker.io mirror)."""

    address: str  # "10.160.0.1:5000"
    subnet: str  # the infra network nodes get a route to, e.g. "10.160.0.0/24"


@dataclass(frozen=True)
class ProjectNetworkSpec:
    """A project network: one bridge on the host with no address of the host's on it, so
    nodes on it reach each other and nothing else (another project's network is another bridge)."""

    tag: str  # 8 hex chars carried by the network's host objects (bridge, iptables comment)
    subnet: str  # e.g. "10.161.4.0/24"


@dataclass(frozen=True)
class NodeNetwork:
    """One extra interface of a node: `ifname` inside the node, on project network `network_tag`."""

    network_tag: str
    ifname: str  # "eth1", "eth2", … (eth0 is the cluster's management network)
    address: str  # the node's address on the network
    subnet: str  # the network's CIDR


@dataclass(frozen=True)
class GPUDevice:
    """A host GPU as discovery found it (`nvidia-smi -L` and its device node)."""

    index: int
    uuid: str  # "GPU-…", what Swarm's generic resources and NVIDIA_VISIBLE_DEVICES name
    device: str  # "/dev/nvidia0"
    model: str = ""


@dataclass(frozen=True)
class NodeSpec:
    cluster_tag: str
    name: str  # hostname, DNS-safe, unique in the cluster (e.g. "c1-manager-0")
    address: str  # management address on the cluster network
    network: NetworkSpec
    docker_pool: str  # a /23 for this node's dockerd: bip = first /24, pools from the second
    tls: TLSMaterial
    registry: RegistryInfo | None = None
    labels: dict[str, str] = field(default_factory=dict)  # dockerd engine labels
    cpus: float | None = None  # flavor limits, None = unlimited
    memory_mb: int | None = None
    cluster_size: int = 0  # nodes the cluster will have (host limits that grow with it, e.g. ARP)
    disk_gb: int | None = None  # the filesystem size of the node's Docker data; None = the host's
    gpus: tuple[GPUDevice, ...] = ()  # host GPUs this node gets, exclusively
    networks: tuple[NodeNetwork, ...] = ()  # extra interfaces, beside the management network


@dataclass(frozen=True)
class NodeInfo:
    name: str
    address: str
    running: bool
    docker_url: str  # what floe itself uses, e.g. "unix:///…/docker.sock"
    tls_url: str  # what users use, e.g. "tcp://10.160.1.2:2376"
    pid: int | None = None


class InfraProvider(abc.ABC):
    """Where nodes come from. The local provider (namespaces + dockerd) is the default."""

    name: str = "abstract"

    @abc.abstractmethod
    def check(self) -> None:
        """Raise ProviderError with a clear reason if this host cannot run the provider."""

    @abc.abstractmethod
    def ensure_registry(self) -> RegistryInfo:
        """Start (or adopt) the image registry and make sure base images are in it."""

    @abc.abstractmethod
    def ensure_network(self, net: NetworkSpec) -> None:
        """Create (or adopt) the cluster network."""

    @abc.abstractmethod
    def delete_network(self, net: NetworkSpec) -> None:
        """Remove the cluster network; missing is fine."""

    @abc.abstractmethod
    def start_node(self, spec: NodeSpec) -> NodeInfo:
        """Start the node, or adopt it if already running; return once dockerd answers."""

    @abc.abstractmethod
    def node_info(self, cluster_tag: str, name: str) -> NodeInfo | None:
        """What is on the host for this node, or None if nothing is."""

    @abc.abstractmethod
    def stop_node(self, cluster_tag: str, name: str) -> None:
        """Stop the node and remove everything it made on the host; missing is fine."""

    @abc.abstractmethod
    def docker_client(self, info: NodeInfo) -> docker.DockerClient:
        """A docker SDK client driving this node's daemon."""

    @abc.abstractmethod
    def owned_cluster_tags(self) -> set[str]:
        """Tags of every cluster of this floe (its state directory) with anything on the host.

        Orphan cleanup compares these with the database; another floe's clusters on the same
        host (another state directory) are never this floe's orphans.
        """

    @abc.abstractmethod
    def purge_cluster(self, cluster_tag: str) -> list[str]:
        """Remove everything of a cluster on the host, known or not; return what was removed."""


class ProviderWithImageImport(abc.ABC):
    """Capability: the provider's registry accepts `docker save` archives."""

    @abc.abstractmethod
    def import_image_archive(self, path: Path, namespace: str) -> list[str]:
        """Push every image of the archive into the registry under `namespace`; return the names
        to use them by."""

    def registry_token_endpoint(self) -> tuple[str, int] | None:
        """(address, port) where the server must serve the registry's token realm, if it has one."""
        return None


class ProviderWithTLSRenewal(abc.ABC):
    """Capability: a running node's TLS endpoint can take new certificates (CA rotation)."""

    @abc.abstractmethod
    def renew_node_tls(self, spec: NodeSpec) -> None:
        """Make the node's TLS endpoint serve `spec.tls` and trust only its CA (idempotent).

        On return a running node refuses client certificates of any other CA; a node that
        is not running keeps the files for its next start. Workloads should survive it.
        """


class ProviderWithNetworks(abc.ABC):
    """Capability: nodes get interfaces on project networks, also while they run."""

    @abc.abstractmethod
    def ensure_project_network(self, net: ProjectNetworkSpec) -> None:
        """Create (or adopt) the project network on the host (idempotent)."""

    @abc.abstractmethod
    def delete_project_network(self, tag: str) -> None:
        """Remove the project network; missing is fine. Its nodes' interfaces must be gone first."""

    @abc.abstractmethod
    def attach_node_network(self, cluster_tag: str, name: str, net: NodeNetwork) -> None:
        """Give running node `name` its interface on `net` now, workloads untouched (idempotent).

        start_node also makes every interface of `spec.networks`, for a node started or adopted.
        """

    @abc.abstractmethod
    def project_network_tags(self) -> set[str]:
        """Tags of every project network this floe has on the host (orphan cleanup)."""


class ProviderWithNodeProcesses(abc.ABC):
    """Capability: programs beside a node's dockerd (a COE's daemons: munged, slurmd, slurmctld),
    commands run in a node, and a cluster's own daemons on the host, all tracked and removed with
    the node or the cluster.

    `cluster_files_dir` is a host directory every node of the cluster sees at the same path: a
    COE keeps there what all its nodes share (slurm.conf, the munge socket, controller state).
    """

    @abc.abstractmethod
    def cluster_files_dir(self, cluster_tag: str, create: bool = True) -> Path:
        """The cluster's shared files directory (made if missing and `create`); it goes with the cluster."""

    @abc.abstractmethod
    def node_run(self, cluster_tag: str, name: str, argv: list[str], timeout: float = 60.0,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command inside running node `name` (its namespaces and cgroups); ProviderError if
        the node is not running."""

    @abc.abstractmethod
    def start_node_daemon(self, cluster_tag: str, name: str, daemon: str, argv: list[str],
                          env: dict[str, str] | None = None) -> bool:
        """Start `argv` (in the foreground) as daemon `daemon` of running node `name`, unless it runs;
        True if started. It dies with the node; its output goes to the node's `<daemon>.log`."""

    @abc.abstractmethod
    def node_daemon_running(self, cluster_tag: str, name: str, daemon: str) -> bool:
        """Whether daemon `daemon` of node `name` is running."""

    @abc.abstractmethod
    def stop_node_daemon(self, cluster_tag: str, name: str, daemon: str) -> None:
        """Stop the node's daemon (SIGTERM, then SIGKILL); missing is fine."""

    @abc.abstractmethod
    def start_cluster_daemon(self, cluster_tag: str, daemon: str, argv: list[str]) -> bool:
        """Start `argv` (in the foreground) on the host as the cluster's daemon `daemon`, unless it
        runs; True if started. purge_cluster stops it."""

    @abc.abstractmethod
    def cluster_daemon_running(self, cluster_tag: str, daemon: str) -> bool:
        """Whether the cluster's host daemon `daemon` is running."""

    @abc.abstractmethod
    def stop_cluster_daemon(self, cluster_tag: str, daemon: str) -> None:
        """Stop the cluster's host daemon; missing is fine."""

    @abc.abstractmethod
    def open_host_ports(self, net: NetworkSpec, first: int, last: int) -> None:
        """Let the cluster's nodes open TCP connections to the host's address on the cluster network
        (net.gateway) on ports first..last, which host-side clients listen on (srun's I/O ports);
        nothing else of the host becomes reachable. Idempotent; goes with the cluster network."""


class ProviderWithGPUs(abc.ABC):
    """Capability: the host has GPUs that nodes can be given (NodeSpec.gpus)."""

    @abc.abstractmethod
    def host_gpus(self) -> list[GPUDevice]:
        """Every GPU of the host, in index order ([] when none or no driver)."""


class ProviderWithShareMounts(abc.ABC):
    """Capability: a cluster's nodes see shares mounted in a host directory of the cluster.

    The share engine mounts a share at `cluster_mount_dir(tag) / <name>` on the host and asks
    the provider whether each running node sees it; how a node sees host mounts (the local
    provider rbinds that directory, a shared mount, onto every node's /mnt) is the provider's.
    """

    @abc.abstractmethod
    def cluster_mount_dir(self, cluster_tag: str) -> Path | None:
        """The cluster's mount directory if its nodes receive mounts made there, else None."""

    @abc.abstractmethod
    def node_mount_view(self, cluster_tag: str, name: str) -> Path | None:
        """Where a running node's /mnt can be read from the host (to verify a mount), or None."""

    def node_sees_mount(self, cluster_tag: str, name: str, mount_name: str, host_path: Path,
                        read_only: bool) -> bool | None:
        """Whether running node `name` sees the host's mount at `host_path` as /mnt/<mount_name> with
        that read-only flag; None if the node is not running (it mounts /mnt when it starts)."""
        view = self.node_mount_view(cluster_tag, name)
        if view is None:
            return None
        try:
            seen, host = os.stat(view / mount_name), os.stat(host_path)
            flags = os.statvfs(view / mount_name).f_flag
        except OSError:
            return False
        same = seen.st_dev == host.st_dev and seen.st_ino == host.st_ino
        return same and bool(flags & os.ST_RDONLY) == read_only


@dataclass(frozen=True)
class InterfaceStats:
    """Byte counters of one network interface of a node (since the interface was made)."""

    name: str
    rx_bytes: int
    tx_bytes: int


@dataclass(frozen=True)
class ContainerStats:
    """What one container of a node's dockerd has used (its cgroup)."""

    id: str
    name: str
    cpu_seconds: float
    memory_bytes: int


@dataclass(frozen=True)
class NodeStats:
    """A reading of what a running node uses, taken at `time` (seconds since the epoch).

    Limits of 0 mean unlimited. `simulated` marks numbers that no machine measured.
    """

    time: float
    cpu_seconds: float  # CPU time of every process of the node (daemons and containers)
    cpu_limit_cores: float
    memory_bytes: int  # working set: usage less the page cache the kernel may drop
    memory_limit_bytes: int
    disk_used_bytes: int  # the filesystem holding the node's Docker data
    disk_size_bytes: int
    interfaces: tuple[InterfaceStats, ...] = ()
    containers: tuple[ContainerStats, ...] = ()
    simulated: bool = False


class ProviderWithNodeStats(abc.ABC):
    """Capability: the provider measures what each node uses (CPU, memory, disk, network, containers)."""

    @abc.abstractmethod
    def node_stats(self, cluster_tag: str, name: str) -> NodeStats | None:
        """A reading of running node `name`, None if it is not running. Cheap: a scrape asks every node."""


class ProviderWithDaemonMetrics(abc.ABC):
    """Capability: a node's dockerd serves its own Prometheus metrics, which only floe can reach."""

    @abc.abstractmethod
    def daemon_metrics(self, cluster_tag: str, name: str) -> bytes | None:
        """dockerd's metrics (Prometheus text) of running node `name`; None if it is not running.

        ProviderError if the node's dockerd serves none (a node started before it had a
        metrics address does until its next start) or does not answer.
        """


@dataclass(frozen=True)
class NodeLog:
    """One log of a node: a text file a daemon appends to, or (`journal`) a journal directory."""

    daemon: str  # dockerd, journald, slurmd, munged, …
    path: Path
    journal: bool = False  # read with journalctl -D: the node's journal (containers using the journald driver)


class ProviderWithNodeLogs(abc.ABC):
    """Capability: the logs of a node's daemons (dockerd, its journal, a COE's daemons) can be read on the host."""

    @abc.abstractmethod
    def node_logs(self, cluster_tag: str, name: str) -> list[NodeLog]:
        """The logs node `name` has, dockerd's first; [] if nothing of the node is on the host.

        A cluster's own host daemons (e.g. its munged) are listed on every node, with the same path.
        """

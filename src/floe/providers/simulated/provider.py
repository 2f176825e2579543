"""SimulatedProvider: nodes that "boot" after a delay and run nothing, like Cluster API's in-memory provider.

It exists to drive floe's engine, database and API far beyond what one machine can run
(thousands of clusters, clusters of thousands of nodes). It makes no process and no host
object. What it has "started" lives in memory and in a small SQLite file under FLOE_HOME
(`simulated/state.db`), so a restarted server finds its nodes again exactly as the local
provider adopts its running dockerds. Every call is idempotent, as the interface asks.
Its `node_stats` are simulated numbers, not measurements (`NodeStats.simulated`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from floe.providers.base import (
    ContainerStats,
    InfraProvider,
    InterfaceStats,
    NetworkSpec,
    NodeInfo,
    NodeNetwork,
    NodeSpec,
    NodeStats,
    ProjectNetworkSpec,
    ProviderError,
    ProviderWithNetworks,
    ProviderWithNodeStats,
    ProviderWithTLSRenewal,
    RegistryInfo,
)

if TYPE_CHECKING:
    import docker

_SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
    tag TEXT NOT NULL, name TEXT NOT NULL, address TEXT NOT NULL,
    booted_at REAL NOT NULL, running INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (tag, name)
);
CREATE TABLE IF NOT EXISTS networks (tag TEXT PRIMARY KEY, subnet TEXT NOT NULL);
"""
# Added later: a state file of an older floe gets them (NULL: unlimited) when opened.
_SIZE_COLUMNS = ("cpus REAL", "memory_mb INTEGER", "disk_gb INTEGER")
# Simulated node size where the flavor sets none (what node_stats reports as the disk's size).
SIM_DISK_BYTES = 20 << 30


@dataclass
class SimNode:
    tag: str
    name: str
    address: str
    booted_at: float  # wall-clock time (time.time()) at which the node has finished booting
    running: bool = True
    cpus: float | None = None  # the flavor's, for node_stats
    memory_mb: int | None = None
    disk_gb: int | None = None


class SimulatedProvider(InfraProvider, ProviderWithTLSRenewal, ProviderWithNetworks, ProviderWithNodeStats):
    """Nodes as rows: start_node waits out the boot delay once, then the node "runs" until stopped."""

    name = "simulated"

    def __init__(self, home: Path, infra_subnet: str, registry_port: int = 5000, boot_delay: float = 0.0):
        if boot_delay < 0:
            raise ProviderError(f"boot delay must be >= 0, not {boot_delay}")
        try:
            self.infra_net = ipaddress.IPv4Network(infra_subnet)
        except ValueError as exc:
            raise ProviderError(f"invalid infra subnet {infra_subnet!r}: {exc}") from None
        self.registry = RegistryInfo(f"{self.infra_net.network_address + 1}:{registry_port}", str(self.infra_net))
        self.boot_delay = boot_delay
        self.state_file = Path(home) / "simulated" / "state.db"
        self.state_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # One connection shared by every engine thread, guarded by the lock: the writes are
        # tiny, and one writer avoids SQLite's lock contention between our own threads.
        self._db = sqlite3.connect(self.state_file, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        have = {row[1] for row in self._db.execute("PRAGMA table_info(nodes)")}
        for column in _SIZE_COLUMNS:
            if column.split()[0] not in have:
                self._db.execute(f"ALTER TABLE nodes ADD COLUMN {column}")
        self._lock = threading.Lock()
        # cluster tag -> node name -> node: a cluster's nodes are found without a scan.
        self._nodes: dict[str, dict[str, SimNode]] = {}
        self._networks: dict[str, str] = {}
        self._project_networks: set[str] = set()
        for tag, name, address, booted_at, running, cpus, memory_mb, disk_gb in self._db.execute(
            "SELECT tag, name, address, booted_at, running, cpus, memory_mb, disk_gb FROM nodes"
        ):
            self._nodes.setdefault(tag, {})[name] = SimNode(
                tag, name, address, booted_at, bool(running), cpus, memory_mb, disk_gb
            )
        self._networks = dict(self._db.execute("SELECT tag, subnet FROM networks").fetchall())

    # -- interface -------------------------------------------------------------
    def check(self) -> None:
        """Nothing to check: simulated nodes need no privilege and no program."""

    def ensure_registry(self) -> RegistryInfo:
        return self.registry

    def ensure_network(self, net: NetworkSpec) -> None:
        with self._lock:
            if self._networks.get(net.cluster_tag) == net.subnet:
                return
            self._networks[net.cluster_tag] = net.subnet
            self._db.execute(
                "INSERT OR REPLACE INTO networks (tag, subnet) VALUES (?, ?)", (net.cluster_tag, net.subnet)
            )

    # Project networks: nothing to build; what exists is remembered for cleanup's sake.
    def ensure_project_network(self, net: ProjectNetworkSpec) -> None:
        self._project_networks.add(net.tag)

    def delete_project_network(self, tag: str) -> None:
        self._project_networks.discard(tag)

    def attach_node_network(self, cluster_tag: str, name: str, net: NodeNetwork) -> None:
        if net.network_tag not in self._project_networks:
            raise ProviderError(f"project network {net.network_tag} does not exist", temporary=True)

    def project_network_tags(self) -> set[str]:
        return set(self._project_networks)

    def delete_network(self, net: NetworkSpec) -> None:
        with self._lock:
            self._networks.pop(net.cluster_tag, None)
            self._db.execute("DELETE FROM networks WHERE tag = ?", (net.cluster_tag,))

    def start_node(self, spec: NodeSpec) -> NodeInfo:
        """Record the node (booting from now on) or find it; return once it has booted."""
        if spec.network.cluster_tag != spec.cluster_tag:
            raise ProviderError(f"node {spec.name} of cluster {spec.cluster_tag} on another cluster's network")
        with self._lock:
            if spec.cluster_tag not in self._networks:
                raise ProviderError(f"network of cluster {spec.cluster_tag} does not exist", temporary=True)
            nodes = self._nodes.setdefault(spec.cluster_tag, {})
            node = nodes.get(spec.name)
            if node is None or not node.running:
                # A failed node boots afresh, as a real machine would.
                node = SimNode(
                    spec.cluster_tag, spec.name, spec.address, time.time() + self.boot_delay,
                    cpus=spec.cpus, memory_mb=spec.memory_mb, disk_gb=spec.disk_gb,
                )
                nodes[spec.name] = node
                self._db.execute(
                    "INSERT OR REPLACE INTO nodes (tag, name, address, booted_at, running, cpus, memory_mb, disk_gb)"
                    " VALUES (?, ?, ?, ?, 1, ?, ?, ?)",
                    (node.tag, node.name, node.address, node.booted_at, node.cpus, node.memory_mb, node.disk_gb),
                )
        wait = node.booted_at - time.time()
        if wait > 0:
            time.sleep(wait)
        return self._info(node)

    def node_info(self, cluster_tag: str, name: str) -> NodeInfo | None:
        with self._lock:
            node = self._nodes.get(cluster_tag, {}).get(name)
        return None if node is None else self._info(node)

    def stop_node(self, cluster_tag: str, name: str) -> None:
        with self._lock:
            if self._nodes.get(cluster_tag, {}).pop(name, None) is not None:
                self._db.execute("DELETE FROM nodes WHERE tag = ? AND name = ?", (cluster_tag, name))

    def docker_client(self, info: NodeInfo) -> docker.DockerClient:
        raise ProviderError(f"simulated node {info.name} has no Docker API")

    def renew_node_tls(self, spec: NodeSpec) -> None:
        """Nothing to reload: a simulated node serves no TLS (CA rotation still runs every step)."""
        if spec.network.cluster_tag != spec.cluster_tag:
            raise ProviderError(f"node {spec.name} of cluster {spec.cluster_tag} on another cluster's network")

    def owned_cluster_tags(self) -> set[str]:
        """Every cluster with a simulated node or network: the state file is this floe's alone."""
        with self._lock:
            return {tag for tag, nodes in self._nodes.items() if nodes} | set(self._networks)

    def purge_cluster(self, cluster_tag: str) -> list[str]:
        with self._lock:
            gone = [f"node {name}" for name in self._nodes.pop(cluster_tag, {})]
            if self._networks.pop(cluster_tag, None) is not None:
                gone.append(f"network {cluster_tag}")
            self._db.execute("DELETE FROM nodes WHERE tag = ?", (cluster_tag,))
            self._db.execute("DELETE FROM networks WHERE tag = ?", (cluster_tag,))
        return gone

    def node_stats(self, cluster_tag: str, name: str) -> NodeStats | None:
        """Simulated numbers (`simulated=True`), none measured: a steady load per node, chosen by a
        hash of its name, that grows the counters with the time since boot and moves memory in
        a slow wave, always within the node's flavor."""
        with self._lock:
            node = self._nodes.get(cluster_tag, {}).get(name)
        now = time.time()
        if node is None or not node.running or now < node.booted_at:
            return None
        return simulated_stats(node, now)

    # -- for tests and tools ---------------------------------------------------
    def fail_node(self, cluster_tag: str, name: str) -> None:
        """Make a node stop answering (a crashed machine): health checks will report it."""
        with self._lock:
            node = self._nodes.get(cluster_tag, {}).get(name)
            if node is not None:
                node.running = False
                self._db.execute("UPDATE nodes SET running = 0 WHERE tag = ? AND name = ?", (cluster_tag, name))

    def nodes_of(self, cluster_tag: str) -> set[str]:
        """Names of the nodes this provider holds for a cluster."""
        with self._lock:
            return set(self._nodes.get(cluster_tag, {}))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _info(self, node: SimNode) -> NodeInfo:
        running = node.running and time.time() >= node.booted_at
        return NodeInfo(node.name, node.address, running, f"sim://{node.tag}/{node.name}", f"tcp://{node.address}:2376")


def simulated_stats(node: SimNode, now: float) -> NodeStats:
    """Plausible, deterministic numbers for a simulated node at `now` (see node_stats)."""
    seed = hashlib.sha256(f"{node.tag}/{node.name}".encode()).digest()
    load = 0.05 + seed[0] / 255 * 0.55  # busy fraction of its CPUs
    up = max(0.0, now - node.booted_at)
    cores = node.cpus or 1.0
    memory_limit = (node.memory_mb or 0) << 20
    ceiling = memory_limit or 2 << 30
    wave = 0.5 + 0.5 * math.sin(up / 300 + seed[1])
    memory = int(ceiling * (0.2 + 0.3 * wave * (0.5 + seed[2] / 510)))
    disk_size = (node.disk_gb << 30) if node.disk_gb else SIM_DISK_BYTES
    rate = 2_000 + seed[3] * 40  # bytes per second on eth0
    containers = tuple(
        ContainerStats(
            id=hashlib.sha256(seed + bytes([i])).hexdigest(), name=f"sim-{node.name}-{i}",
            cpu_seconds=up * cores * load / 3, memory_bytes=memory // 4,
        )
        for i in range(1 + seed[4] % 3)  # at least one: the dashboard's container panels always have data
    )
    return NodeStats(
        time=now, cpu_seconds=up * cores * load, cpu_limit_cores=node.cpus or 0.0,
        memory_bytes=memory, memory_limit_bytes=memory_limit,
        disk_used_bytes=int(disk_size * (0.05 + seed[5] / 255 * 0.3)), disk_size_bytes=disk_size,
        interfaces=(InterfaceStats("eth0", int(up * rate), int(up * rate * 0.8)),),
        containers=containers, simulated=True,
    )

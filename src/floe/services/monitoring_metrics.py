"""What each node target answers, in Prometheus's text format (no HTTP here).

Metric names are the contract with the alert rules and dashboards (docs/monitoring.md):
`floe_node_*` and `floe_container_*` for a node, dockerd's own for its daemon, `slurm_*` for a
Slurm cluster. Labels that say whose target it is (project, cluster, node, …) come from the
service discovery, so the samples here carry only their own (interface, container, state).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from floe.coe.slurm.client import SlurmTools
from floe.errors import StepError
from floe.host.errors import HostError
from floe.providers.base import NodeStats, ProviderWithDaemonMetrics, ProviderWithNodeProcesses, ProviderWithNodeStats
from floe.runtime import Runtime
from floe.services.monitoring_targets import Unavailable, find_node, find_slurm_cluster

# sinfo appends one of these to a state for a flag (down*, idle~, drained@, …); the state is what precedes.
_STATE_FLAGS = "*~#!%$@^-+"


class _Families:
    """A collector of ready-made families: generate_latest on a registry of its own per answer."""

    def __init__(self, families: Iterable[Metric]):
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def exposition(families: Iterable[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry)


def node_families(stats: NodeStats) -> list[Metric]:
    """The `source="node"` metrics of one reading."""
    def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, value=value)

    rx = CounterMetricFamily("floe_node_network_receive_bytes", "Bytes the node's interface received.",
                             labels=["interface"])
    tx = CounterMetricFamily("floe_node_network_transmit_bytes", "Bytes the node's interface sent.",
                             labels=["interface"])
    for i in stats.interfaces:
        rx.add_metric([i.name], i.rx_bytes)
        tx.add_metric([i.name], i.tx_bytes)
    c_cpu = CounterMetricFamily("floe_container_cpu_seconds", "CPU time of a container of the node's dockerd.",
                                labels=["container"])
    c_mem = GaugeMetricFamily("floe_container_memory_bytes", "Working set of a container of the node's dockerd.",
                              labels=["container"])
    for c in stats.containers:
        c_cpu.add_metric([c.name], c.cpu_seconds)
        c_mem.add_metric([c.name], c.memory_bytes)
    families: list[Metric] = [
        CounterMetricFamily("floe_node_cpu_seconds", "CPU time of every process of the node.",
                            value=stats.cpu_seconds),
        gauge("floe_node_cpu_limit_cores", "The node's CPU limit in cores (0 = unlimited).", stats.cpu_limit_cores),
        gauge("floe_node_memory_bytes", "The node's working set (memory less inactive page cache).",
              stats.memory_bytes),
        gauge("floe_node_memory_limit_bytes", "The node's memory limit (0 = unlimited).", stats.memory_limit_bytes),
        gauge("floe_node_disk_used_bytes", "Used bytes of the filesystem holding the node's Docker data.",
              stats.disk_used_bytes),
        gauge("floe_node_disk_size_bytes", "Size of the filesystem holding the node's Docker data.",
              stats.disk_size_bytes),
        rx, tx, c_cpu, c_mem,
        gauge("floe_node_stats_simulated", "1 if these numbers are the simulated provider's, not measured.",
              1 if stats.simulated else 0),
    ]
    return families


def node_metrics(runtime: Runtime, node_uuid: str) -> bytes:
    """The node target: what the node uses now. NotFound for no such node; Unavailable if it does not run."""
    tag, name = find_node(runtime, node_uuid)
    provider = runtime.provider
    if not isinstance(provider, ProviderWithNodeStats):
        raise Unavailable("this floe server's infra provider does not measure its nodes")
    try:
        stats = provider.node_stats(tag, name)
    except HostError as exc:
        raise Unavailable(f"node {name} cannot be measured: {exc}") from None
    if stats is None:
        raise Unavailable(f"node {name} is not running")
    return exposition(node_families(stats))


def dockerd_metrics(runtime: Runtime, node_uuid: str) -> bytes:
    """The dockerd target: the node's dockerd's own metrics, as it serves them."""
    tag, name = find_node(runtime, node_uuid)
    provider = runtime.provider
    if not isinstance(provider, ProviderWithDaemonMetrics):
        raise Unavailable("this floe server's nodes serve no dockerd metrics")
    try:
        body = provider.daemon_metrics(tag, name)
    except HostError as exc:
        raise Unavailable(str(exc)) from None
    if body is None:
        raise Unavailable(f"node {name} is not running")
    return body


def _state(text: str) -> str:
    return text.strip().rstrip(_STATE_FLAGS).lower() or "unknown"


def slurm_families(tools: SlurmTools) -> list[Metric]:
    """Nodes by state, jobs by state and CPUs, as the cluster's controller counts them."""
    nodes: dict[str, tuple[str, list[int]]] = {}
    for line in tools.run("sinfo", "-N", "-h", "-o", "%N|%T|%C").stdout.splitlines():
        parts = line.split("|")
        if len(parts) != 3:
            continue
        cpus = [int(x) if x.isdigit() else 0 for x in parts[2].strip().split("/")]
        nodes[parts[0].strip()] = (_state(parts[1]), (cpus + [0, 0, 0, 0])[:4])  # one line per partition: once
    jobs = Counter(_state(line) for line in tools.run("squeue", "-h", "-o", "%T").stdout.splitlines() if line.strip())
    by_state = GaugeMetricFamily("slurm_nodes", "Slurm nodes by state (sinfo).", labels=["state"])
    for state, count in sorted(Counter(s for s, _ in nodes.values()).items()):
        by_state.add_metric([state], count)
    job_states = GaugeMetricFamily("slurm_jobs", "Slurm jobs by state (squeue).", labels=["state"])
    for state, count in sorted(jobs.items()):
        job_states.add_metric([state], count)
    allocated = sum(c[0] for _, c in nodes.values())
    total = sum(c[3] for _, c in nodes.values())
    return [
        by_state, job_states,
        GaugeMetricFamily("slurm_cpus_total", "CPUs of every Slurm node.", value=total),
        GaugeMetricFamily("slurm_cpus_allocated", "CPUs allocated to jobs.", value=allocated),
    ]


def slurm_metrics(runtime: Runtime, cluster_uuid: str) -> bytes:
    """The slurm target of a Slurm cluster (sinfo and squeue on the host, through its slurm.conf)."""
    tag, name = find_slurm_cluster(runtime, cluster_uuid)
    provider = runtime.provider
    if not isinstance(provider, ProviderWithNodeProcesses):
        raise Unavailable("this floe server's infra provider runs no Slurm daemons")
    conf = provider.cluster_files_dir(tag, create=False) / "slurm.conf"
    if not conf.exists():
        raise Unavailable(f"cluster {name} has no Slurm configuration yet")
    try:
        families: list[Any] = slurm_families(SlurmTools(conf))
    except StepError as exc:  # the controller does not answer (restarting, down) or the tools are missing
        raise Unavailable(f"the Slurm controller of cluster {name} does not answer: {exc}") from None
    return exposition(families)

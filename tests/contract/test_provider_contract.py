"""The infra-provider contract (src/floe/providers/base.py): every provider passes these.

A new provider is added to `PROVIDERS` below and must pass the whole suite. `local` runs the
real thing (namespaces, a bridge, iptables, dockerd; needs root) on 10.171.0.0/16 only, with its
own home, and purges what it made; `simulated` needs nothing.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from floe import pki
from floe.providers.base import (
    InfraProvider,
    NetworkSpec,
    NodeInfo,
    NodeSpec,
    ProviderError,
    ProviderWithImageImport,
    ProviderWithShareMounts,
    RegistryInfo,
    TLSMaterial,
)

INFRA = "10.171.0.0/24"
SUBNET, GATEWAY = "10.171.1.0/24", "10.171.1.1"
PROVIDERS = ("simulated", "local")

pytestmark = pytest.mark.timeout(300)


def _make(kind: str, home: Path) -> InfraProvider:
    if kind == "simulated":
        from floe.providers.simulated import SimulatedProvider

        return SimulatedProvider(home, INFRA)
    if os.geteuid() != 0:
        pytest.skip("the local provider needs root (namespaces, bridges, dockerd)")
    from floe.providers.local import LocalProvider

    prov = LocalProvider(home, INFRA, registry_port=5000)
    try:
        prov.check()
    except ProviderError as exc:
        pytest.skip(f"the local provider cannot run here: {exc}")
    return prov


@pytest.fixture(scope="module", params=PROVIDERS)
def provider(request, tmp_path_factory) -> Iterator[InfraProvider]:
    home = tmp_path_factory.mktemp(f"contract-{request.param}")
    prov = _make(request.param, home)
    yield prov
    for tag in prov.owned_cluster_tags():
        prov.purge_cluster(tag)
    purge_all = getattr(prov, "purge_all", None)
    if purge_all is not None:
        purge_all(only_this_home=True)
    close = getattr(prov, "close", None)
    if close is not None:
        close()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def ca() -> tuple[str, str]:
    return pki.new_ca("floe contract ca")


@pytest.fixture(scope="module")
def registry(provider) -> RegistryInfo:
    return provider.ensure_registry()


def _network(tag: str) -> NetworkSpec:
    return NetworkSpec(cluster_tag=tag, name="mgmt", subnet=SUBNET, gateway=GATEWAY)


def _spec(tag: str, name: str, index: int, ca, registry: RegistryInfo) -> NodeSpec:
    address = f"10.171.1.{index + 2}"
    cert, key = pki.issue_server_cert(ca[0], ca[1], name, ips=[address], dns=[name])
    return NodeSpec(
        cluster_tag=tag, name=name, address=address, network=_network(tag),
        docker_pool=f"10.171.{64 + 2 * index}.0/23", tls=TLSMaterial(ca[0], cert, key), registry=registry,
        labels={"floe.node": name}, cluster_size=1,
    )


@pytest.fixture
def tag(provider) -> Iterator[str]:
    """A fresh cluster tag; whatever the test leaves of it is purged."""
    value = secrets.token_hex(4)
    yield value
    provider.purge_cluster(value)


def test_the_host_check_and_the_registry_are_idempotent(provider: InfraProvider, registry: RegistryInfo) -> None:
    provider.check()
    assert provider.ensure_registry() == registry
    assert registry.subnet == INFRA
    assert registry.address.startswith("10.171.0.")


def test_a_node_starts_once_and_is_adopted_when_started_again(provider, tag, ca, registry) -> None:
    net = _network(tag)
    provider.ensure_network(net)
    provider.ensure_network(net)  # idempotent
    spec = _spec(tag, "contract-node-0", 0, ca, registry)
    first = provider.start_node(spec)
    assert isinstance(first, NodeInfo) and first.running
    assert first.name == spec.name and first.address == spec.address
    again = provider.start_node(spec)  # adopts the running node
    assert again.running and again.address == first.address and again.pid == first.pid
    info = provider.node_info(tag, spec.name)
    assert info is not None and info.running
    assert tag in provider.owned_cluster_tags()


def test_node_info_of_an_unknown_node_is_none(provider, tag) -> None:
    assert provider.node_info(tag, "no-such-node") is None


def test_stopping_and_deleting_are_idempotent_and_leave_nothing(provider, tag, ca, registry) -> None:
    net = _network(tag)
    provider.ensure_network(net)
    spec = _spec(tag, "contract-node-1", 1, ca, registry)
    provider.start_node(spec)
    provider.stop_node(tag, spec.name)
    provider.stop_node(tag, spec.name)  # missing is fine
    info = provider.node_info(tag, spec.name)
    assert info is None or not info.running
    provider.delete_network(net)
    provider.delete_network(net)  # missing is fine
    provider.purge_cluster(tag)
    assert tag not in provider.owned_cluster_tags()
    assert provider.purge_cluster(tag) == []  # nothing is left to remove


def test_purge_removes_a_half_built_cluster(provider, tag, ca, registry) -> None:
    provider.ensure_network(_network(tag))
    provider.start_node(_spec(tag, "contract-node-2", 2, ca, registry))
    removed = provider.purge_cluster(tag)
    assert removed, "purge names what it removed"
    assert provider.node_info(tag, "contract-node-2") is None
    assert tag not in provider.owned_cluster_tags()


def test_a_node_on_a_missing_network_is_refused_or_waits(provider, tag, ca, registry) -> None:
    """Starting a node before its network is a ProviderError (temporary: the engine retries)."""
    spec = _spec(tag, "contract-node-3", 3, ca, registry)
    try:
        info = provider.start_node(spec)
    except ProviderError as exc:
        assert exc.temporary or "network" in str(exc) or "bridge" in str(exc)
    else:  # a provider may create what it needs; then the node must really run
        assert info.running


def test_capabilities_are_declared_by_subclassing(provider) -> None:
    for mixin in (ProviderWithImageImport, ProviderWithShareMounts):
        declared = issubclass(type(provider), mixin)
        for name in mixin.__abstractmethods__:
            assert callable(getattr(provider, name, None)) or not declared
    if issubclass(type(provider), ProviderWithShareMounts):
        assert provider.cluster_mount_dir(secrets.token_hex(4)) is None  # no such cluster
        assert provider.node_mount_view(secrets.token_hex(4), "x") is None


def test_programs_in_nodes_and_cluster_daemons(provider, tag, ca, registry) -> None:
    """ProviderWithNodeProcesses: a daemon lives in the node (its namespaces, hostname, cgroups),
    starts once, stops, dies with the node; a cluster daemon on the host goes with purge."""
    from floe.providers.base import ProviderWithNodeProcesses

    if not isinstance(provider, ProviderWithNodeProcesses):
        pytest.skip(f"the {provider.name} provider runs no programs in nodes")
    provider.ensure_network(_network(tag))
    spec = _spec(tag, "contract-node-4", 4, ca, registry)
    provider.start_node(spec)
    files = provider.cluster_files_dir(tag)
    assert files.is_dir() and provider.cluster_files_dir(tag) == files
    # A command runs in the node: its hostname, its address, its own /run.
    out = provider.node_run(tag, spec.name, ["/bin/sh", "-c", "hostname; ip -4 -o addr show; ls /run"]).stdout
    assert out.splitlines()[0] == spec.name and spec.address in out
    # A daemon starts once, is seen running, stops.
    marker = files / "seen"
    argv = ["/bin/sh", "-c", f'hostname > {marker}; exec sleep 600']
    assert provider.start_node_daemon(tag, spec.name, "sleeper", argv) is True
    assert provider.start_node_daemon(tag, spec.name, "sleeper", argv) is False  # already running
    assert provider.node_daemon_running(tag, spec.name, "sleeper")
    end = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < end:
        time.sleep(0.05)
    assert marker.read_text().strip() == spec.name
    provider.stop_node_daemon(tag, spec.name, "sleeper")
    assert not provider.node_daemon_running(tag, spec.name, "sleeper")
    provider.stop_node_daemon(tag, spec.name, "sleeper")  # missing is fine
    with pytest.raises(ProviderError):
        provider.start_node_daemon(tag, spec.name, "../bad name", argv)
    # One that is left running dies with its node.
    provider.start_node_daemon(tag, spec.name, "sleeper", argv)
    provider.stop_node(tag, spec.name)
    assert not provider.node_daemon_running(tag, spec.name, "sleeper")
    with pytest.raises(ProviderError):
        provider.node_run(tag, spec.name, ["true"])
    # A cluster daemon on the host, named by its directory; purge stops it.
    host_argv = ["/bin/sh", "-c", "while :; do sleep 1; done", "floe-helper", str(files)]
    assert provider.start_cluster_daemon(tag, "helper", host_argv) is True
    assert provider.start_cluster_daemon(tag, "helper", host_argv) is False
    assert provider.cluster_daemon_running(tag, "helper")
    provider.purge_cluster(tag)
    assert not provider.cluster_daemon_running(tag, "helper")


def test_node_stats_measure_a_running_node(provider, tag, ca, registry) -> None:
    """ProviderWithNodeStats: a running node's reading holds its flavor's limits and grows its
    counters; a node that does not run has none. ProviderWithDaemonMetrics: its dockerd's own."""
    from dataclasses import replace

    from floe.providers.base import NodeStats, ProviderWithDaemonMetrics, ProviderWithNodeStats

    if not isinstance(provider, ProviderWithNodeStats):
        pytest.skip(f"the {provider.name} provider does not measure its nodes")
    provider.ensure_network(_network(tag))
    spec = replace(_spec(tag, "contract-node-5", 5, ca, registry), cpus=1.0, memory_mb=384)
    provider.start_node(spec)
    first = provider.node_stats(tag, spec.name)
    assert isinstance(first, NodeStats)
    assert first.memory_limit_bytes == 384 << 20 and first.cpu_limit_cores == 1.0
    assert 0 < first.memory_bytes <= first.memory_limit_bytes
    assert 0 < first.disk_used_bytes <= first.disk_size_bytes
    assert "eth0" in {i.name for i in first.interfaces}
    time.sleep(0.5)
    second = provider.node_stats(tag, spec.name)
    assert second is not None and second.time > first.time
    assert second.cpu_seconds >= first.cpu_seconds > 0
    if isinstance(provider, ProviderWithDaemonMetrics):
        assert b"engine_daemon_" in (provider.daemon_metrics(tag, spec.name) or b"")
    provider.stop_node(tag, spec.name)
    assert provider.node_stats(tag, spec.name) is None
    assert provider.node_stats(tag, "no-such-node") is None
    if isinstance(provider, ProviderWithDaemonMetrics):
        assert provider.daemon_metrics(tag, spec.name) is None


def test_node_logs_name_dockerd_and_the_nodes_journal(provider, tag, ca, registry) -> None:
    """ProviderWithNodeLogs: a running node's dockerd log, dockerd's first; where the provider gives
    nodes a journal, what a program in the node sends to journald is in it; a node gone has none."""
    import subprocess

    from floe.providers.base import ProviderWithNodeLogs, ProviderWithNodeProcesses

    if not isinstance(provider, ProviderWithNodeLogs):
        pytest.skip(f"the {provider.name} provider keeps no node logs")
    provider.ensure_network(_network(tag))
    spec = _spec(tag, "contract-node-6", 6, ca, registry)
    provider.start_node(spec)
    logs = provider.node_logs(tag, spec.name)
    assert logs[0].daemon == "dockerd" and not logs[0].journal
    assert "API listen on" in logs[0].path.read_text()
    journals = [log for log in logs if log.journal]
    if journals and isinstance(provider, ProviderWithNodeProcesses):
        (journal,) = journals
        provider.node_run(tag, spec.name, ["/bin/sh", "-c", "echo contract-hello | systemd-cat -t floe-contract"])
        end, found = time.monotonic() + 10, ""
        while "contract-hello" not in found and time.monotonic() < end:
            found = subprocess.run(["journalctl", "-D", str(journal.path), "--no-pager", "-q", "-t", "floe-contract"],
                                   capture_output=True, text=True, timeout=30).stdout
            time.sleep(0.1)
        assert f"{spec.name} floe-contract" in found and "contract-hello" in found, found
    provider.stop_node(tag, spec.name)
    assert provider.node_logs(tag, spec.name) == []

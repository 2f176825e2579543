"""Nodes shaped like the hardware, end to end on real nodes: flavors that hold, nodegroups with
labels that place services, several networks per node with the data path on the second, a
network attached to a running cluster, and nothing left behind.

Everything is real: the floe server, namespaces with a dockerd each, Swarm, the stock docker CLI
over TLS, `floe` commands. (GPUs need a GPU host: tests/providers/test_gpus.py covers them with
fake devices, and docs/flavors-local.md records the check on a real one.)
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import FloeServer, host_objects, objects_of
from tests.e2e.test_swarm_cluster import _tag, docker, docker_env

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def _nodes(server: FloeServer, cluster: str) -> dict[str, dict]:
    out = server.floe("cluster", "nodes", cluster, "-f", "json").stdout
    return {n["name"]: n for n in json.loads(out)}


def _iface(node: dict, name: str) -> str:
    return next(i["address"] for i in node["interfaces"] if i["name"] == name)


def _on(env: dict[str, str], node: dict) -> dict[str, str]:
    """The docker CLI environment for one node (the cluster's client certificate works on every node)."""
    return {**env, "DOCKER_HOST": f"tcp://{node['address']}:2376"}


def _counter(env: dict[str, str], ifname: str, what: str = "tx_bytes") -> int:
    path = f"/sys/class/net/{ifname}/statistics/{what}"
    out = docker(env, "run", "--rm", "--network", "host", "busybox", "cat", path)
    return int(out.strip())




def test_two_networks_groups_flavors_placement_and_a_live_attach(server: FloeServer, tmp_path: Path):
    server.floe("network", "create", "hw-fast")
    server.floe("network", "create", "hw-data", "--cidr", "10.180.250.0/24")
    server.floe("template", "create", "hw", "--coe", "swarm", "--flavor", "m1.tiny", "--master-flavor", "m1.small")
    server.floe("cluster", "create", "hw", "--template", "hw", "--node-count", "2",
                "--network", "hw-fast", "--network", "hw-data", "--data-network", "hw-data", "--wait")
    assert server.cluster("hw")["status"] == "CREATE_COMPLETE"
    server.floe("nodegroup", "create", "hw", "big", "--node-count", "1", "--flavor", "m1.medium",
                "--node-label", "disk=ssd", "--wait")
    nodes = _nodes(server, "hw")
    assert set(nodes) == {"hw-master-0", "hw-node-0", "hw-node-1", "hw-big-0"}, nodes
    for n in nodes.values():
        assert [(i["name"], i["network"]) for i in n["interfaces"]] == [
            ("eth0", "management"), ("eth1", "hw-fast"), ("eth2", "hw-data")], n
    assert _iface(nodes["hw-node-0"], "eth2").startswith("10.180.250.")
    assert (nodes["hw-node-0"]["flavor"], nodes["hw-big-0"]["flavor"]) == ("m1.tiny", "m1.medium")

    env = docker_env(server, "hw", tmp_path)
    # Flavors hold: each node's dockerd reports its flavor's CPUs (as many as the host has at
    # most) and memory; Swarm advertises them.
    host_cpus = os.cpu_count() or 1
    for name, (cpus, mib) in {"hw-node-0": (1, 512), "hw-big-0": (min(2, host_cpus), 4096),
                              "hw-master-0": (1, 2048)}.items():
        info = json.loads(docker(_on(env, nodes[name]), "info", "--format", "{{json .}}"))
        assert info["NCPU"] == cpus, (name, info["NCPU"])
        assert abs(info["MemTotal"] - mib * 2**20) < 2**20, (name, info["MemTotal"])

    # Nodegroup labels place a service: every task on the big group's node.
    labels = json.loads(docker(env, "node", "inspect", "hw-big-0", "--format", "{{json .Spec.Labels}}"))
    assert labels["floe.nodegroup"] == "big" and labels["floe.flavor"] == "m1.medium" and labels["disk"] == "ssd"
    docker(env, "service", "create", "--detach", "--name", "placed", "--replicas", "3",
           "--constraint", "node.labels.floe.nodegroup==big", "busybox", "sleep", "3600")
    end = time.monotonic() + 120
    placed: list[str] = []
    while time.monotonic() < end:
        out = docker(env, "service", "ps", "placed", "--filter", "desired-state=running",
                     "--format", "{{.Node}} {{.CurrentState}}")
        placed = [ln.split()[0] for ln in out.splitlines() if " Running" in ln]
        if len(placed) == 3:
            break
        time.sleep(0.5)
    assert placed == ["hw-big-0"] * 3, placed
    docker(env, "service", "rm", "placed")

    # A host-networked container sees every interface and reaches another node over eth1.
    w0, w1 = _on(env, nodes["hw-node-0"]), _on(env, nodes["hw-node-1"])
    links = docker(w0, "run", "--rm", "--network", "host", "busybox", "ip", "-o", "-4", "addr")
    assert _iface(nodes["hw-node-0"], "eth1") in links and _iface(nodes["hw-node-0"], "eth2") in links
    docker(w0, "run", "--rm", "--network", "host", "busybox", "ping", "-c", "2", "-W", "2",
           _iface(nodes["hw-node-1"], "eth1"))

    # Overlay traffic takes the data network (eth2), not the management network (eth0).
    docker(env, "network", "create", "--driver", "overlay", "--attachable", "hwdp")
    docker(w1, "run", "-d", "--name", "target", "--network", "hwdp", "busybox", "sleep", "3600")
    target = docker(w1, "inspect", "target", "--format", "{{(index .NetworkSettings.Networks \"hwdp\").IPAddress}}")
    before = {i: _counter(w0, i) for i in ("eth0", "eth2")}
    docker(w0, "run", "--rm", "--network", "hwdp", "busybox", "ping", "-q", "-c", "100", "-i", "0.02", "-s", "1200",
           target.strip())
    after = {i: _counter(w0, i) for i in ("eth0", "eth2")}
    sent = 100 * 1200
    assert after["eth2"] - before["eth2"] >= sent, (before, after)
    assert after["eth0"] - before["eth0"] < sent / 2, (before, after)

    # A third network for the running cluster: the container keeps running, untouched, and
    # a host-networked container on every node sees eth3 at once.
    started = docker(w1, "inspect", "target", "--format", "{{.State.StartedAt}} {{.RestartCount}}")
    server.floe("network", "create", "hw-late")
    server.floe("cluster", "network", "attach", "hw", "hw-late", "--wait")
    assert server.cluster("hw")["status"] == "UPDATE_COMPLETE"
    assert docker(w1, "inspect", "target", "--format", "{{.State.StartedAt}} {{.RestartCount}}") == started
    nodes = _nodes(server, "hw")
    for n in nodes.values():
        eth3 = _iface(n, "eth3")
        assert eth3 in docker(_on(env, n), "run", "--rm", "--network", "host", "busybox", "ip", "-o", "-4", "addr")
    docker(w0, "run", "--rm", "--network", "host", "busybox", "ping", "-c", "1", "-W", "2",
           _iface(nodes["hw-big-0"], "eth3"))
    docker(w1, "rm", "-f", "target")

    # A network in use cannot go; after the cluster, it can, and nothing is left.
    assert server.floe("network", "delete", "hw-fast", check=False).returncode != 0
    tag = _tag(server, "hw")
    server.floe("cluster", "delete", "hw", "--wait")
    for net in ("hw-fast", "hw-data", "hw-late"):
        server.floe("network", "delete", net)
    assert not any(objects_of(server.home, tag).values()), objects_of(server.home, tag)
    assert not [ln for ln in host_objects(server.home)["links"] if ln.startswith("flp-")]

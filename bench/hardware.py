"""Nodegroups and networks on running clusters: floe against the bare work, in the same run.

1. Adding a nodegroup of 4 nodes to a running 1+1 cluster (POST …/nodegroups → the group
   CREATE_COMPLETE: 4 nodes started with their flavor, joined and labelled), against the bare
   work of 4 namespaces with a dockerd each (create_cluster.bare_cluster's recipe: nodes up) and
   of a whole bare 4-node swarm (nodes up, init, joins, Ready).
2. Attaching a second network to a running 8-node cluster (POST /v1/floe/clusters/{c}/networks →
   UPDATE_COMPLETE: a bridge and an interface in every node, live), against the bare work of one
   bridge and a veth per node into 8 namespaces, with `ip`.

    sudo .venv/bin/python bench/hardware.py [--repeat 3]

Medians of --repeat runs. Addresses: floe 10.192.0.0/12, bare 10.191.0.0/16.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).parent))
from create_cluster import Server, bare_cluster  # noqa: E402 - a sibling script

MAGNUM_1_14 = {"OpenStack-API-Version": "container-infra 1.14"}


def _sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def bare_nodes(n: int) -> tuple[float, float]:
    """(nodes up, whole swarm Ready) for a bare swarm of n namespaced dockerds."""
    root = Path(tempfile.mkdtemp(prefix="floe-bare-"))
    phases: dict = {}
    total = bare_cluster(n, root, k=7, first=0, phases=phases)
    return phases["nodes"], total


def bare_veths(n: int) -> float:
    """A bridge and one veth per namespace, addressed and up, into n existing namespaces."""
    names = [f"blhw-{i}" for i in range(n)]
    for ns in names:
        _sh("ip", "netns", "add", ns)
    try:
        t0 = time.monotonic()
        _sh("ip", "link", "add", "blhwbr", "type", "bridge")
        _sh("ip", "link", "set", "blhwbr", "up")
        for i, ns in enumerate(names):
            _sh("ip", "link", "add", f"blhwv{i}", "type", "veth", "peer", "name", f"blhwp{i}")
            _sh("ip", "link", "set", f"blhwv{i}", "master", "blhwbr", "up")
            _sh("ip", "link", "set", f"blhwp{i}", "netns", ns)
            _sh("ip", "-n", ns, "link", "set", f"blhwp{i}", "name", "eth1")
            _sh("ip", "-n", ns, "addr", "add", f"10.191.250.{i + 2}/24", "dev", "eth1")
            _sh("ip", "-n", ns, "link", "set", "eth1", "up")
        return time.monotonic() - t0
    finally:
        for i, ns in enumerate(names):
            subprocess.run(["ip", "link", "del", f"blhwv{i}"], capture_output=True)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", "blhwbr"], capture_output=True)


def wait_group(server: Server, cluster: str, group: str, timeout: float = 600) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = server.http.get(f"/v1/clusters/{cluster}/nodegroups/{group}", headers=MAGNUM_1_14)
        body = r.json()
        if body.get("status", "").endswith("_COMPLETE"):
            return body
        if body.get("status", "").endswith("_FAILED"):
            raise RuntimeError(f"nodegroup {group}: {body}")
        time.sleep(0.05)
    raise RuntimeError(f"nodegroup {group} not complete after {timeout}s")


def floe_nodegroup(server: Server, cluster: str, name: str) -> float:
    t0 = time.monotonic()
    r = server.http.post(f"/v1/clusters/{cluster}/nodegroups", headers=MAGNUM_1_14,
                         json={"name": name, "node_count": 4, "flavor_id": "m1.tiny"})
    r.raise_for_status()
    wait_group(server, cluster, name)
    took = time.monotonic() - t0
    r = server.http.delete(f"/v1/clusters/{cluster}/nodegroups/{name}", headers=MAGNUM_1_14)
    r.raise_for_status()
    server.wait(cluster, "UPDATE_COMPLETE")
    return took


def floe_attach(server: Server, cluster: str, network: str) -> float:
    server.http.post("/v1/floe/networks", json={"name": network}).raise_for_status()
    t0 = time.monotonic()
    server.http.post(f"/v1/floe/clusters/{cluster}/networks", json={"network": network}).raise_for_status()
    time.sleep(0.05)
    server.wait(cluster, "UPDATE_COMPLETE")
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="floe-bench-hw-"))
    server = Server(home)
    rows: dict[str, list[float]] = {k: [] for k in ("bare_nodes4", "bare_swarm4", "floe_group4",
                                                     "bare_veth8", "floe_attach8")}
    try:
        t = server.http.post("/v1/clustertemplates", json={"name": "hw", "coe": "swarm"}).json()
        for name, workers in (("ng", 1), ("net", 7)):
            server.http.post("/v1/clusters", json={"name": name, "cluster_template_id": t["uuid"],
                                                    "node_count": workers}).raise_for_status()
            server.wait(name, "CREATE_COMPLETE")
        for i in range(args.repeat):
            nodes, swarm = bare_nodes(4)
            rows["bare_nodes4"].append(nodes)
            rows["bare_swarm4"].append(swarm)
            rows["floe_group4"].append(floe_nodegroup(server, "ng", f"g{i}"))
            rows["bare_veth8"].append(bare_veths(8))
            rows["floe_attach8"].append(floe_attach(server, "net", f"n{i}"))
            print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in rows.items()), flush=True)
    finally:
        for name in ("ng", "net"):
            server.http.delete(f"/v1/clusters/{name}")
        for name in ("ng", "net"):
            try:
                server.wait(name, "gone")
            except Exception as exc:  # noqa: BLE001 - report and go on tearing down
                print(f"delete {name}: {exc}")
        server.close()
        shutil.rmtree(home, ignore_errors=True)
    print("\nmedian of", args.repeat)
    print(f"add a nodegroup of 4 (m1.tiny):  floe {median(rows['floe_group4']):.2f}s   "
          f"bare 4 dockerds up {median(rows['bare_nodes4']):.2f}s   "
          f"bare 4-node swarm {median(rows['bare_swarm4']):.2f}s")
    print(f"attach a network to 8 nodes:     floe {median(rows['floe_attach8']):.2f}s   "
          f"bare bridge + 8 veths {median(rows['bare_veth8']):.2f}s")


if __name__ == "__main__":
    main()

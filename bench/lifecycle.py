"""Cluster lifecycle beyond create: scale up by one, scale 32 → 2, delete 32, ten 3-node clusters
at once, and a 64-node create — on a real `floe server` with the local provider.

    sudo .venv/bin/python bench/lifecycle.py [--big 32] [--huge 64] [--parallel 10] [--rounds 1]

Each round of the parallel creates is compared with as many bare 3-node swarms formed at once in
the same round, and both with the CPU they used: the whole host's, and (with cgroup v1's cpuacct)
floe's server, floe's nodes, and the bare script with its daemons, counted exactly.

Addresses come from 10.192.0.0/12.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import median

from create_cluster import ParallelRun, Server, bare_parallel, host_cpu, node_cpu  # noqa: E402  (run from bench/ or with bench/ on sys.path)


def create(server: Server, template: str, name: str, workers: int) -> tuple[str, float]:
    t0 = time.monotonic()
    r = server.http.post("/v1/clusters", json={"name": name, "cluster_template_id": template,
                                                "master_count": 1, "node_count": workers})
    r.raise_for_status()
    uuid = r.json()["uuid"]
    server.wait(uuid, "CREATE_COMPLETE")
    return uuid, time.monotonic() - t0


def resize(server: Server, uuid: str, workers: int) -> float:
    t0 = time.monotonic()
    server.http.post(f"/v1/clusters/{uuid}/actions/resize", json={"node_count": workers}).raise_for_status()
    server.wait(uuid, "UPDATE_COMPLETE")
    return time.monotonic() - t0


def delete(server: Server, uuid: str) -> float:
    t0 = time.monotonic()
    server.http.delete(f"/v1/clusters/{uuid}").raise_for_status()
    server.wait(uuid, "gone")
    return time.monotonic() - t0


def create_at_once(server: Server, template: str, count: int, round_: int) -> tuple[ParallelRun, float | None]:
    """Create `count` 3-node clusters at once, wait for all, delete them. Return the seconds until
    the last was CREATE_COMPLETE with the CPU seconds meanwhile of the host and of floe (its
    server and the nodes' daemons), and, apart, of floe's server alone."""
    cpu0 = host_cpu()
    server0 = server.cpu.seconds() if server.cpu else 0.0
    t0 = time.monotonic()
    # One POST each from parallel clients, then one poller for all (Server.wait_all says why).
    with ThreadPoolExecutor(max_workers=count) as pool:
        posted = list(pool.map(lambda i: post(server, template, f"p{round_}-{i}", 2), range(count)))
    server.wait_all(posted, "CREATE_COMPLETE")
    together = time.monotonic() - t0
    cpu = host_cpu() - cpu0
    own = server_cpu = None
    if server.cpu is not None:
        server_cpu = server.cpu.seconds() - server0
        own = server_cpu + node_cpu(server.home)  # before the delete takes the nodes' cgroups away
    for u in posted:
        server.http.delete(f"/v1/clusters/{u}").raise_for_status()
    server.wait_all(posted, "gone")
    return ParallelRun(together, cpu, own), server_cpu


def cpu_split(run: ParallelRun, who: str, server_cpu: float | None = None) -> str:
    """host busy CPU (of what two CPUs give in that time), and the part of the processes doing the work."""
    out = f"host {run.host_cpu:.1f} of {2 * run.seconds:.1f}"
    if run.own_cpu is not None:
        out += f"; {who} {run.own_cpu:.1f}"
    if server_cpu is not None:
        out += f" (its server {server_cpu:.1f}, the nodes' daemons {run.own_cpu - server_cpu:.1f})"
    return out


def post(server: Server, template: str, name: str, workers: int) -> str:
    r = server.http.post("/v1/clusters", json={"name": name, "cluster_template_id": template,
                                                "master_count": 1, "node_count": workers})
    r.raise_for_status()
    return r.json()["uuid"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--big", type=int, default=32)
    ap.add_argument("--huge", type=int, default=64)
    ap.add_argument("--parallel", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=1,
                    help="rounds of the parallel creates, each against its own bare bound")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="floe-bench-"))
    server = Server(home)
    results: list[tuple[str, str]] = []
    try:
        t = server.http.post("/v1/clustertemplates", json={"name": "bench", "coe": "swarm"})
        t.raise_for_status()
        template = t.json()["uuid"]
        uuid, _ = create(server, template, "warm", 1)  # the registry's one-time busybox build
        delete(server, uuid)

        uuid, _ = create(server, template, "small", 1)
        results.append(("scale up by one worker (2 → 3 nodes)", f"{resize(server, uuid, 2):.2f}"))
        delete(server, uuid)

        if args.big:  # --big 0 skips the big cluster
            uuid, took = create(server, template, "big", args.big - 1)
            results.append((f"create {args.big} nodes", f"{took:.2f}"))
            results.append((f"scale {args.big} → 2 nodes", f"{resize(server, uuid, 1):.2f}"))
            results.append(("delete the 2 remaining nodes", f"{delete(server, uuid):.2f}"))
            uuid, _ = create(server, template, "big2", args.big - 1)
            results.append((f"delete {args.big} nodes", f"{delete(server, uuid):.2f}"))

        if args.parallel:  # --parallel 0 skips the parallel creates
            ratios = []
            for r in range(args.rounds):
                tag = f", round {r + 1}" if args.rounds > 1 else ""
                floe, server_cpu = create_at_once(server, template, args.parallel, r)
                # The same physical work with no floe: as many bare 3-node swarms formed at once.
                bare = bare_parallel(args.parallel, 3)
                ratios.append(floe.seconds / bare.seconds)
                results.append((f"{args.parallel} × 3-node clusters at once, all CREATE_COMPLETE{tag}",
                                f"{floe.seconds:.2f}"))
                results.append(("  CPU seconds meanwhile", cpu_split(floe, "floe", server_cpu)))
                results.append((f"  bare lower bound: {args.parallel} × 3-node swarms at once", f"{bare.seconds:.2f}"))
                results.append(("  CPU seconds meanwhile", cpu_split(bare, "the bare script and its daemons")))
                results.append(("  ratio floe / bare", f"{floe.seconds / bare.seconds:.2f}"))
            if args.rounds > 1:
                results.append((f"median ratio floe / bare over {args.rounds} rounds", f"{median(ratios):.2f}"))

        if args.huge:
            uuid, took = create(server, template, "huge", args.huge - 1)
            results.append((f"create {args.huge} nodes", f"{took:.2f}"))
            results.append((f"delete {args.huge} nodes", f"{delete(server, uuid):.2f}"))
    finally:
        server.close()
        shutil.rmtree(home, ignore_errors=True)
        for what, value in results:
            print(f"| {what} | {value} |", flush=True)


if __name__ == "__main__":
    main()

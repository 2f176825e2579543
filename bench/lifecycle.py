"""Cluster lifecycle beyond create: scale up by one, scale 32 → 2, delete 32, ten 3-node clusters
at once, and a 64-node create — on a real `floe server` with the local provider.

    sudo .venv/bin/python bench/lifecycle.py [--big 32] [--huge 64] [--parallel 10]

Addresses come from 10.192.0.0/12.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from create_cluster import Server, bare_parallel  # noqa: E402  (run from bench/ or with bench/ on sys.path)


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--big", type=int, default=32)
    ap.add_argument("--huge", type=int, default=64)
    ap.add_argument("--parallel", type=int, default=10)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="floe-bench-"))
    server = Server(home)
    results: list[tuple[str, float]] = []
    try:
        t = server.http.post("/v1/clustertemplates", json={"name": "bench", "coe": "swarm"})
        t.raise_for_status()
        template = t.json()["uuid"]
        uuid, _ = create(server, template, "warm", 1)  # the registry's one-time busybox build
        delete(server, uuid)

        uuid, _ = create(server, template, "small", 1)
        results.append(("scale up by one worker (2 → 3 nodes)", resize(server, uuid, 2)))
        delete(server, uuid)

        if args.big:  # --big 0 skips the big cluster
            uuid, took = create(server, template, "big", args.big - 1)
            results.append((f"create {args.big} nodes", took))
            results.append((f"scale {args.big} → 2 nodes", resize(server, uuid, 1)))
            results.append(("delete the 2 remaining nodes", delete(server, uuid)))
            uuid, _ = create(server, template, "big2", args.big - 1)
            results.append((f"delete {args.big} nodes", delete(server, uuid)))

        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            made = list(pool.map(lambda i: create(server, template, f"p{i}", 2), range(args.parallel)))
        together = time.monotonic() - t0
        results.append((f"{args.parallel} × 3-node clusters at once (all CREATE_COMPLETE)", together))
        results.append((f"  slowest of the {args.parallel}", max(t for _, t in made)))
        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            list(pool.map(lambda m: delete(server, m[0]), made))
        # The same physical work with no floe: as many bare 3-node swarms formed at once.
        bare = bare_parallel(args.parallel, 3)
        results.append((f"  bare lower bound: {args.parallel} × 3-node swarms at once", bare))
        results.append(("  ratio floe / bare", together / bare))

        if args.huge:
            uuid, took = create(server, template, "huge", args.huge - 1)
            results.append((f"create {args.huge} nodes", took))
            results.append((f"delete {args.huge} nodes", delete(server, uuid)))
    finally:
        server.close()
        shutil.rmtree(home, ignore_errors=True)
        for what, secs in results:
            print(f"| {what} | {secs:.2f} |", flush=True)


if __name__ == "__main__":
    main()

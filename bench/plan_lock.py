"""How long the largest cluster floe accepts holds the write lock while it is planned.

Starts a real `floe server` on the simulated provider with the default range (10.160.0.0/12,
which holds at most `ipam.max_cluster_nodes` nodes in one cluster), creates a cluster of that
size, and meanwhile has a second writer create and delete templates in a loop: every write must
succeed, and the slowest shows the longest time the plan (which commits every PLAN_BATCH node
rows) kept other writers waiting.

    .venv/bin/python bench/plan_lock.py [--database-url URL]
"""

from __future__ import annotations

import argparse
import ipaddress
import threading
import time

from simserver import SimServer

from floe import ipam


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database-url", default="")
    ap.add_argument("--range", default="10.160.0.0/12")
    args = ap.parse_args()
    most = ipam.max_cluster_nodes(ipaddress.IPv4Network(args.range))
    server = SimServer(args.database_url, FLOE_ADDRESS_RANGE=args.range)
    try:
        template = server.template()
        latencies: list[float] = []
        failures: list[str] = []
        stop = threading.Event()

        def writer() -> None:
            i = 0
            while not stop.is_set():
                t0 = time.monotonic()
                r = server.http.post("/v1/clustertemplates", json={"name": f"w{i}", "coe": "swarm"})
                if r.status_code != 201:
                    failures.append(r.text[:200])
                else:
                    server.http.delete(f"/v1/clustertemplates/{r.json()['uuid']}")
                latencies.append(time.monotonic() - t0)
                i += 1

        t = threading.Thread(target=writer)
        t.start()
        t0 = time.monotonic()
        r = server.http.post("/v1/clusters", json={"name": "max", "cluster_template_id": template,
                                                   "node_count": most - 1})
        r.raise_for_status()
        planned = None
        while True:
            c = server.http.get("/v1/clusters/max").json()
            if planned is None and not (c.get("status_reason") or "").startswith(("step plan", "create queued")):
                planned = time.monotonic() - t0
            if not c["status"].endswith("IN_PROGRESS"):
                break
            time.sleep(0.05)
        total = time.monotonic() - t0
        stop.set()
        t.join()
        latencies.sort()
        print(f"range {args.range}: largest cluster {most} nodes -> {c['status']}")
        print(f"plan step done after {planned:.2f} s, CREATE_COMPLETE after {total:.2f} s")
        print(f"other writer: {len(latencies)} template create+delete pairs, {len(failures)} failed; "
              f"median {latencies[len(latencies) // 2] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms")
        if failures:
            print("first failure:", failures[0])
        print(f"refused at once: node_count {most} ->",
              server.http.post("/v1/clusters", json={"name": "over", "cluster_template_id": template,
                                                     "node_count": most}).status_code)
    finally:
        server.stop()


if __name__ == "__main__":
    main()

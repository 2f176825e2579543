"""How long a scrape of every node target of a real cluster takes through floe (what Prometheus does).

Starts a `floe server` (local provider, as root) with its own home, port and address range,
creates a Swarm cluster of --nodes nodes (one manager, m1.tiny workers), runs a busybox
container on each worker, then scrapes every target the service discovery lists for it
(`node` and `dockerd` per node) --rounds times, one after the other as one Prometheus would
not (it scrapes in parallel: this is the worst case), and in parallel. Prints the median round.
Deletes the cluster and stops the server at the end.

    sudo .venv/bin/python bench/node_targets.py [--nodes 16] [--rounds 5] [--home /tmp/bench-home]
        [--port 18201] [--range 10.186.0.0/16]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from floe.monitoring.access import scrape_token

FLOE = str(Path(sys.executable).parent / "floe")


def provider_only(home: Path, address_range: str, nodes: list[str], rounds: int) -> None:
    """The readings alone, in this process: what the node targets cost beyond HTTP and the exposition."""
    import ipaddress
    import sqlite3

    from floe.providers.local import LocalProvider

    db = sqlite3.connect(home / "floe.db")
    tag = db.execute("SELECT host_tag FROM clusters WHERE name = 'bench-mon'").fetchone()[0]
    db.close()
    infra = next(ipaddress.ip_network(address_range).subnets(new_prefix=24))
    provider = LocalProvider(home, str(infra))
    for what, call in (("node_stats", provider.node_stats), ("daemon_metrics", provider.daemon_metrics)):
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            for n in nodes:
                call(tag, n)
            times.append(time.perf_counter() - t)
        print(f"provider.{what} of all {len(nodes)} nodes, one after the other: "
              f"{statistics.median(times) * 1000:.1f} ms (median of {rounds})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--home", default="/tmp/bench-node-targets")
    ap.add_argument("--port", type=int, default=18201)
    ap.add_argument("--range", default="10.186.0.0/16")
    args = ap.parse_args()
    home = Path(args.home)
    url = f"http://127.0.0.1:{args.port}"
    env = {**os.environ, "FLOE_HOME": str(home), "FLOE_PORT": str(args.port), "FLOE_URL": url,
           "FLOE_ADDRESS_RANGE": args.range}
    env.pop("FLOE_TOKEN", None)
    home.mkdir(parents=True, exist_ok=True)
    log = open(home / "server.log", "ab")  # noqa: SIM115 - lives as long as the server
    server = subprocess.Popen([FLOE, "server"], env=env, stdout=log, stderr=subprocess.STDOUT)

    def floe(*a: str) -> str:
        return subprocess.run([FLOE, *a], env=env, check=True, capture_output=True, text=True, timeout=900).stdout

    try:
        end = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > end or server.poll() is not None:
                raise SystemExit("floe server did not start; see " + str(home / "server.log"))
            time.sleep(0.2)
        floe("template", "create", "bench-mon", "--coe", "swarm", "--flavor", "m1.tiny")
        started = time.monotonic()
        floe("cluster", "create", "bench-mon", "--template", "bench-mon", "--node-count", str(args.nodes - 1),
             "--wait")
        print(f"cluster of {args.nodes} nodes created in {time.monotonic() - started:.1f} s")
        scraper = httpx.Client(base_url=url, timeout=30,
                               headers={"Authorization": f"Bearer {scrape_token(home)}"})
        groups = [g for g in scraper.get("/monitoring/sd").json() if g["labels"]["cluster"] == "bench-mon"]
        paths = [g["labels"]["__metrics_path__"] for g in groups]
        print(f"{len(paths)} targets")

        def get(path: str) -> float:
            t = time.perf_counter()
            resp = scraper.get(path)
            resp.raise_for_status()
            return time.perf_counter() - t

        for mode in ("sequential", "parallel"):
            rounds, per_target = [], []
            for _ in range(args.rounds):
                t = time.perf_counter()
                if mode == "sequential":
                    per_target += [get(p) for p in paths]
                else:
                    with ThreadPoolExecutor(max_workers=16) as pool:
                        per_target += list(pool.map(get, paths))
                rounds.append(time.perf_counter() - t)
            by_source = {}
            for p in paths:
                by_source.setdefault(p.rsplit("/", 1)[1], []).append(p)
            print(f"{mode}: every target of the cluster in {statistics.median(rounds) * 1000:.0f} ms (median of "
                  f"{args.rounds}); one target median {statistics.median(per_target) * 1000:.1f} ms, "
                  f"max {max(per_target) * 1000:.1f} ms")
        for source, ps in sorted(by_source.items()):
            times = [get(p) for p in ps]
            print(f"  {source}: {len(ps)} targets, median {statistics.median(times) * 1000:.1f} ms")
        t = time.perf_counter()
        scraper.get("/monitoring/sd").raise_for_status()
        print(f"service discovery: {(time.perf_counter() - t) * 1000:.1f} ms")
        provider_only(home, args.range, [g["labels"]["node"] for g in groups if g["labels"]["source"] == "node"],
                      args.rounds)
    finally:
        try:
            floe("cluster", "delete", "bench-mon", "--wait")
        finally:
            server.terminate()
            server.wait(timeout=30)
            subprocess.run([FLOE, "cleanup", "--all"], env=env, capture_output=True, timeout=300)
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()

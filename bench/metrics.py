"""floe's own /metrics (issue 15): how fast a scrape is, and what the instrumentation costs.

Two measurements on a real `floe server` (FLOE_PROVIDER=simulated), driven over HTTP:

- scrape: --clusters clusters of --nodes nodes are created through the API and run by the
  engine to CREATE_COMPLETE, then `GET /metrics` (the scrape token, as Prometheus sends it) is
  timed --scrapes times: median and p90 wall time, body size and series.
- overhead: control_plane.py's series (--overhead-clusters clusters of 10 nodes, created then
  deleted) on fresh servers with FLOE_METRICS=1 and FLOE_METRICS=0 (every instrument off),
  alternated --rounds times; the server's CPU per node of each, and the median's difference.
  The instrumented runs are also scraped every --scrape-every seconds, as Prometheus would.

    .venv/bin/python bench/metrics.py [--clusters 1000] [--nodes 3] [--scrapes 50]
        [--overhead-clusters 100] [--rounds 3] [--scrape-every 5] [--skip-scrape | --skip-overhead]
        [--database-url postgresql+psycopg://…/postgres]   # the scrape on a fresh PostgreSQL database
    scripts/test-postgres.sh sh -c \
        '.venv/bin/python bench/metrics.py --skip-overhead --database-url "$FLOE_TEST_POSTGRES_URL"'
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from control_plane import _wait_all, many_clusters  # noqa: E402
from simserver import ScratchPostgres, SimServer  # noqa: E402

from floe.monitoring.access import scrape_token  # noqa: E402


def _scrape(server: SimServer, token: str) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    r = server.http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    elapsed = time.perf_counter() - t0
    r.raise_for_status()
    return elapsed, r.content


def scrape_bench(clusters: int, nodes: int, scrapes: int, database_server: str = "") -> None:
    pg = ScratchPostgres(database_server) if database_server else None
    server = SimServer(pg.url if pg else "")
    try:
        template = server.template()
        t0 = time.monotonic()

        def create(i: int) -> str:
            r = server.http.post("/v1/clusters", json={"name": f"s{i}", "cluster_template_id": template,
                                                         "master_count": 1, "node_count": nodes - 1})
            return r.raise_for_status().json()["uuid"]

        with ThreadPoolExecutor(max_workers=8) as pool:
            uuids = set(pool.map(create, range(clusters)))
        _wait_all(server, uuids, "CREATE_COMPLETE", timeout=3600, poll=1.0)
        print(f"{clusters} clusters × {nodes} nodes CREATE_COMPLETE in {time.monotonic() - t0:.1f} s", flush=True)
        token = scrape_token(server.home)
        _scrape(server, token)  # the first one opens what later ones reuse (connections, the token file)
        times, body = [], b""
        for _ in range(scrapes):
            elapsed, body = _scrape(server, token)
            times.append(elapsed)
        series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        p90 = statistics.quantiles(times, n=10)[-1]
        print(f"GET /metrics × {scrapes}: median {1000 * statistics.median(times):.1f} ms, "
              f"p90 {1000 * p90:.1f} ms, min {1000 * min(times):.1f} ms, max {1000 * max(times):.1f} ms; "
              f"{len(body) / 1024:.0f} KiB, {series} series", flush=True)
    finally:
        server.stop()
        if pg:
            pg.drop()


def _scraper(server: SimServer, every: float, stop: threading.Event) -> None:
    token = scrape_token(server.home)
    while not stop.wait(every):
        try:
            _scrape(server, token)
        except Exception as exc:  # noqa: BLE001 - a bench tells, it does not stop
            print(f"scrape failed: {exc}", flush=True)


def overhead_bench(count: int, rounds: int, scrape_every: float) -> None:
    results: dict[str, list[float]] = {"1": [], "0": []}
    for i in range(rounds):
        for setting in ("1", "0") if i % 2 == 0 else ("0", "1"):  # alternated: drift hits both alike
            server = SimServer(FLOE_METRICS=setting)
            stop = threading.Event()
            try:
                template = server.template()
                if setting == "1" and scrape_every > 0:
                    threading.Thread(target=_scraper, args=(server, scrape_every, stop), daemon=True).start()
                row = many_clusters(server, template, count)
            finally:
                stop.set()
                server.stop()
            cpu_ms = 1000 * row.create_cpu_s / row.nodes
            results[setting].append(cpu_ms)
            print(f"round {i + 1} FLOE_METRICS={setting}: {row.line()}  ({cpu_ms:.2f} ms CPU per node)", flush=True)
    on, off = statistics.median(results["1"]), statistics.median(results["0"])
    print(f"CPU per node, median of {rounds}: metrics on {on:.2f} ms, off {off:.2f} ms, "
          f"overhead {100 * (on - off) / off:+.1f} %", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--nodes", type=int, default=3, help="nodes per cluster (one manager)")
    ap.add_argument("--scrapes", type=int, default=50)
    ap.add_argument("--overhead-clusters", type=int, default=100, help="clusters of 10 nodes per overhead run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scrape-every", type=float, default=5.0, help="seconds between scrapes (0: none)")
    ap.add_argument("--skip-scrape", action="store_true")
    ap.add_argument("--database-url", default="", help="a PostgreSQL server URL for the scrape (default: SQLite)")
    ap.add_argument("--skip-overhead", action="store_true")
    args = ap.parse_args()
    if not args.skip_scrape:
        print(f"database: {'PostgreSQL' if args.database_url else 'SQLite'}", flush=True)
        scrape_bench(args.clusters, args.nodes, args.scrapes, args.database_url)
    if not args.skip_overhead:
        overhead_bench(args.overhead_clusters, args.rounds, args.scrape_every)


if __name__ == "__main__":
    main()

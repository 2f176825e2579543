"""Control-plane scale: the engine's own time per node as clusters and nodes grow (simulated provider).

A real `floe server` (FLOE_PROVIDER=simulated: nodes boot at once and run nothing, the COE
steps take no time) is driven over HTTP, so everything measured is floe's own work: the API,
the engine's steps, the database. Two series, each on a fresh server:

- one cluster of N nodes (POST → CREATE_COMPLETE, then DELETE → gone), N = --sizes;
- M clusters of 10 nodes created at once (all POSTed, then until every one is CREATE_COMPLETE,
  then all deleted), M = --clusters.

For each: wall time, the server's CPU time (from /proc), and both per node. Flat per-node
numbers as N and M grow mean the engine is linear, not O(N^2).

    .venv/bin/python bench/control_plane.py [--sizes 100,500,1000,5000] [--clusters 10,100,1000]
        [--database-url postgresql+psycopg://…/postgres]   # a fresh database is made on that server
    scripts/test-postgres.sh sh -c '.venv/bin/python bench/control_plane.py --database-url "$FLOE_TEST_POSTGRES_URL"'
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from simserver import ScratchPostgres, SimServer  # noqa: E402


@dataclass
class Row:
    what: str
    nodes: int
    create_s: float
    create_cpu_s: float
    delete_s: float

    def line(self) -> str:
        per_node_ms = 1000 * self.create_s / self.nodes
        cpu_ms = 1000 * self.create_cpu_s / self.nodes
        return (f"| {self.what} | {self.nodes} | {self.create_s:.2f} | {per_node_ms:.2f} | "
                f"{self.create_cpu_s:.2f} | {cpu_ms:.2f} | {self.delete_s:.2f} |")


HEADER = ["| clusters × nodes | nodes | create wall (s) | wall per node (ms) | server CPU (s) | "
          "CPU per node (ms) | delete wall (s) |", "|---|---:|---:|---:|---:|---:|---:|"]


def _statuses(server: SimServer) -> dict[str, str]:
    """uuid → status of every cluster, page by page as Magnum's clients list them."""
    out: dict[str, str] = {}
    url = "/v1/clusters?limit=1000"
    while url:
        body = server.http.get(url).raise_for_status().json()
        out.update({c["uuid"]: c["status"] for c in body["clusters"]})
        nxt = body.get("next")
        url = nxt[nxt.index("/v1/"):] if nxt else ""
    return out


def _wait_all(server: SimServer, uuids: set[str], want: str, timeout: float, poll: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        st = _statuses(server)
        if want == "gone":
            if not uuids & set(st):
                return
        else:
            failed = {u: s for u, s in st.items() if u in uuids and s.endswith("FAILED")}
            if failed:
                raise RuntimeError(f"{len(failed)} cluster(s) failed, e.g. {next(iter(failed.items()))}")
            if all(st.get(u) == want for u in uuids):
                return
        time.sleep(poll)
    raise TimeoutError(f"clusters did not reach {want} in {timeout} s")


def one_cluster(server: SimServer, template: str, nodes: int) -> Row:
    cpu0, t0 = server.cpu_seconds(), time.monotonic()
    r = server.http.post("/v1/clusters", json={"name": f"big{nodes}", "cluster_template_id": template,
                                                 "master_count": 1, "node_count": nodes - 1})
    uuid = r.raise_for_status().json()["uuid"]
    while True:
        c = server.http.get(f"/v1/clusters/{uuid}").raise_for_status().json()
        if c["status"] == "CREATE_COMPLETE":
            break
        if c["status"].endswith("FAILED"):
            raise RuntimeError(f"{c['status']}: {c['status_reason']}")
        time.sleep(0.05)
    created, cpu = time.monotonic() - t0, server.cpu_seconds() - cpu0
    t1 = time.monotonic()
    server.http.delete(f"/v1/clusters/{uuid}").raise_for_status()
    while server.http.get(f"/v1/clusters/{uuid}").status_code != 404:
        time.sleep(0.05)
    return Row(f"1 × {nodes}", nodes, created, cpu, time.monotonic() - t1)


def many_clusters(server: SimServer, template: str, count: int, nodes: int = 10) -> Row:
    poll = 0.2 if count <= 100 else 1.0
    cpu0, t0 = server.cpu_seconds(), time.monotonic()

    def create(i: int) -> str:
        r = server.http.post("/v1/clusters", json={"name": f"m{count}-{i}", "cluster_template_id": template,
                                                     "master_count": 1, "node_count": nodes - 1})
        return r.raise_for_status().json()["uuid"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        uuids = set(pool.map(create, range(count)))
    _wait_all(server, uuids, "CREATE_COMPLETE", timeout=3600, poll=poll)
    created, cpu = time.monotonic() - t0, server.cpu_seconds() - cpu0
    t1 = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda u: server.http.delete(f"/v1/clusters/{u}").raise_for_status(), uuids))
    _wait_all(server, uuids, "gone", timeout=3600, poll=poll)
    return Row(f"{count} × {nodes}", count * nodes, created, cpu, time.monotonic() - t1)


def run(database_server: str, sizes: list[int], clusters: list[int]) -> list[Row]:
    rows: list[Row] = []
    for series, items in (("one", sizes), ("many", clusters)):
        if not items:
            continue
        pg = ScratchPostgres(database_server) if database_server else None
        server = SimServer(pg.url if pg else "")
        try:
            template = server.template()
            for n in items:
                row = one_cluster(server, template, n) if series == "one" else many_clusters(server, template, n)
                print(row.line(), flush=True)
                rows.append(row)
        finally:
            server.stop()
            if pg:
                pg.drop()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,500,1000,5000", help="nodes of the single-cluster series")
    ap.add_argument("--clusters", default="10,100,1000", help="cluster counts of the 10-node series")
    ap.add_argument("--database-url", default="", help="a PostgreSQL server URL (default: SQLite)")
    args = ap.parse_args()
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    print(f"database: {'PostgreSQL' if args.database_url else 'SQLite'}", flush=True)
    print("\n".join(HEADER), flush=True)
    run(args.database_url, ints(args.sizes), ints(args.clusters))


if __name__ == "__main__":
    main()

"""How soon `--wait` knows an operation ended: the event stream against 0.5 s polling.

A real `floe server` on the simulated provider (FLOE_SIM_BOOT_DELAY gives each resize some
length); a cluster is resized back and forth --rounds times, each time waited for by the CLI's
`wait_for_cluster`, once listening to the event stream and once polling. The latency is the
time from the operation's `finished_at` (written by the server in the commit that ends it) to
the wait's return, both on this host's clock. Also the server's CPU per round and the reads.

    .venv/bin/python bench/wait_latency.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

sys.path.insert(0, str(Path(__file__).parent))
from simserver import SimServer  # noqa: E402

from floe.cli.wait import wait_for_cluster  # noqa: E402
from floe.client import FloeClient  # noqa: E402


class CountingClient(FloeClient):
    reads = 0

    def get_cluster(self, ident):  # type: ignore[override]
        CountingClient.reads += 1
        return super().get_cluster(ident)


def finished_at(server: SimServer, cluster_uuid: str) -> float:
    from sqlalchemy import select

    from floe.db.models import Cluster, Operation
    from floe.db.session import Database

    db = Database(f"sqlite:///{server.home / 'floe.db'}")
    try:
        with db.session() as s:
            when = s.scalar(select(Operation.finished_at).join(Cluster, Cluster.id == Operation.cluster_id)
                            .where(Cluster.uuid == cluster_uuid).order_by(Operation.id.desc()).limit(1))
        return when.replace(tzinfo=UTC).timestamp()
    finally:
        db.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    server = SimServer(FLOE_SIM_BOOT_DELAY="0.3")
    quiet = Console(file=open("/dev/null", "w"))  # noqa: SIM115
    try:
        server.template()
        client = CountingClient(server.url, server.token)
        r = server.http.post("/v1/clusters", json={"name": "w", "cluster_template_id": "sim", "node_count": 1})
        r.raise_for_status()
        uuid = r.json()["uuid"]
        wait_for_cluster(client, uuid, "CREATE", quiet)
        print("| wait | latency median (ms) | p90 (ms) | max (ms) | reads per wait | server CPU per round (ms) |")
        print("|---|---:|---:|---:|---:|---:|")
        for mode in ("events", "polling"):
            lat, reads = [], []
            cpu0 = server.cpu_seconds()
            for i in range(args.rounds):
                CountingClient.reads = 0
                client.resize(uuid, 2 if i % 2 == 0 else 1)
                wait_for_cluster(client, uuid, "UPDATE", quiet, events=mode == "events")
                done = datetime.now(UTC).timestamp()
                lat.append(1000 * (done - finished_at(server, uuid)))
                reads.append(CountingClient.reads)
            cpu = 1000 * (server.cpu_seconds() - cpu0) / args.rounds
            lat.sort()
            print(f"| {mode} | {statistics.median(lat):.0f} | {lat[int(0.9 * (len(lat) - 1))]:.0f} | {lat[-1]:.0f} "
                  f"| {statistics.mean(reads):.1f} | {cpu:.0f} |")
        client.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()

"""What floe's own ASGI stack costs per request, in-process: no network, no HTTP server, no wrk.

bench/api_load.py measures the API as clients see it, and its numbers move by ±10–30 % with
whatever else the machine does. This calls the app directly (the middleware, both gates, the
routers, the read cache) for the reads clients poll, so a change to the stack's structure
shows as microseconds, run after run:

    .venv/bin/python bench/api_stack.py [--clusters 300] [--requests 3000] [--rounds 7]
    PYTHONPATH=/path/to/other/tree/src .venv/bin/python bench/api_stack.py   # another revision

The clusters are rows only (their creation is queued, never run): what is measured is the
path of a read, and the first read of each path builds the answer the later ones reuse.
Prints the best round's mean per request for each path.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import tempfile
import time
from pathlib import Path

from floe.api.app import create_app
from floe.config import Settings
from floe.server import build_runtime
from floe.services import clusters, identity, templates


def setup(home: Path, count: int):
    settings = Settings(home=home, provider="simulated", address_range="10.0.0.0/8")
    runtime = build_runtime(settings, None, engine=False)
    identity.bootstrap_admin(runtime.db, settings.admin_token_file)
    token = settings.admin_token_file.read_text().strip()
    caller = identity.authenticate(runtime.db, token)
    ct = templates.create_template(runtime.db, caller, templates.TemplateSpec(name="t", coe="swarm"))
    uuids = [clusters.create_cluster(runtime, caller, clusters.ClusterSpec(
        name=f"c{i}", cluster_template_id=ct.uuid, master_count=1, node_count=2)).uuid for i in range(count)]
    return runtime, create_app(runtime), token, uuids


async def call(app, token: str, path: str, query: bytes = b"") -> None:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": query, "root_path": "",
             "headers": [(b"host", b"127.0.0.1:9511"), (b"x-auth-token", token.encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 9511)}
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    if sent[0]["status"] != 200:
        raise RuntimeError(f"GET {path}: {sent}")


async def measure(app, token: str, paths: list[tuple[str, str, bytes]], requests: int, rounds: int) -> None:
    for label, path, query in paths:
        await call(app, token, path, query)
        best = float("inf")
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(requests):
                await call(app, token, path, query)
            best = min(best, (time.perf_counter() - t0) / requests)
        print(f"| {label} | {best * 1e6:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clusters", type=int, default=300)
    ap.add_argument("--requests", type=int, default=3000, help="requests per round")
    ap.add_argument("--rounds", type=int, default=7, help="rounds per path; the best counts")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    home = Path(tempfile.mkdtemp(prefix="floe-api-stack-"))
    try:
        runtime, app, token, uuids = setup(home, args.clusters)
        print(f"{args.clusters} clusters; best of {args.rounds} rounds of {args.requests} requests")
        print("| read | µs per request |\n|---|---:|")
        asyncio.run(measure(app, token, [
            ("GET /v1/clusters", "/v1/clusters", b""),
            ("GET /v1/clusters/detail?limit=50&marker=…", "/v1/clusters/detail",
             f"limit=50&marker={uuids[len(uuids) // 2]}".encode()),
            ("GET /v1/clusters/{uuid}", f"/v1/clusters/{uuids[len(uuids) // 2]}", b""),
            ("GET /v1/clustertemplates (not kept: built each time)", "/v1/clustertemplates", b""),
            ("GET /v2/shares (Manila's gate; not kept)", "/v2/shares", b""),
        ], args.requests, args.rounds))
        runtime.db.dispose()
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()

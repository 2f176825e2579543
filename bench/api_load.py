"""API under load: floe's list and show endpoints with 1,000 clusters stored, against a minimal ASGI app.

A real `floe server` (simulated provider, so 1,000 clusters fit on one machine) is filled
with --clusters clusters of 3 nodes, all CREATE_COMPLETE. Then wrk loads, one after the
other and each for --seconds:

- GET /v1/clusters                      every cluster, summary fields (what `openstack coe cluster list` asks)
- GET /v1/clusters/detail?limit=50&marker=…   one page from the middle (how Magnum's clients page)
- GET /v1/clusters/{uuid}               one cluster

and the same three against a minimal ASGI app that returns the very same bytes (captured from
floe), run by uvicorn with the same settings as `floe server` (one process, access log on).
Requests/s and p99 latency for each; floe should reach at least half the minimal app.
floe is called with a Keystone token (`--auth keystone`, the default: the admin user signs in
with its password through POST /identity/v3/auth/tokens, as every OpenStack client does), or
with the admin API token (`--auth admin-token`).

    .venv/bin/python bench/api_load.py [--clusters 1000] [--seconds 10] [--connections 16] [--rounds 2]
        [--database-url postgresql+psycopg://…/postgres] [--auth keystone|admin-token]
Needs wrk (Debian package `wrk`; `make bench-scale` installs it). Only 127.0.0.1 is loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from simserver import ScratchPostgres, SimServer, free_port  # noqa: E402

MINIMAL_APP = '''
"""A minimal ASGI app: the bodies floe answered, by path, with nothing else in the way."""
import json, sys
import uvicorn

BODIES = {path: body.encode() for path, body in json.load(open(sys.argv[1])).items()}
HEADERS = [(b"content-type", b"application/json")]

async def app(scope, receive, send):
    path = scope["path"] + ("?" + scope["query_string"].decode() if scope["query_string"] else "")
    body = BODIES.get(path)
    status = 200 if body is not None else 404
    await send({"type": "http.response.start", "status": status,
                "headers": HEADERS + [(b"content-length", str(len(body or b"")).encode())]})
    await send({"type": "http.response.body", "body": body or b""})

# The settings floe's serve() gives uvicorn.
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="info")
'''


def wrk(url: str, token: str, seconds: int, connections: int) -> tuple[float, float, int]:
    """(requests/s, p99 latency in ms, non-2xx responses) of one bounded wrk run."""
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency", "--timeout", "10s",
         "-H", f"X-Auth-Token: {token}", url],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99_val, p99_unit = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", out).groups()
    p99 = float(p99_val) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99_unit]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, p99, int(bad.group(1)) if bad else 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fill(server: SimServer, count: int) -> list[str]:
    template = server.template()

    def create(i: int) -> str:
        r = server.http.post("/v1/clusters", json={"name": f"load-{i:04d}", "cluster_template_id": template,
                                                     "master_count": 1, "node_count": 2})
        return r.raise_for_status().json()["uuid"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        uuids = list(pool.map(create, range(count)))
    end = time.monotonic() + 1800
    while time.monotonic() < end:
        statuses = [c["status"] for c in server.http.get("/v1/clusters?limit=1000").json()["clusters"]]
        if statuses.count("CREATE_COMPLETE") == count:
            return uuids
        time.sleep(1)
    raise TimeoutError("clusters were not created in time")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds per endpoint; the best counts")
    ap.add_argument("--database-url", default="", help="a PostgreSQL server URL (default: SQLite)")
    ap.add_argument("--auth", choices=("keystone", "admin-token"), default="keystone",
                    help="the token floe is loaded with (default: a Keystone password token)")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk (or make bench-scale)")

    pg = ScratchPostgres(args.database_url) if args.database_url else None
    server = SimServer(pg.url if pg else "")
    work = Path(tempfile.mkdtemp(prefix="floe-api-load-"))
    minimal = None
    try:
        t0 = time.monotonic()
        uuids = fill(server, args.clusters)
        print(f"database: {'PostgreSQL' if pg else 'SQLite'}; {args.clusters} clusters stored in "
              f"{time.monotonic() - t0:.0f} s", flush=True)
        middle, some = uuids[len(uuids) // 2], uuids[len(uuids) // 3]
        paths = {  # what the table shows → what is requested
            "GET /v1/clusters": "/v1/clusters",
            "GET /v1/clusters/detail?limit=50&marker=…": f"/v1/clusters/detail?limit=50&marker={middle}",
            "GET /v1/clusters/{uuid}": f"/v1/clusters/{some}",
        }
        # The same bytes floe answers, for the minimal app (request ids aside, which are headers).
        bodies = {p: server.http.get(p).raise_for_status().text for p in paths.values()}
        (work / "bodies.json").write_text(json.dumps(bodies))
        (work / "minimal.py").write_text(textwrap.dedent(MINIMAL_APP))
        port = free_port()
        minimal = subprocess.Popen([sys.executable, str(work / "minimal.py"), str(work / "bodies.json"), str(port)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/v1/clusters", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        token = server.token
        if args.auth == "keystone":
            password = (server.home / "admin-password").read_text().strip()
            resp = httpx.post(f"{server.url}/identity/v3/auth/tokens", json={"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": "admin", "domain": {"name": "Default"}, "password": password}}},
                "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}, timeout=30)
            token = resp.raise_for_status().headers["X-Subject-Token"]
        print(f"auth: {'a Keystone token (password, admin project)' if args.auth == 'keystone' else 'the admin token'}")
        print(f"wrk: 1 thread, {args.connections} connections, {args.seconds} s per run (after a 2 s warm-up), "
              f"best of {args.rounds} alternating rounds")
        print("| endpoint | response bytes | floe req/s | floe p99 (ms) | floe CPU/req (µs) | minimal req/s | "
              "minimal p99 (ms) | minimal CPU/req (µs) | floe / minimal req/s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, path in paths.items():
            best: dict[str, tuple] = {}
            # Rounds alternate between the two apps; each app's best round counts (the machine is
            # shared, and a slow round measures the neighbours, not the app).
            for _round in range(args.rounds):
                for app, base, pid in (("floe", server.url, server.proc.pid),
                                       ("minimal", f"http://127.0.0.1:{port}", minimal.pid)):
                    wrk(base + path, token, 2, args.connections)  # warm-up
                    cpu0 = cpu_seconds(pid)
                    rps, p99, bad = wrk(base + path, token, args.seconds, args.connections)
                    # CPU per request: what the server spent, whatever else ran on the machine meanwhile.
                    result = (rps, p99, bad, 1e6 * (cpu_seconds(pid) - cpu0) / (rps * args.seconds))
                    if app not in best or rps > best[app][0]:
                        best[app] = result
            (f_rps, f_p99, f_bad, f_cpu), (m_rps, m_p99, m_bad, m_cpu) = best["floe"], best["minimal"]
            assert f_bad == 0 and m_bad == 0, f"non-2xx answers: floe {f_bad}, minimal {m_bad}"
            print(f"| {name} | {len(bodies[path])} | {f_rps:.0f} | {f_p99:.1f} | {f_cpu:.0f} | {m_rps:.0f} | "
                  f"{m_p99:.1f} | {m_cpu:.0f} | {f_rps / m_rps:.2f} |", flush=True)
    finally:
        if minimal is not None:
            minimal.terminate()
            minimal.wait(timeout=10)
        server.stop()
        if pg:
            pg.drop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()

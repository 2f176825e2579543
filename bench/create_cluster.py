"""Cluster creation time: floe (POST /v1/clusters → CREATE_COMPLETE) against the bare lower bound.

The lower bound does the same physical work with no floe in between: N namespaces with a
dockerd each started in parallel (the same recipe as the local provider, without TLS),
`swarm init` on the first, every other node joined at once, until all are Ready.

    sudo .venv/bin/python bench/create_cluster.py [--sizes 1,2,4,8,16,32] [--out docs/benchmarks.md]

Addresses come from 10.192.0.0/12 (floe) and 10.191.0.0/16 (lower bound).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

FLOE = str(Path(sys.executable).parent / "floe")
DOCKER = "/usr/bin/docker"
CGROUPS = "cpu cpuacct cpuset memory devices freezer blkio pids"


# --- the bare lower bound ---------------------------------------------------------------------
def _sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def bare_cluster(n: int, root: Path) -> float:
    """Start n namespaced dockerds in parallel and form a swarm; return seconds taken."""
    br = "blbr0"
    nodes = [(f"blns{i}", f"10.191.0.{i + 2}", root / f"n{i}") for i in range(n)]
    t0 = time.monotonic()
    _sh("ip", "link", "add", br, "type", "bridge")
    _sh("ip", "addr", "add", "10.191.0.1/24", "dev", br)
    _sh("ip", "link", "set", br, "up")
    procs: list[subprocess.Popen] = []
    lock = threading.Lock()

    def start(i: int) -> None:
        ns, ip, d = nodes[i]
        d.mkdir(parents=True)
        _sh("ip", "netns", "add", ns)
        _sh("ip", "link", "add", f"blv{i}", "type", "veth", "peer", "name", f"blp{i}")
        _sh("ip", "link", "set", f"blv{i}", "master", br, "up")
        _sh("ip", "link", "set", f"blp{i}", "netns", ns)
        _sh("ip", "-n", ns, "link", "set", f"blp{i}", "name", "eth0")
        _sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        _sh("ip", "-n", ns, "link", "set", "eth0", "up")
        _sh("ip", "-n", ns, "link", "set", "lo", "up")
        script = (
            "mount -t tmpfs tmpfs /run; umount -l /sys; mount -t sysfs sysfs /sys; "
            "mount -t tmpfs cgroup /sys/fs/cgroup; "
            f"for h in {CGROUPS}; do mkdir -p /sys/fs/cgroup/$h; mount -t cgroup -o $h cgroup /sys/fs/cgroup/$h; done; "
            f"hostname bl{i}; exec /usr/bin/docker-init -- dockerd --data-root {d}/data --exec-root {d}/exec "
            f"-H unix://{d}/docker.sock --pidfile {d}/docker.pid --bip 10.191.{100 + i}.1/24 "
            f"--default-address-pool base=10.191.{200 + i}.0/24,size=26"
        )
        p = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{ns}", "unshare", "--mount", "--uts", "--pid", "--fork",
             "--mount-proc", "--kill-child", "--propagation", "slave", "--", "sh", "-c", script],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        with lock:
            procs.append(p)
        sock = d / "docker.sock"
        while True:
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(str(sock))
                    s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                    if b"OK" in s.recv(256):
                        return
            except OSError:
                pass
            time.sleep(0.02)

    try:
        with ThreadPoolExecutor(max_workers=n) as pool:
            list(pool.map(start, range(n)))

        def dk(i: int, *args: str) -> str:
            return subprocess.run([DOCKER, "-H", f"unix://{nodes[i][2]}/docker.sock", *args],
                                  check=True, capture_output=True, text=True).stdout.strip()

        dk(0, "swarm", "init", "--advertise-addr", nodes[0][1], "--default-addr-pool", "10.191.128.0/20")
        token = dk(0, "swarm", "join-token", "-q", "worker")
        with ThreadPoolExecutor(max_workers=max(1, n - 1)) as pool:
            list(pool.map(lambda i: dk(i, "swarm", "join", "--token", token, "--advertise-addr", nodes[i][1],
                                       f"{nodes[0][1]}:2377"), range(1, n)))
        while dk(0, "node", "ls", "--format", "{{.Status}}").split().count("Ready") < n:
            time.sleep(0.05)
        return time.monotonic() - t0
    finally:
        for p in procs:
            p.send_signal(signal.SIGKILL)
        for p in procs:
            p.wait()
        for i, (ns, _, _) in enumerate(nodes):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            # The namespace lingers until its last process is reaped: drop our end now.
            subprocess.run(["ip", "link", "del", f"blv{i}"], capture_output=True)
        subprocess.run(["ip", "link", "del", br], capture_output=True)
        time.sleep(0.2)
        shutil.rmtree(root, ignore_errors=True)


# --- floe --------------------------------------------------------------------------------------
class Server:
    def __init__(self, home: Path):
        self.home = home
        self.url = "http://127.0.0.1:9599"
        self.env = {**os.environ, "FLOE_HOME": str(home), "FLOE_PORT": "9599", "FLOE_URL": self.url,
                    "FLOE_ADDRESS_RANGE": "10.192.0.0/12"}
        self.proc = subprocess.Popen([FLOE, "server"], env=self.env, stdout=open(home / "server.log", "wb"),
                                     stderr=subprocess.STDOUT)
        for _ in range(300):
            try:
                httpx.get(self.url + "/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        token = (home / "admin-token").read_text().strip()
        self.http = httpx.Client(base_url=self.url, headers={"X-Auth-Token": token}, timeout=60)

    def wait(self, ident: str, want: str, timeout: float = 600) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r = self.http.get(f"/v1/clusters/{ident}")
            if want == "gone" and r.status_code == 404:
                return {}
            body = r.json()
            if body.get("status") == want:
                return body
            if body.get("status", "").endswith("FAILED"):
                raise RuntimeError(f"{body['status']}: {body.get('status_reason')}")
            time.sleep(0.02)
        raise TimeoutError(f"{ident} did not reach {want}")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        subprocess.run([FLOE, "cleanup", "--all"], env=self.env, capture_output=True)


def floe_create(server: Server, template: str, n: int) -> tuple[float, float]:
    t0 = time.monotonic()
    r = server.http.post("/v1/clusters", json={"name": f"bench{n}", "cluster_template_id": template,
                                                 "master_count": 1, "node_count": n - 1})
    r.raise_for_status()
    uuid = r.json()["uuid"]
    server.wait(uuid, "CREATE_COMPLETE")
    created = time.monotonic() - t0
    t1 = time.monotonic()
    server.http.delete(f"/v1/clusters/{uuid}").raise_for_status()
    server.wait(uuid, "gone")
    return created, time.monotonic() - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1,2,4,8,16,32")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    home = Path(tempfile.mkdtemp(prefix="floe-bench-"))
    server = Server(home)
    rows = []
    try:
        t = server.http.post("/v1/clustertemplates", json={"name": "bench", "coe": "swarm"})
        t.raise_for_status()
        template = t.json()["uuid"]
        # Warm-up: the first cluster builds the registry's base image; not what we measure.
        floe_create(server, template, 1)
        for n in sizes:
            bare = bare_cluster(n, Path(tempfile.mkdtemp(prefix="floe-bare-")))
            created, deleted = floe_create(server, template, n)
            rows.append((n, created, bare, created / bare, deleted))
            print(f"{n:>3} nodes: floe {created:6.2f} s   bare {bare:6.2f} s   ratio {created / bare:4.2f}   "
                  f"delete {deleted:5.2f} s", flush=True)
    finally:
        server.close()
        shutil.rmtree(home, ignore_errors=True)
    if args.out:
        table = ["| nodes | floe create (s) | bare lower bound (s) | ratio | floe delete (s) |",
                 "|---:|---:|---:|---:|---:|"]
        table += [f"| {n} | {c:.2f} | {b:.2f} | {r:.2f} | {d:.2f} |" for n, c, b, r, d in rows]
        Path(args.out).write_text("\n".join(table) + "\n")


if __name__ == "__main__":
    main()

"""Share throughput: sequential write and read from a container, per backend, next to the raw disk.

In one run, on the same disk:
- raw disk: `dd` on the host filesystem that holds FLOE_HOME (write with conv=fsync; read cold,
  after dropping the page cache),
- each share type: a real `floe server`, a 1-node cluster with the share attached at /mnt/bench,
  and the same `dd` in a busybox container on the node (`--mount type=bind,src=/mnt/bench,…`).

Each repetition writes with every way, drops the page cache, then reads with every way, in
an order that turns each repetition (a busy machine then slows them all alike); the table
shows medians and every sample follows it. Every write overwrites the file of the previous
repetition (the first pays for allocation); every read is cold.

    sudo .venv/bin/python bench/share_io.py [--size-mb 1024] [--repeat 3] [--types local]

Addresses come from 10.175.0.0/16. Everything it makes is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

FLOE = str(Path(sys.executable).parent / "floe")
DOCKER = "/usr/bin/docker"
RANGE = "10.175.0.0/16"
DD_RE = re.compile(r"(\d+) bytes .*copied, ([\d.]+) s")


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def dd_rate(output: str) -> float:
    """MB/s (10^6 bytes per second) from dd's summary line (GNU or busybox)."""
    m = DD_RE.search(output)
    if not m:
        raise RuntimeError(f"no dd summary in: {output!r}")
    return int(m.group(1)) / float(m.group(2)) / 1e6


class HostFile:
    """dd on a file of the host (GNU dd: conv=fsync for the write)."""

    def __init__(self, path: Path, size_mb: int):
        self.path, self.size_mb = path, size_mb

    def write(self) -> float:
        # notrunc: every repetition after the first overwrites the same blocks, on the raw disk as
        # in a share's image, so neither pays for block allocation (or, on a discard mount, trim).
        w = subprocess.run(["dd", "if=/dev/zero", f"of={self.path}", "bs=1M", f"count={self.size_mb}",
                            "conv=fsync,notrunc"], capture_output=True, text=True, check=True)
        return dd_rate(w.stderr)

    def read(self) -> float:
        r = subprocess.run(["dd", f"if={self.path}", "of=/dev/null", "bs=1M"], capture_output=True, text=True,
                           check=True)
        return dd_rate(r.stderr)


class ContainerFile:
    """dd in a busybox container on a node, with the share at /data."""

    # busybox dd prints no rate and ignores conv=fsync: time it with /proc/uptime (10 ms
    # resolution) inside the container, with `sync FILE` (an fsync) inside the timing.
    TIMED = 's=$(cut -d" " -f1 /proc/uptime); {}; e=$(cut -d" " -f1 /proc/uptime); echo "T $s $e"'

    def __init__(self, env: dict[str, str], size_mb: int):
        self.env, self.size_mb = env, size_mb

    def _run(self, script: str) -> float:
        res = subprocess.run(
            [DOCKER, "run", "--rm", "--mount", "type=bind,src=/mnt/bench,dst=/data", "busybox", "sh", "-c",
             self.TIMED.format(script)],
            env=self.env, capture_output=True, text=True, check=True,
        )
        if "error" in res.stderr:
            raise RuntimeError(f"dd in the container failed: {res.stderr.strip()}")
        return _uptime_rate(res.stdout, self.size_mb)

    def write(self) -> float:
        return self._run(f"dd if=/dev/zero of=/data/f bs=1M count={self.size_mb} conv=notrunc; sync /data/f")

    def read(self) -> float:
        return self._run("dd if=/data/f of=/dev/null bs=1M")


def _uptime_rate(output: str, size_mb: int) -> float:
    m = re.search(r"T ([\d.]+) ([\d.]+)", output)
    if not m:
        raise RuntimeError(f"no timing in: {output!r}")
    return size_mb * 2**20 / (float(m.group(2)) - float(m.group(1))) / 1e6


class Server:
    def __init__(self, home: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.home = home
        self.env = {**os.environ, "FLOE_HOME": str(home), "FLOE_PORT": str(port),
                    "FLOE_URL": f"http://127.0.0.1:{port}", "FLOE_ADDRESS_RANGE": RANGE}
        self.env.pop("FLOE_TOKEN", None)
        self.proc = subprocess.Popen([FLOE, "server"], env=self.env, stdout=open(home / "server.log", "ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            try:
                if httpx.get(self.env["FLOE_URL"] + "/", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("floe server did not start")

    def floe(self, *args: str) -> str:
        res = subprocess.run([FLOE, *args], env=self.env, capture_output=True, text=True, timeout=600)
        if res.returncode != 0:
            raise RuntimeError(f"floe {' '.join(args)}: {res.stderr.strip()}")
        return res.stdout

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def docker_env(server: Server, cluster: str, where: Path) -> dict[str, str]:
    line = server.floe("cluster", "config", cluster, "--dir", str(where), "--force").strip().splitlines()[-1]
    env = dict(os.environ)
    for kv in line.removeprefix("export ").split():
        k, _, v = kv.partition("=")
        env[k] = v.strip("'\"")
    return env


def median(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--types", default="local", help="share types, comma-separated (local, glusterfs)")
    ap.add_argument("--dir", default="/var/tmp", help="where FLOE_HOME goes (on the disk being measured)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (floe server, namespaces, loop devices, drop_caches)")
    share_gb = -(-args.size_mb * 3 // 2 // 1024)  # room for the file and the filesystem's overhead
    home = Path(tempfile.mkdtemp(prefix="floe-shareio-", dir=args.dir))
    # Every way of writing, measured in turn within each repetition: a busy machine then
    # slows them all alike instead of whichever ran during the noise.
    ways: dict[str, HostFile | ContainerFile] = {
        "raw disk (host, dd conv=fsync)": HostFile(home / "raw.bin", args.size_mb)
    }
    server = None
    created: list[str] = []
    samples: dict[str, list[tuple[float, float]]] = {}
    try:
        server = Server(home)
        server.floe("template", "create", "bench", "--coe", "swarm")
        for stype in args.types.split(","):
            started = time.monotonic()
            share = json.loads(server.floe("share", "create", str(share_gb), "--name", f"bench-{stype}",
                                           "--type", stype, "--wait", "-f", "json"))
            print(f"{stype}: share create (CLI, --wait) {time.monotonic() - started:.2f} s", file=sys.stderr)
            created.append(share["id"])
            server.floe("share", "access", "allow", share["id"], "--cluster", f"io-{stype}")
            server.floe("cluster", "create", f"io-{stype}", "--template", "bench", "--node-count", "0", "--wait")
            server.floe("cluster", "attach", f"io-{stype}", "--share", share["id"], "--path", "/mnt/bench",
                        "--wait")
            env = docker_env(server, f"io-{stype}", home / f"cfg-{stype}")
            subprocess.run([DOCKER, "pull", "-q", "busybox"], env=env, capture_output=True, check=True)
            ways[f"{stype} share, from a container"] = ContainerFile(env, args.size_mb)
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
        names = list(ways)
        for i in range(args.repeat):
            # All writes, then one cache drop, then all reads; the order turns every repetition
            # so that no way is always the one right after the drop (or after another's write).
            order = names[i % len(names):] + names[:i % len(names)]
            writes = {name: ways[name].write() for name in order}
            drop_caches()
            reads = {name: ways[name].read() for name in order}
            for name in names:
                results[name].append((writes[name], reads[name]))
        rows = [(name, *median(pairs)) for name, pairs in results.items()]
        samples.update(results)
        for stype in args.types.split(","):
            server.floe("cluster", "delete", f"io-{stype}", "--wait")
        for share_id in created:
            server.floe("share", "delete", share_id, "--wait")
    finally:
        if server is not None:
            server.stop()
            subprocess.run([FLOE, "cleanup", "--all", "--delete-share-data"], env=server.env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    raw_w, raw_r = rows[0][1], rows[0][2]
    print(f"\nsequential, {args.size_mb} MiB, median of {args.repeat}, MB/s (share of raw disk)\n")
    print("| where | write (MB/s) | read, cold (MB/s) |")
    print("|---|---:|---:|")
    for name, w, r in rows:
        print(f"| {name} | {w:.0f} ({w / raw_w:.0%}) | {r:.0f} ({r / raw_r:.0%}) |")
    print("\nevery sample (MB/s), in the order taken:\n")
    for name, pairs in samples.items():
        writes = ", ".join(f"{w:.0f}" for w, _ in pairs)
        reads = ", ".join(f"{r:.0f}" for _, r in pairs)
        print(f"- {name}: write {writes}; read {reads}")


if __name__ == "__main__":
    main()

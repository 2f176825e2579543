"""Cluster creation time: floe (POST /v1/clusters → CREATE_COMPLETE) against the bare lower bound.

The lower bound does the same physical work with no floe in between: N namespaces with a
dockerd each started in parallel (the same recipe as the local provider, without TLS),
`swarm init` on the first, every other node joined at once, until all are Ready.

    sudo .venv/bin/python bench/create_cluster.py [--sizes 1,2,4,8,16,32] [--repeat 3] [--profile DIR] [--out FILE]

Each size alternates a bare run and a floe run --repeat times (medians reported), and prints
both phase by phase (nodes up, swarm init, joins, all Ready). --profile records floe's server
with py-spy during one more create at the largest size and prints where its CPU went.

Addresses come from 10.192.0.0/12 (floe) and 10.191.0.0/16 (lower bound).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

import httpx

FLOE = str(Path(sys.executable).parent / "floe")
DOCKER = "/usr/bin/docker"
CGROUPS = "cpu cpuacct cpuset memory devices freezer blkio pids"


# --- the bare lower bound ---------------------------------------------------------------------
def _sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def bare_cluster(
    n: int, root: Path, k: int = 0, first: int = 0, phases: dict | None = None, hold: threading.Barrier | None = None
) -> float:
    """Start n namespaced dockerds in parallel and form a swarm; return seconds taken.

    `k` numbers the cluster (its bridge and node subnet 10.191.k.0/24) and `first` its first
    node's number on the host (node i's docker bridge is 10.191.(100 + first + i).1), so several
    bare clusters can run at once (bare_parallel). `phases` receives the time at which each
    phase ended (nodes, swarm_init, swarm_join, swarm_ready), comparable to floe's steps.
    With `hold`, the swarm keeps running until every party of the barrier is Ready, as floe's
    clusters do: a swarm torn down as soon as it is Ready would leave its CPU to the others.
    """
    phases = {} if phases is None else phases
    br = f"blbr{k}"
    nodes = [(f"blns{k}-{i}", f"10.191.{k}.{i + 2}", root / f"n{i}") for i in range(n)]
    t0 = time.monotonic()
    _sh("ip", "link", "add", br, "type", "bridge")
    _sh("ip", "addr", "add", f"10.191.{k}.1/24", "dev", br)
    _sh("ip", "link", "set", br, "up")
    procs: list[subprocess.Popen] = []
    lock = threading.Lock()

    def start(i: int) -> None:
        ns, ip, d = nodes[i]
        d.mkdir(parents=True)
        _sh("ip", "netns", "add", ns)
        _sh("ip", "link", "add", f"blv{k}-{i}", "type", "veth", "peer", "name", f"blp{k}-{i}")
        _sh("ip", "link", "set", f"blv{k}-{i}", "master", br, "up")
        _sh("ip", "link", "set", f"blp{k}-{i}", "netns", ns)
        _sh("ip", "-n", ns, "link", "set", f"blp{k}-{i}", "name", "eth0")
        _sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        _sh("ip", "-n", ns, "link", "set", "eth0", "up")
        _sh("ip", "-n", ns, "link", "set", "lo", "up")
        script = (
            "mount -t tmpfs tmpfs /run; umount -l /sys; mount -t sysfs sysfs /sys; "
            "mount -t tmpfs cgroup /sys/fs/cgroup; "
            f"for h in {CGROUPS}; do mkdir -p /sys/fs/cgroup/$h; mount -t cgroup -o $h cgroup /sys/fs/cgroup/$h; done; "
            f"hostname bl{k}-{i}; exec /usr/bin/docker-init -- dockerd --data-root {d}/data --exec-root {d}/exec "
            f"-H unix://{d}/docker.sock --pidfile {d}/docker.pid --bip 10.191.{100 + first + i}.1/24 "
            f"--default-address-pool base=10.191.{200 + first + i}.0/24,size=26"
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
        phases["nodes"] = time.monotonic() - t0

        def dk(i: int, *args: str) -> str:
            return subprocess.run([DOCKER, "-H", f"unix://{nodes[i][2]}/docker.sock", *args],
                                  check=True, capture_output=True, text=True).stdout.strip()

        dk(0, "swarm", "init", "--advertise-addr", nodes[0][1], "--default-addr-pool", "10.191.128.0/20")
        token = dk(0, "swarm", "join-token", "-q", "worker")
        phases["swarm_init"] = time.monotonic() - t0
        with ThreadPoolExecutor(max_workers=max(1, n - 1)) as pool:
            list(pool.map(lambda i: dk(i, "swarm", "join", "--token", token, "--advertise-addr", nodes[i][1],
                                       f"{nodes[0][1]}:2377"), range(1, n)))
        phases["swarm_join"] = time.monotonic() - t0
        while dk(0, "node", "ls", "--format", "{{.Status}}").split().count("Ready") < n:
            time.sleep(0.05)
        phases["swarm_ready"] = time.monotonic() - t0
        if hold is not None:
            hold.wait(timeout=600)
        return phases["swarm_ready"]
    except BaseException:
        if hold is not None:
            hold.abort()  # the others stop waiting for this one
        raise
    finally:
        for p in procs:
            p.send_signal(signal.SIGKILL)
        for p in procs:
            p.wait()
        for i, (ns, _, _) in enumerate(nodes):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            # The namespace lingers until its last process is reaped: drop our end now.
            subprocess.run(["ip", "link", "del", f"blv{k}-{i}"], capture_output=True)
        subprocess.run(["ip", "link", "del", br], capture_output=True)
        time.sleep(0.2)
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class ParallelRun:
    """Clusters formed at once: seconds until the last was Ready and CPU seconds meanwhile."""

    seconds: float
    host_cpu: float  # every process on the host, the kernel's own threads included
    own_cpu: float | None  # the processes doing the work (CpuGroup), None without cgroup v1 cpuacct


def bare_parallel(count: int, size: int) -> ParallelRun:
    """`count` bare clusters of `size` nodes formed at once (teardown not counted). Their CPU is
    counted by putting this process, whose children the daemons are, in a cpuacct group."""
    if count * size > 55 or count > 99:
        raise ValueError("the bare lower bound's address plan holds at most 55 nodes at once")
    roots = [Path(tempfile.mkdtemp(prefix="floe-bare-")) for _ in range(count)]
    group = CpuGroup.make("bare")
    if group is not None:
        group.add(os.getpid())
    start = (host_cpu(), group.seconds() if group else 0.0)
    end: list[tuple[float, float]] = []
    # Every swarm stays up until the last is Ready, like floe's clusters; the barrier's action runs
    # once, when the last arrives, before any teardown.
    hold = threading.Barrier(count, action=lambda: end.append((host_cpu(), group.seconds() if group else 0.0)))
    try:
        with ThreadPoolExecutor(max_workers=count) as pool:
            took = max(pool.map(lambda k: bare_cluster(size, roots[k], k, k * size, hold=hold), range(count)))
    finally:
        if group is not None:
            group.close()
    return ParallelRun(took, end[0][0] - start[0], end[0][1] - start[1] if group else None)


# --- floe --------------------------------------------------------------------------------------
class Server:
    """A `floe server` on `home`, port and address range; `cpu_group` counts its CPU in a cgroup."""

    def __init__(self, home: Path, port: int = 9599, address_range: str = "10.192.0.0/12", cpu_group: bool = True):
        self.home = home
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, "FLOE_HOME": str(home), "FLOE_PORT": str(port), "FLOE_URL": self.url,
                    "FLOE_ADDRESS_RANGE": address_range}
        self.proc = subprocess.Popen([FLOE, "server"], env=self.env, stdout=open(home / "server.log", "wb"),
                                     stderr=subprocess.STDOUT)
        for _ in range(300):
            try:
                httpx.get(self.url + "/", timeout=1)
                break
            except httpx.HTTPError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"floe server exited: see {home / 'server.log'}") from None
                time.sleep(0.1)
        # floe's server and what it runs itself (iptables, pyroute2's helpers, the registry);
        # the nodes' daemons go to their own cgroups (node_cpu).
        self.cpu = CpuGroup.make("floe-server") if cpu_group else None
        if self.cpu is not None:
            self.cpu.add(self.proc.pid)
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

    def wait_all(self, uuids: list[str], want: str, timeout: float = 600, interval: float = 0.05) -> None:
        """Wait until every cluster in `uuids` has status `want` ("gone": none listed). One list
        request per round for all of them: one poller per cluster at 20 ms (ten threads, ~500
        requests/s) spent more of the two CPUs on answering polls than floe spent on the clusters
        (measured: ~60 % of the server's Python CPU)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r = self.http.get("/v1/clusters", params={"limit": 1000})
            r.raise_for_status()
            status = {c["uuid"]: c["status"] for c in r.json()["clusters"]}
            states = [status.get(u, "gone") for u in uuids]
            for u, s in zip(uuids, states, strict=True):
                if s.endswith("FAILED"):
                    raise RuntimeError(f"{u}: {s}: {self.http.get(f'/v1/clusters/{u}').json().get('status_reason')}")
            if all(s == want for s in states):
                return
            time.sleep(interval)
        raise TimeoutError(f"not all of {len(uuids)} clusters reached {want}")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        subprocess.run([FLOE, "cleanup", "--all"], env=self.env, capture_output=True)
        if self.cpu is not None:
            self.cpu.close()


STEP_DONE = re.compile(r"op \d+ create step (\w+) done at ([\d.]+)s")


def host_cpu() -> float:
    """Busy CPU seconds of the whole host so far (every process, all CPUs; /proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


CPUACCT = Path("/sys/fs/cgroup/cpuacct")


class CpuGroup:
    """A cgroup-v1 cpuacct group: the CPU of the processes put in it and of all their children,
    those that already exited included (sampling /proc misses short-lived ones: `ip`, `iptables`,
    runc, dockerd's re-execs)."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def make(cls, name: str) -> CpuGroup | None:
        """A new group, or None where there is no cgroup-v1 cpuacct hierarchy (the CPU split is then not reported)."""
        if not (CPUACCT / "cpuacct.usage").exists():
            return None
        path = CPUACCT / f"benchcpu-{os.getpid()}-{name}"
        path.mkdir(exist_ok=True)
        return cls(path)

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))  # the whole process, every thread

    def seconds(self) -> float:
        return cgroup_cpu(self.path)

    def close(self) -> None:
        """Move what is left back to the root group and remove this one."""
        for pid in (self.path / "cgroup.procs").read_text().split():
            try:
                (CPUACCT / "cgroup.procs").write_text(pid)
            except OSError:  # exited meanwhile
                pass
        self.path.rmdir()


def cgroup_cpu(path: Path) -> float:
    """CPU seconds of a cpuacct group since it was made; 0 if it is gone."""
    try:
        return int((path / "cpuacct.usage").read_text()) / 1e9
    except (OSError, ValueError):
        return 0.0


def node_cpu(home: Path) -> float:
    """CPU seconds of the nodes of the floe under `home` that exist now (their daemons and
    containers: the local provider puts each node in a `floe-<tag>-<node>` cgroup)."""
    total = 0.0
    for cluster in (home / "nodes").glob("*"):
        for n in cluster.glob("*"):
            if not n.name.startswith("."):
                total += cgroup_cpu(CPUACCT / f"floe-{cluster.name}-{n.name}")
    return total


def server_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class FloeRun:
    created: float
    deleted: float
    cpu: float  # the server's CPU seconds during the create
    steps: dict = field(default_factory=dict)  # step -> seconds from the operation's start when it ended


def floe_create(server: Server, template: str, n: int, profile: Path | None = None) -> FloeRun:
    log_at = (server.home / "server.log").stat().st_size
    spy = None
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        spy = subprocess.Popen(
            [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(server.proc.pid), "--rate", "250",
             # --gil: only the thread holding the GIL, i.e. floe's Python CPU (py-spy's idle
             # detection does not work in these containers: every blocked thread looked busy).
             "--gil", "--format", "raw", "--output", str(profile / f"floe-create-{n}.folded")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # py-spy attaches
    cpu0 = server_cpu(server.proc.pid)
    t0 = time.monotonic()
    r = server.http.post("/v1/clusters", json={"name": f"bench{n}", "cluster_template_id": template,
                                                 "master_count": 1, "node_count": n - 1})
    r.raise_for_status()
    uuid = r.json()["uuid"]
    server.wait(uuid, "CREATE_COMPLETE")
    created = time.monotonic() - t0
    cpu = server_cpu(server.proc.pid) - cpu0
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
        spy.wait(timeout=60)
    with open(server.home / "server.log", "rb") as f:
        f.seek(log_at)
        steps = {m[1]: float(m[2]) for m in STEP_DONE.finditer(f.read().decode(errors="replace"))}
    t1 = time.monotonic()
    server.http.delete(f"/v1/clusters/{uuid}").raise_for_status()
    server.wait(uuid, "gone")
    return FloeRun(created, time.monotonic() - t1, cpu, steps)


def summarize_profile(folded: Path, top: int = 15) -> str:
    """The functions of floe (and the libraries it calls) that held the CPU most, from py-spy's raw output."""
    inclusive: Counter = Counter()
    leaf: Counter = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        c = int(count)
        total += c
        frames = [f for f in stack.split(";") if "(" in f]
        for f in set(frames):
            if "(floe/" in f:
                inclusive[f] += c
        if frames:
            leaf[frames[-1]] += c
    out = [f"{total} samples holding the GIL (rate 250 Hz = {total / 250:.2f} s of Python CPU)", "",
           "inclusive, floe's own functions:"]
    out += [f"  {c / total:6.1%}  {f}" for f, c in inclusive.most_common(top)]
    out += ["", "self (leaf frames):"]
    out += [f"  {c / total:6.1%}  {f}" for f, c in leaf.most_common(top)]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1,2,4,8,16,32")
    ap.add_argument("--repeat", type=int, default=1, help="runs per size (medians are reported)")
    ap.add_argument("--profile", default="", help="a directory: py-spy profiles of floe's server for the largest size")
    ap.add_argument("--out", default="")
    ap.add_argument("--flavor", default="", help="the nodes' flavor (default: floe's default, m1.small: 1 vCPU)")
    ap.add_argument("--new-flavor", default="", metavar="NAME:VCPUS:RAM_MB:DISK_GB",
                    help="create this flavor first and use it (e.g. nodisk:1:2048:0)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    home = Path(tempfile.mkdtemp(prefix="floe-bench-"))
    server = Server(home)
    rows = []
    phase_rows = []
    try:
        if args.new_flavor:
            name, vcpus, ram, disk = args.new_flavor.split(":")
            server.http.post("/v2.1/flavors", json={"flavor": {
                "name": name, "vcpus": int(vcpus), "ram": int(ram), "disk": int(disk)}}).raise_for_status()
            args.flavor = name
        flavor = {"flavor_id": args.flavor, "master_flavor_id": args.flavor} if args.flavor else {}
        t = server.http.post("/v1/clustertemplates", json={"name": "bench", "coe": "swarm", **flavor})
        t.raise_for_status()
        template = t.json()["uuid"]
        # Warm-up: the first cluster builds the registry's base image; not what we measure.
        floe_create(server, template, 1)
        for n in sizes:
            bares, runs, bare_phases = [], [], []
            for _ in range(args.repeat):
                phases: dict = {}
                bares.append(bare_cluster(n, Path(tempfile.mkdtemp(prefix="floe-bare-")), phases=phases))
                bare_phases.append(phases)
                runs.append(floe_create(server, template, n))
            if args.profile and n == max(sizes):
                floe_create(server, template, n, Path(args.profile))
            created = median(r.created for r in runs)
            bare = median(bares)
            deleted = median(r.deleted for r in runs)
            cpu = median(r.cpu for r in runs)
            rows.append((n, created, bare, created / bare, deleted, cpu))
            print(f"{n:>3} nodes: floe {created:6.2f} s   bare {bare:6.2f} s   ratio {created / bare:4.2f}   "
                  f"delete {deleted:5.2f} s   server CPU {cpu:5.2f} s   "
                  f"(floe {', '.join(f'{r.created:.2f}' for r in runs)}; bare {', '.join(f'{b:.2f}' for b in bares)})",
                  flush=True)
            phase_rows.append((n, {k: median(p[k] for p in bare_phases) for k in bare_phases[0]},
                               {k: median(r.steps.get(k, 0.0) for r in runs) for k in runs[0].steps}))
    finally:
        server.close()
        shutil.rmtree(home, ignore_errors=True)
    print("\nphases (seconds from the start when each ended; floe's from its server log):")
    for n, bare_p, floe_p in phase_rows:
        print(f"{n:>3} nodes  bare: " + "  ".join(f"{k} {v:.2f}" for k, v in bare_p.items()))
        print("           floe: " + "  ".join(f"{k} {v:.2f}" for k, v in floe_p.items()))
    if args.profile:
        for folded in sorted(Path(args.profile).glob("*.folded")):
            print(f"\n{folded}:\n{summarize_profile(folded)}")
    if args.out:
        table = ["| nodes | floe create (s) | bare lower bound (s) | ratio | floe delete (s) | floe server CPU (s) |",
                 "|---:|---:|---:|---:|---:|---:|"]
        table += [f"| {n} | {c:.2f} | {b:.2f} | {r:.2f} | {d:.2f} | {u:.2f} |" for n, c, b, r, d, u in rows]
        Path(args.out).write_text("\n".join(table) + "\n")


if __name__ == "__main__":
    main()

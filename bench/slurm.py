"""Slurm clusters: floe (POST /v1/clusters → CREATE_COMPLETE) against a bare script, in the same run.

floe: a real `floe server`, a template `--coe slurm` (workers m1.tiny, controller m1.small), one
controller and --nodes compute nodes. Every floe node is a namespaced node with its own dockerd
(and its TLS proxy), held to its flavor; the Slurm steps then start the cluster's munged, probe
each node (`slurmd -C`), write slurm.conf, start slurmctld and the slurmds and wait until sinfo
reports every node usable.

bare: the same Slurm work by hand, no floe in between: one munged on the host with a fresh key,
a slurm.conf written by the script, a bridge and a namespace per node (`nsenter --net=… unshare
--mount --uts --pid --fork`, hostname set, a tmpfs on /run), slurmctld in the first, a slurmd in
each of the others once slurmctld answers, until `sinfo` shows every node idle. Two variants:
`bare` (Slurm only: no dockerd, no flavor limits, no TLS, no firewall of its own) and
`bare+docker` (a dockerd per node as well, started with the node, as create_cluster.py's lower
bound does; done when every dockerd answers and every node is idle).

On each cluster, the latency of `srun -N <nodes> true` and `srun -N 1 true` from the host, each
run started on an idle cluster, and of `srun -N <nodes> true` run back to back (a run that finds
the previous job's nodes still completing waits for the scheduler: Slurm's job turnaround).
--sruns runs of each after one warm-up; median and p90 over every repeat.

    sudo .venv/bin/python bench/slurm.py [--nodes 16] [--repeat 3] [--sruns 20] [--json FILE] [--keep]

Each repeat runs bare, bare+docker and floe one after the other; everything made is removed
and the script checks that nothing of it is left on the host. --keep leaves the last repeat's
clusters (and the floe server) running and prints how to reach and remove them.

Addresses: floe FLOE_ADDRESS_RANGE (default 10.192.0.0/16), bare 10.193.0.0/16.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median

from floe.coe.slurm import config

sys.path.insert(0, str(Path(__file__).parent))
from create_cluster import STEP_DONE, Server, server_cpu  # noqa: E402 - a sibling script

SRUN = shutil.which("srun") or "/usr/bin/srun"
SINFO = shutil.which("sinfo") or "/usr/bin/sinfo"
SCONTROL = shutil.which("scontrol") or "/usr/bin/scontrol"
MUNGED = shutil.which("munged") or "/usr/sbin/munged"
BARE_PREFIX = "bslm"  # every host object of the bare cluster: netns, links, iptables comment
BARE_NET = "10.193"


def _sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


# --- the bare cluster ---------------------------------------------------------------------------
def bare_conf(root: Path, names: list[str], addrs: list[str]) -> str:
    """slurm.conf for the bare cluster: floe's own (config.render), without the task prolog floe
    adds, on nodes declared as floe's m1.tiny (1 vCPU, 512 MiB), so both schedule the same."""
    cluster = config.SlurmCluster(
        name=f"bare_{os.getpid()}", files=str(root), controllers=[(names[0], addrs[0])],
        nodes=[config.SlurmNode(n, a, 1, 512, "batch") for n, a in zip(names[1:], addrs[1:], strict=True)],
    )
    lines = config.render(cluster).splitlines()
    return "\n".join(ln for ln in lines if not ln.startswith("TaskProlog=")) + \
        f"\nSlurmctldLogFile={root}/log/slurmctld.log\n"


def sinfo_states(conf: Path) -> dict[str, str]:
    out = subprocess.run([SINFO, "-N", "-h", "-o", "%N|%T"], capture_output=True, text=True, timeout=20,
                         env={**os.environ, "SLURM_CONF": str(conf)}).stdout
    return dict(line.split("|", 1) for line in out.split() if "|" in line)


def cgroup_mounts() -> list[tuple[str, str, str]]:
    """(type, target, options) of the host's mounts under /sys/fs/cgroup, parents first."""
    out = []
    for line in Path("/proc/mounts").read_text().splitlines():
        _, target, fstype, opts, *_ = line.split()
        if (target == "/sys/fs/cgroup" or target.startswith("/sys/fs/cgroup/")) and \
                fstype in ("tmpfs", "cgroup", "cgroup2"):
            out.append((fstype, target, opts))
    return out


def _ping(sock: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(sock))
            s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return b"OK" in s.recv(256)
    except OSError:
        return False


class BareCluster:
    """A controller and `n` compute nodes started by hand; `start()` returns the seconds until
    sinfo shows every node idle (and, with `docker`, every node's dockerd answers)."""

    def __init__(self, n: int, docker: bool):
        if n + 1 > 99:
            raise ValueError("the bare address plan holds at most 98 compute nodes")
        self.n, self.docker = n, docker
        self.root = Path(tempfile.mkdtemp(prefix="bare-", dir="/tmp/h2"))
        self.root.chmod(0o755)
        self.bridge = f"{BARE_PREFIX}br"
        self.names = ["bctl"] + [f"bn{i}" for i in range(n)]
        self.addrs = [f"{BARE_NET}.0.{i + 2}" for i in range(n + 1)]
        self.conf = self.root / "slurm.conf"
        self.comment = f"{BARE_PREFIX}:{os.getpid()}"
        self.procs: list[subprocess.Popen] = []
        self.inner: dict[int, int] = {}  # node index → host pid of the node's pid 1
        self.lock = threading.Lock()
        self.phases: dict[str, float] = {}

    def _spawn(self, argv: list[str], log: Path) -> subprocess.Popen:
        p = subprocess.Popen(argv, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        with self.lock:
            self.procs.append(p)
        return p

    def _node(self, i: int) -> None:
        """Namespace, veth, and the node's pid 1 (docker-init over a shell that mounts its own
        /run, sets the hostname and, with docker, starts its dockerd)."""
        ns, d = f"{BARE_PREFIX}-{i}", self.root / f"n{i}"
        d.mkdir()
        _sh("ip", "netns", "add", ns)
        _sh("ip", "link", "add", f"{BARE_PREFIX}v{i}", "type", "veth", "peer", "name", f"{BARE_PREFIX}p{i}")
        _sh("ip", "link", "set", f"{BARE_PREFIX}v{i}", "master", self.bridge, "up")
        _sh("ip", "link", "set", f"{BARE_PREFIX}p{i}", "netns", ns)
        _sh("ip", "-n", ns, "link", "set", f"{BARE_PREFIX}p{i}", "name", "eth0")
        _sh("ip", "-n", ns, "addr", "add", f"{self.addrs[i]}/24", "dev", "eth0")
        _sh("ip", "-n", ns, "link", "set", "eth0", "up")
        _sh("ip", "-n", ns, "link", "set", "lo", "up")
        # `ready` once the hostname is set (slurmctld checks it is the host slurm.conf names) and
        # the mounts are made (slurmd wants the cgroup mounts).
        script = f"mount -t tmpfs tmpfs /run; mkdir -p /run/slurmd; hostname {self.names[i]}; "
        if self.docker:
            script += (
                # The node's own sysfs (its network devices), then every cgroup mount the host
                # has (slurmd wants name=systemd as well as the controllers dockerd uses).
                "umount -l /sys; mount -t sysfs sysfs /sys; "
                + "".join(f"mkdir -p {target}; mount -t {fstype} -o {opts} {fstype} {target}; "
                          for fstype, target, opts in cgroup_mounts())
                + f"touch {d}/ready; dockerd --data-root {d}/data --exec-root {d}/exec -H unix://{d}/docker.sock "
                f"--pidfile {d}/docker.pid --bip {BARE_NET}.{100 + i}.1/24 "
                f"--default-address-pool base={BARE_NET}.{200 + i}.0/24,size=26 >{d}/dockerd.log 2>&1 & "
            )
        else:
            script += f"touch {d}/ready; "
        script += "exec sleep infinity"
        p = self._spawn(["nsenter", f"--net=/run/netns/{ns}", "unshare", "--mount", "--uts", "--pid", "--fork",
                         "--mount-proc", "--kill-child", "--propagation", "slave", "--",
                         "/usr/bin/docker-init", "--", "sh", "-c", script], d / "node.log")
        children = Path(f"/proc/{p.pid}/task/{p.pid}/children")
        while not (kids := children.read_text().split()) or not (d / "ready").exists():
            if p.poll() is not None:
                raise RuntimeError(f"node {i} exited: {(d / 'node.log').read_text()[-500:]}")
            time.sleep(0.005)
        self.inner[i] = int(kids[0])

    def _in_node(self, i: int, daemon: str, argv: list[str]) -> None:
        self._spawn(["nsenter", "-t", str(self.inner[i]), "-m", "-u", "-n", "-p", "--", *argv],
                    self.root / "log" / f"{daemon}-{i}.out")

    def _ctld_up(self) -> bool:
        out = subprocess.run([SCONTROL, "ping"], capture_output=True, text=True, timeout=15,
                             env={**os.environ, "SLURM_CONF": str(self.conf)}).stdout
        return "UP" in out

    def start(self, timeout: float = 120) -> float:
        t0 = time.monotonic()
        end = t0 + timeout
        for sub in ("munge", "state", "log"):
            (self.root / sub).mkdir(mode=0o755)
        key = self.root / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        self._spawn([MUNGED, "--foreground", f"--socket={self.root}/munge/munge.socket.2", f"--key-file={key}",
                     f"--pid-file={self.root}/munged.pid", f"--seed-file={self.root}/munged.seed",
                     f"--log-file={self.root}/munged.log", "--num-threads=4", "--force"], self.root / "munged.out")
        self.conf.write_text(bare_conf(self.root, self.names, self.addrs))
        _sh("ip", "link", "add", self.bridge, "type", "bridge")
        _sh("ip", "addr", "add", f"{BARE_NET}.0.1/24", "dev", self.bridge)
        _sh("ip", "link", "set", self.bridge, "up")
        # The host may DROP forwarded bridge traffic (br_netfilter): let the nodes talk.
        _sh("iptables", "-w", "-I", "FORWARD", "-i", self.bridge, "-o", self.bridge,
            "-m", "comment", "--comment", self.comment, "-j", "ACCEPT")
        while not (self.root / "munge/munge.socket.2").exists():
            if time.monotonic() > end:
                raise TimeoutError("munged did not start")
            time.sleep(0.01)
        self.phases["munge"] = time.monotonic() - t0
        ctld_up = threading.Event()
        failed: list[BaseException] = []

        def one(i: int) -> None:
            try:
                self._node(i)
                if i == 0:
                    self.phases["controller_node"] = time.monotonic() - t0
                    self._in_node(0, "slurmctld", ["slurmctld", "-D", "-f", str(self.conf)])
                    while not self._ctld_up():
                        if time.monotonic() > end:
                            raise TimeoutError("slurmctld did not answer")
                        time.sleep(0.02)
                    self.phases["slurmctld_up"] = time.monotonic() - t0
                    ctld_up.set()
                    return
                if not ctld_up.wait(timeout=max(0.0, end - time.monotonic())) or failed:
                    return
                self._in_node(i, "slurmd", ["slurmd", "-D", "-N", self.names[i], "-f", str(self.conf)])
            except BaseException as exc:
                failed.append(exc)
                ctld_up.set()  # the others stop waiting
                raise

        with ThreadPoolExecutor(max_workers=self.n + 1) as pool:
            list(pool.map(one, range(self.n + 1)))
        self.phases["slurmds_started"] = time.monotonic() - t0
        workers = set(self.names[1:])
        while True:
            states = sinfo_states(self.conf)
            if all(states.get(w) == "idle" for w in workers):
                break
            if time.monotonic() > end:
                raise TimeoutError(f"not all nodes idle: {states}")
            time.sleep(0.02)
        self.phases["all_idle"] = time.monotonic() - t0
        if self.docker:
            socks = [self.root / f"n{i}" / "docker.sock" for i in range(self.n + 1)]
            while not all(_ping(s) for s in socks):
                if time.monotonic() > end:
                    raise TimeoutError("not every dockerd answers")
                time.sleep(0.02)
            self.phases["all_dockerd"] = time.monotonic() - t0
        return time.monotonic() - t0

    def stop(self) -> None:
        """Kill what this cluster started (by pid and process group), then its links, namespaces
        and rules, and its directory."""
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in self.procs:
            p.wait()
        for i in range(self.n + 1):
            # The namespace lingers until its last process is reaped: drop our end now.
            subprocess.run(["ip", "link", "del", f"{BARE_PREFIX}v{i}"], capture_output=True)
            subprocess.run(["ip", "netns", "del", f"{BARE_PREFIX}-{i}"], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        while subprocess.run(["iptables", "-w", "-D", "FORWARD", "-i", self.bridge, "-o", self.bridge, "-m", "comment",
                              "--comment", self.comment, "-j", "ACCEPT"], capture_output=True).returncode == 0:
            pass
        # Lazy unmounts of what dockerd may have left mounted under the root (its overlay layers).
        for line in reversed(Path("/proc/mounts").read_text().splitlines()):
            if str(self.root) in line.split()[1]:
                subprocess.run(["umount", "-l", line.split()[1]], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def leftovers(self) -> dict[str, list[str]]:
        """What of this cluster is still on the host (empty after stop())."""
        return {k: v for k, v in {
            "netns": [n for n in _netns() if n.startswith(f"{BARE_PREFIX}-")],
            "links": [ln for ln in _links() if ln.startswith(BARE_PREFIX)],
            "iptables": [r for r in _rules() if self.comment in r],
            "processes": _processes(str(self.root)),
            "mounts": [m for m in Path("/proc/mounts").read_text().splitlines() if str(self.root) in m],
            "files": [str(self.root)] if self.root.exists() else [],
        }.items() if v}


# --- what is on the host ------------------------------------------------------------------------
def _netns() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


def _rules() -> list[str]:
    return subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True).stdout.splitlines()


def _processes(marker: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmd:
                found.append(f"{pid} {cmd[:160]}")
    return found


def floe_leftovers(home: Path, tag: str) -> dict[str, list[str]]:
    """What of floe's cluster `tag` is still on the host (the local provider names every object
    after the tag)."""
    return {k: v for k, v in {
        "netns": [n for n in _netns() if tag in n],
        "links": [ln for ln in _links() if tag in ln],
        "iptables": [r for r in _rules() if f"floe:{tag}" in r],
        "processes": _processes(f"{home}/nodes/{tag}"),
        "cgroups": [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/floe-{tag}-*")],
        "files": [str(home / "nodes" / tag)] if (home / "nodes" / tag).exists() else [],
    }.items() if v}


# --- srun ---------------------------------------------------------------------------------------
def wait_idle(conf: Path, timeout: float = 60) -> None:
    """Until sinfo shows every node idle (the previous job's nodes done completing)."""
    end = time.monotonic() + timeout
    while not all(v == "idle" for v in sinfo_states(conf).values()):
        if time.monotonic() > end:
            raise TimeoutError(f"nodes not idle after {timeout:.0f}s: {sinfo_states(conf)}")
        time.sleep(0.02)


def srun_latency(conf: Path, nodes: int, runs: int, settle: bool = True) -> list[float]:
    """Seconds per `srun -N nodes true` from the host, `runs` times after one warm-up.

    With `settle`, each run starts on an idle cluster (not timed: waiting for the previous job's
    nodes to leave COMPLETING). Without, runs follow each other at once: a run that finds the
    nodes still completing is queued until slurmctld's scheduler next runs, 1-3 s later."""
    env = {**os.environ, "SLURM_CONF": str(conf)}
    took = []
    for k in range(runs + 1):
        if settle:
            wait_idle(conf)
        t0 = time.monotonic()
        proc = subprocess.run([SRUN, "-N", str(nodes), "true"], env=env, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"srun -N {nodes} true failed: {proc.stderr.strip()}")
        if k:
            took.append(time.monotonic() - t0)
    return took


def sruns(conf: Path, nodes: int, runs: int) -> dict[str, list[float]]:
    return {"all": srun_latency(conf, nodes, runs), "one": srun_latency(conf, 1, runs),
            "all_back_to_back": srun_latency(conf, nodes, runs, settle=False)}


def p90(values: list[float]) -> float:
    """Nearest-rank 90th percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(0.9 * len(s)) - 1)]


# --- floe ---------------------------------------------------------------------------------------
@dataclass
class FloeCluster:
    uuid: str
    tag: str
    created: float
    cpu: float
    steps: dict = field(default_factory=dict)


def floe_create(server: Server, template: str, name: str, n: int) -> FloeCluster:
    log_at = (server.home / "server.log").stat().st_size
    before = set(os.listdir(server.home / "nodes")) if (server.home / "nodes").exists() else set()
    cpu0 = server_cpu(server.proc.pid)
    t0 = time.monotonic()
    r = server.http.post("/v1/clusters", json={"name": name, "cluster_template_id": template,
                                                 "master_count": 1, "node_count": n})
    r.raise_for_status()
    uuid = r.json()["uuid"]
    server.wait(uuid, "CREATE_COMPLETE")
    created = time.monotonic() - t0
    cpu = server_cpu(server.proc.pid) - cpu0
    with open(server.home / "server.log", "rb") as f:
        f.seek(log_at)
        steps = {m[1]: float(m[2]) for m in STEP_DONE.finditer(f.read().decode(errors="replace"))}
    tags = set(os.listdir(server.home / "nodes")) - before
    if len(tags) != 1:
        raise RuntimeError(f"cannot tell the new cluster's tag: {sorted(tags)}")
    return FloeCluster(uuid, tags.pop(), created, cpu, steps)


def floe_delete(server: Server, c: FloeCluster) -> float:
    t0 = time.monotonic()
    server.http.delete(f"/v1/clusters/{c.uuid}").raise_for_status()
    server.wait(c.uuid, "gone")
    took = time.monotonic() - t0
    left = floe_leftovers(server.home, c.tag)
    if left:
        raise RuntimeError(f"floe left cluster {c.tag} behind: {left}")
    return took


# --- the run ------------------------------------------------------------------------------------
@dataclass
class Run:
    kind: str  # bare, bare+docker, floe
    create: float
    phases: dict
    srun: dict[str, list[float]]  # all, one, all_back_to_back → seconds per run
    delete: float | None = None
    server_cpu: float | None = None


def summarize(runs: list[Run]) -> dict:
    keys = runs[0].phases.keys()
    out = {
        "create_median": median(r.create for r in runs),
        "creates": [round(r.create, 3) for r in runs],
        "phases_median": {k: round(median(r.phases.get(k, 0.0) for r in runs), 3) for k in keys},
    }
    for series in runs[0].srun:
        values = [x for r in runs for x in r.srun[series]]
        out[f"srun_{series}_median"], out[f"srun_{series}_p90"] = median(values), p90(values)
    if runs[0].delete is not None:
        out["delete_median"] = median(r.delete for r in runs if r.delete is not None)
        out["server_cpu_median"] = median(r.server_cpu for r in runs if r.server_cpu is not None)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=16, help="compute nodes (one controller besides)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sruns", type=int, default=20, help="srun runs per cluster and node count")
    ap.add_argument("--no-docker-variant", action="store_true", help="skip the bare+docker variant")
    ap.add_argument("--json", default="", help="write every run and the medians to this file")
    ap.add_argument("--keep", action="store_true", help="leave the last repeat's clusters and the server running")
    ap.add_argument("--port", type=int, default=int(os.environ.get("FLOE_PORT", "18788")))
    ap.add_argument("--range", default=os.environ.get("FLOE_ADDRESS_RANGE", "10.192.0.0/16"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: it makes namespaces, bridges and iptables rules")
    # `kill` and `timeout` tear down as Ctrl-C does (the finally blocks run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if any(n.startswith(f"{BARE_PREFIX}-") for n in _netns()) or f"{BARE_PREFIX}br" in _links():
        sys.exit(f"a bare cluster's objects ({BARE_PREFIX}-*) are on the host already: another run of this script?")
    Path("/tmp/h2").mkdir(exist_ok=True)
    print(f"load average at the start: {os.getloadavg()[0]:.2f}", flush=True)
    home = Path(tempfile.mkdtemp(prefix="floe-bench-slurm-", dir="/tmp/h2"))
    server = Server(home, args.port, args.range, cpu_group=False)
    kinds = ["bare"] + ([] if args.no_docker_variant else ["bare+docker"]) + ["floe"]
    runs: dict[str, list[Run]] = {k: [] for k in kinds}
    kept: list[str] = []
    ok = False
    tags: set[str] = set()
    try:
        t = server.http.post("/v1/clustertemplates", json={
            "name": "bench-slurm", "coe": "slurm", "flavor_id": "m1.tiny", "master_flavor_id": "m1.small"})
        t.raise_for_status()
        template = t.json()["uuid"]
        # Warm-up (not measured): floe's first cluster makes its registry and its base image.
        warm = floe_create(server, template, "warmup", 1)
        tags.add(warm.tag)
        floe_delete(server, warm)
        for i in range(args.repeat):
            last = args.keep and i == args.repeat - 1
            for kind in kinds:
                if kind == "floe":
                    c = floe_create(server, template, f"slurm{i}", args.nodes)
                    tags.add(c.tag)
                    conf = home / "nodes" / c.tag / ".cluster" / "slurm.conf"
                    run = Run(kind, c.created, c.steps, sruns(conf, args.nodes, args.sruns), server_cpu=c.cpu)
                    if last:
                        kept.append(f"floe: SLURM_CONF={conf}  (FLOE_HOME={home} FLOE_URL={server.url}; "
                                    f"floe cluster delete slurm{i} --wait; kill {server.proc.pid}; "
                                    f"floe cleanup --all)")
                    else:
                        run.delete = floe_delete(server, c)
                else:
                    bare = BareCluster(args.nodes, docker=kind == "bare+docker")
                    try:
                        took = bare.start()
                        run = Run(kind, took, dict(bare.phases), sruns(bare.conf, args.nodes, args.sruns))
                    except BaseException:
                        bare.stop()
                        raise
                    if last:
                        kept.append(f"{kind}: SLURM_CONF={bare.conf}  (pids {[p.pid for p in bare.procs]}, "
                                    f"netns {BARE_PREFIX}-*, bridge {bare.bridge}, FORWARD rule '{bare.comment}')")
                    else:
                        bare.stop()
                        if left := bare.leftovers():
                            raise RuntimeError(f"the bare cluster left {left}")
                runs[kind].append(run)
                print(f"repeat {i + 1} {kind:>11}: create {run.create:6.2f} s   "
                      f"srun -N {args.nodes} median {median(run.srun['all']) * 1000:6.1f} ms   "
                      f"srun -N 1 median {median(run.srun['one']) * 1000:6.1f} ms   "
                      f"back-to-back -N {args.nodes} p90 {p90(run.srun['all_back_to_back']) * 1000:6.0f} ms   "
                      + "  ".join(f"{k} {v:.2f}" for k, v in run.phases.items()), flush=True)
        ok = True
    finally:
        if not args.keep or not ok:
            server.close()  # and `floe cleanup --all` for this home
            left = {t: floe_leftovers(home, t) for t in tags | set(_tags_of(home))}
            left = {t: v for t, v in left.items() if v}
            if procs := _processes(str(home)):
                left["processes"] = procs
            shutil.rmtree(home, ignore_errors=True)
            if left:
                print(f"LEFT BEHIND by floe: {left}", file=sys.stderr)
                sys.exit(1)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    summary = {k: summarize(v) for k, v in runs.items() if v}
    print(f"\n{args.nodes} compute nodes + 1 controller, {args.repeat} repeats, {args.sruns} sruns each "
          "(medians; srun latencies over every run)")
    print(f"| | create (s) | srun -N {args.nodes} true, idle cluster: median / p90 (ms) | "
          f"srun -N 1 true, idle: median / p90 (ms) | srun -N {args.nodes} back to back: median / p90 (ms) |")
    print("|---|---:|---:|---:|---:|")
    for k, s in summary.items():
        print(f"| {k} | {s['create_median']:.2f} | "
              f"{s['srun_all_median'] * 1000:.0f} / {s['srun_all_p90'] * 1000:.0f} | "
              f"{s['srun_one_median'] * 1000:.0f} / {s['srun_one_p90'] * 1000:.0f} | "
              f"{s['srun_all_back_to_back_median'] * 1000:.0f} / {s['srun_all_back_to_back_p90'] * 1000:.0f} |")
    for k, s in summary.items():
        print(f"{k} phases: " + "  ".join(f"{p} {v:.2f}" for p, v in s["phases_median"].items()))
    if "floe" in summary and "delete_median" in summary["floe"]:
        print(f"floe delete median {summary['floe']['delete_median']:.2f} s, server CPU during create "
              f"{summary['floe']['server_cpu_median']:.2f} s")
    if kept:
        print("\nkept (--keep):\n  " + "\n  ".join(kept))
    if args.json:
        Path(args.json).write_text(json.dumps({"nodes": args.nodes, "repeat": args.repeat, "sruns": args.sruns,
                                               "summary": summary,
                                               "runs": {k: [asdict(r) for r in v] for k, v in runs.items()}},
                                              indent=2))


def _tags_of(home: Path) -> list[str]:
    return os.listdir(home / "nodes") if (home / "nodes").exists() else []


if __name__ == "__main__":
    main()

"""Per-node cgroups: one `floe-<tag>-<node>` cgroup per hierarchy holds a node's daemons and containers.

Layout (same in every hierarchy, at its root like docker's own `/docker`):
`/floe-<tag>-<node>/daemon` holds unshare's child, docker-init, dockerd and containerd;
dockerd's `cgroup-parent` puts containers in `/floe-<tag>-<node>/<id>`. Flavor limits
sit on `/floe-<tag>-<node>`, so they cover the whole node, and the cgroup tells which
processes are the node's (to kill them, and to know when they are all gone).
The host's cgroup mounts are read rather than assumed: they are also re-mounted
as-is inside each node.

Flavor (see docs/flavors-local.md): `cpu.cfs_quota_us` caps the node's CPU time, its
cpuset pins it to as many CPUs as it has vCPUs (which is what `docker info` counts),
`memory.limit_in_bytes` caps its memory, and on a host with GPUs the devices cgroup
denies it every GPU device that is not its own (set_devices).
"""

from __future__ import annotations

import errno
import functools
import hashlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = "/sys/fs/cgroup"
DAEMON_LEAF = "daemon"
CFS_PERIOD_US = 100_000


@dataclass(frozen=True)
class Mount:
    """One filesystem mounted at or under /sys/fs/cgroup on the host."""

    fstype: str  # "tmpfs", "cgroup" (v1) or "cgroup2"
    target: str
    options: str  # what `mount -o` needs to mount it again
    controllers: frozenset[str]


def _kernel_controllers() -> set[str]:
    try:
        lines = Path("/proc/cgroups").read_text().splitlines()[1:]
    except OSError:
        return set()
    return {line.split()[0] for line in lines if line.strip()}


@functools.cache
def mounts() -> tuple[Mount, ...]:
    """The host's cgroup mounts in mount order (parents first)."""
    known = _kernel_controllers()
    found: list[Mount] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        target, fstype, super_opts = fields[4], rfields[0], rfields[2].split(",")
        if not (target == CGROUP_ROOT or target.startswith(CGROUP_ROOT + "/")):
            continue
        if fstype not in ("tmpfs", "cgroup", "cgroup2"):
            continue
        opts = [o for o in super_opts if o not in ("rw", "ro")]
        controllers = frozenset(o for o in opts if o in known) if fstype == "cgroup" else frozenset()
        if fstype == "cgroup2":
            try:
                controllers = frozenset(Path(target, "cgroup.controllers").read_text().split())
            except OSError:
                controllers = frozenset()
        found = [m for m in found if m.target != target]  # a later mount hides an earlier one
        found.append(Mount(fstype, target, ",".join(opts) or "rw", controllers))
    return tuple(found)


def hierarchies() -> list[Mount]:
    """Mounted cgroup hierarchies (v1 and v2)."""
    return [m for m in mounts() if m.fstype in ("cgroup", "cgroup2")]


def _daemon_hierarchies() -> list[Mount]:
    # Every hierarchy, the v1 cpuset included: prepare gives the node's cpuset cgroups their
    # CPUs and memory nodes (a fresh one has none, and nothing could join it).
    return hierarchies()


def _cpuset_mount() -> Mount | None:
    for m in hierarchies():
        if "cpuset" in m.controllers:
            return m
    return None


def parse_cpu_list(text: str) -> list[int]:
    """CPUs of a kernel CPU list such as "0-3,8,10-11"."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return sorted(cpus)


def host_cpus() -> list[int]:
    """The CPUs a node's cgroup may use: the root cpuset's (at the top of the hierarchy, like the nodes')."""
    mount = _cpuset_mount()
    if mount is not None:
        name = "cpuset.cpus" if mount.fstype == "cgroup" else "cpuset.cpus.effective"
        try:
            cpus = parse_cpu_list(Path(mount.target, name).read_text())
            if cpus:
                return cpus
        except (OSError, ValueError):
            pass
    return sorted(os.sched_getaffinity(0))


def _cpus_in_use(exclude: str) -> dict[int, int]:
    """How many other floe nodes are pinned to each CPU (from their cpuset cgroups)."""
    mount = _cpuset_mount()
    used: dict[int, int] = {}
    if mount is None or mount.fstype != "cgroup":
        return used
    try:
        entries = [e for e in os.scandir(mount.target) if e.is_dir() and e.name.startswith("floe-")]
    except OSError:
        return used
    for entry in entries:
        if entry.name == exclude:
            continue
        try:
            for cpu in parse_cpu_list(Path(entry.path, "cpuset.cpus").read_text()):
                used[cpu] = used.get(cpu, 0) + 1
        except (OSError, ValueError):
            continue
    return used


def choose_cpus(name: str, cpus: float | None) -> list[int]:
    """The host CPUs node cgroup `name` is pinned to: ceil(cpus) of them, every one if None or more than the host has.

    The least used CPUs (by other nodes' cpusets) first, ties broken by a hash of the name so
    that nodes started together spread over the CPUs rather than all taking CPU 0.
    """
    host = host_cpus()
    if cpus is None or math.ceil(cpus) >= len(host):
        return host
    count = max(1, math.ceil(cpus))
    used = _cpus_in_use(name)
    start = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % len(host)
    order = host[start:] + host[:start]
    ranked = sorted(order, key=lambda c: used.get(c, 0))  # stable: the hash order breaks ties
    return sorted(ranked[:count])


def _cpu_list(cpus: list[int]) -> str:
    return ",".join(str(c) for c in cpus)


def _set_cpuset(top: Path, leaf: Path, cpus: str) -> None:
    """Give the node's v1 cpuset cgroups their CPUs and the root's memory nodes.

    A child's CPUs must stay within its parent's: growing goes parent first, shrinking
    (a leftover leaf with more CPUs) child first, so try one order and then the other.
    """
    try:
        mems = Path(top.parent, "cpuset.mems").read_text().strip()
    except OSError:
        mems = "0"
    for d in (top, leaf):
        _write(d / "cpuset.mems", mems)
    if not (_write(top / "cpuset.cpus", cpus) and _write(leaf / "cpuset.cpus", cpus)):
        _write(leaf / "cpuset.cpus", cpus)
        _write(top / "cpuset.cpus", cpus)


def _write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
        return True
    except OSError:
        return False


def prepare(
    name: str, cpus: float | None, memory_mb: int | None, cpu_list: list[int] | None = None
) -> list[str]:
    """Create the node's cgroups, set its limits; return the cgroup.procs files its daemons join.

    `cpu_list`: the CPUs of its cpuset (choose_cpus), every host CPU if None.
    """
    procs: list[str] = []
    pinned = _cpu_list(cpu_list or host_cpus())
    for mount in _daemon_hierarchies():
        top = Path(mount.target, name)
        leaf = top / DAEMON_LEAF
        leaf.mkdir(parents=True, exist_ok=True)
        if mount.fstype == "cgroup2":
            # Pure v2: limits need the controllers delegated to the node's cgroup.
            wanted = {"cpu", "memory", "cpuset"} & mount.controllers
            if wanted and (cpus is not None or memory_mb is not None):
                _write(top / "cgroup.subtree_control", " ".join(f"+{c}" for c in sorted(wanted)))
            _write(top / "cpu.max", f"{int(cpus * CFS_PERIOD_US)} {CFS_PERIOD_US}" if cpus else "max")
            _write(top / "memory.max", str(memory_mb * 1024 * 1024) if memory_mb else "max")
            if "cpuset" in mount.controllers:
                _write(top / "cpuset.cpus", pinned)
        else:
            if "cpuset" in mount.controllers:
                _set_cpuset(top, leaf, pinned)
            if "cpu" in mount.controllers:
                _write(top / "cpu.cfs_period_us", str(CFS_PERIOD_US))
                _write(top / "cpu.cfs_quota_us", str(int(cpus * CFS_PERIOD_US)) if cpus else "-1")
            if "memory" in mount.controllers:
                _write(top / "memory.limit_in_bytes", str(memory_mb * 1024 * 1024) if memory_mb else "-1")
        procs.append(str(leaf / "cgroup.procs"))
    return procs


def daemon_procs_files(name: str) -> list[Path]:
    """The cgroup.procs files that the node's daemons joined (prepare made them), in every hierarchy."""
    return [p for m in _daemon_hierarchies() if (p := Path(m.target, name, DAEMON_LEAF, "cgroup.procs")).exists()]


def has_devices_controller() -> bool:
    """Whether the host has a v1 devices hierarchy (v2 confines devices with eBPF, which floe does not do)."""
    return any(m.fstype == "cgroup" and "devices" in m.controllers for m in hierarchies())


def set_devices(name: str, deny: list[str]) -> bool:
    """Deny the node (and, by inheritance, its containers) the devices of `deny` ("c MAJOR:MINOR rwm").

    The node's devices cgroup stays default-allow with these exceptions, rather than a
    whitelist: a container's cgroup copies its parent's exceptions, even a privileged
    container's (which a whitelist parent would refuse), and a device driver loaded later
    still works in the nodes. The kernel's devices.list shows "a *:* rwm" in this mode:
    what a node can open is checked by opening (see tests/providers/test_gpus.py).
    Call on a fresh cgroup (prepare after remove): allowing again is not done here.
    Returns False if there is no v1 devices hierarchy or a rule was refused.
    """
    done = has_devices_controller()
    for mount in hierarchies():
        if mount.fstype != "cgroup" or "devices" not in mount.controllers:
            continue
        top = Path(mount.target, name)
        top.mkdir(exist_ok=True)
        for rule in deny:
            done = _write(top / "devices.deny", rule) and done
    return done


def _tree(mount: Mount, name: str) -> list[str]:
    """Directories of the node's cgroup in one hierarchy, deepest first."""
    top = os.path.join(mount.target, name)
    if not os.path.isdir(top):
        return []
    return [dirpath for dirpath, _, _ in os.walk(top, topdown=False)]


def members(name: str) -> set[int]:
    """Every process in the node's cgroups (daemons and containers), in any hierarchy."""
    pids: set[int] = set()
    for mount in hierarchies():
        for directory in _tree(mount, name):
            try:
                text = Path(directory, "cgroup.procs").read_text()
            except OSError:
                continue
            pids.update(int(p) for p in text.split())
    return pids


def remove(name: str, timeout: float = 15.0) -> bool:
    """rmdir the node's cgroups in every hierarchy, waiting while exiting processes still hold them."""
    deadline = time.monotonic() + timeout
    for mount in hierarchies():
        for directory in _tree(mount, name):
            while True:
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        return False
                    time.sleep(0.005)
    return True


def names() -> set[str]:
    """Names of the top-level cgroups in every hierarchy (to find floe's)."""
    found: set[str] = set()
    for mount in hierarchies():
        try:
            found.update(e.name for e in os.scandir(mount.target) if e.is_dir())
        except OSError:
            continue
    return found


# -- usage (what a node or one of its containers uses; see providers/local/stats.py) ------------------

# v1 writes "unlimited" as the largest page-aligned long; anything this large is no limit.
_UNLIMITED = 1 << 62


@dataclass(frozen=True)
class Usage:
    """What one cgroup (and its descendants) has used; limits of 0 mean unlimited."""

    cpu_seconds: float
    cpu_limit_cores: float
    memory_bytes: int  # working set: usage less inactive page cache (what cAdvisor reports)
    memory_limit_bytes: int


@functools.cache
def _controller_mount(controller: str) -> Mount | None:
    """The hierarchy that holds `controller` (v1), else the v2 hierarchy if it has it."""
    v2 = None
    for m in hierarchies():
        if m.fstype == "cgroup" and controller in m.controllers:
            return m
        if m.fstype == "cgroup2" and controller in m.controllers:
            v2 = m
    return v2


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _stat_field(text: str | None, key: str) -> int:
    for line in (text or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


def _limit(value: int) -> int:
    return 0 if value <= 0 or value >= _UNLIMITED else value


def usage(path: str) -> Usage | None:
    """Usage of cgroup `path` ("floe-<tag>-<node>" or "floe-<tag>-<node>/<container id>"), None if it
    does not exist. A handful of small file reads: cheap enough for every scrape."""
    cpu_m, acct_m, mem_m = _controller_mount("cpu"), _controller_mount("cpuacct"), _controller_mount("memory")
    if mem_m is not None and mem_m.fstype == "cgroup2":
        base = Path(mem_m.target, path)
        stat = _read(base / "cpu.stat")
        if stat is None and not base.is_dir():
            return None
        quota, _, period = (_read(base / "cpu.max") or "max").partition(" ")
        current = int((_read(base / "memory.current") or "0").strip() or 0)
        mem_stat = _read(base / "memory.stat")
        high = (_read(base / "memory.max") or "max").strip()
        return Usage(
            cpu_seconds=_stat_field(stat, "usage_usec") / 1e6,
            cpu_limit_cores=int(quota) / int(period) if quota.strip() != "max" and period.strip() else 0.0,
            memory_bytes=max(0, current - _stat_field(mem_stat, "inactive_file")),
            memory_limit_bytes=0 if high == "max" else _limit(int(high)),
        )
    acct = _read(Path(acct_m.target, path, "cpuacct.usage")) if acct_m is not None else None
    mem_dir = Path(mem_m.target, path) if mem_m is not None else None
    current = _read(mem_dir / "memory.usage_in_bytes") if mem_dir is not None else None
    if acct is None and current is None:
        return None
    cores = 0.0
    if cpu_m is not None:
        quota = int((_read(Path(cpu_m.target, path, "cpu.cfs_quota_us")) or "-1").strip())
        period = int((_read(Path(cpu_m.target, path, "cpu.cfs_period_us")) or "0").strip() or 0)
        cores = quota / period if quota > 0 and period > 0 else 0.0
    mem_stat = _read(mem_dir / "memory.stat") if mem_dir is not None else None
    limit = _read(mem_dir / "memory.limit_in_bytes") if mem_dir is not None else None
    return Usage(
        cpu_seconds=int((acct or "0").strip()) / 1e9,
        cpu_limit_cores=cores,
        memory_bytes=max(0, int((current or "0").strip()) - _stat_field(mem_stat, "total_inactive_file")),
        memory_limit_bytes=_limit(int((limit or "0").strip())),
    )


def children(name: str) -> list[str]:
    """The sub-cgroups of node cgroup `name` other than its daemons' (its containers', named by id)."""
    mount = _controller_mount("memory") or _controller_mount("cpuacct")
    if mount is None:
        return []
    try:
        return sorted(e.name for e in os.scandir(Path(mount.target, name)) if e.is_dir() and e.name != DAEMON_LEAF)
    except OSError:
        return []

"""Per-node cgroups: one `floe-<tag>-<node>` cgroup per hierarchy holds a node's daemons and containers.

Layout (same in every hierarchy, at its root like docker's own `/docker`):
`/floe-<tag>-<node>/daemon` holds unshare's child, docker-init, dockerd and containerd;
dockerd's `cgroup-parent` puts containers in `/floe-<tag>-<node>/<id>`. Flavor limits
sit on `/floe-<tag>-<node>`, so they cover the whole node, and the cgroup tells which
processes are the node's (to kill them, and to know when they are all gone).
The host's cgroup mounts are read rather than assumed: they are also re-mounted
as-is inside each node.
"""

from __future__ import annotations

import errno
import functools
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
    # A fresh v1 cpuset cgroup has no CPUs or memory nodes, so nothing can join it;
    # docker copies them for its own cgroups, floe simply leaves the daemons out of it.
    return [m for m in hierarchies() if not (m.fstype == "cgroup" and "cpuset" in m.controllers)]


def _write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
        return True
    except OSError:
        return False


def prepare(name: str, cpus: float | None, memory_mb: int | None) -> list[str]:
    """Create the node's cgroups, set its limits; return the cgroup.procs files its daemons join."""
    procs: list[str] = []
    for mount in _daemon_hierarchies():
        top = Path(mount.target, name)
        leaf = top / DAEMON_LEAF
        leaf.mkdir(parents=True, exist_ok=True)
        if mount.fstype == "cgroup2":
            # Pure v2: limits need the controllers delegated to the node's cgroup.
            wanted = {"cpu", "memory"} & mount.controllers
            if wanted and (cpus is not None or memory_mb is not None):
                _write(top / "cgroup.subtree_control", " ".join(f"+{c}" for c in sorted(wanted)))
            _write(top / "cpu.max", f"{int(cpus * CFS_PERIOD_US)} {CFS_PERIOD_US}" if cpus else "max")
            _write(top / "memory.max", str(memory_mb * 1024 * 1024) if memory_mb else "max")
        else:
            if "cpu" in mount.controllers:
                _write(top / "cpu.cfs_period_us", str(CFS_PERIOD_US))
                _write(top / "cpu.cfs_quota_us", str(int(cpus * CFS_PERIOD_US)) if cpus else "-1")
            if "memory" in mount.controllers:
                _write(top / "memory.limit_in_bytes", str(memory_mb * 1024 * 1024) if memory_mb else "-1")
        procs.append(str(leaf / "cgroup.procs"))
    return procs


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

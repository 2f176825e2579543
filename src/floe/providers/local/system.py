"""Host helpers: binaries, subprocesses (argument lists only), /proc and detached children."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from floe.providers.base import ProviderError

# Daemons live in sbin on Debian (dockerd, iptables); the floe server may run with a
# user PATH that lacks it, so look there explicitly.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The Popen objects of the nodes and registries this process started: kept so their
# exit is reaped (no zombies in a long-running server) whichever provider stops them.
_children: dict[int, subprocess.Popen] = {}
_children_lock = threading.Lock()


def which(name: str) -> str | None:
    """Absolute path of a binary, looking in the system directories too."""
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}:{SYSTEM_PATH}")


def binary(name: str) -> str:
    """Absolute path of a binary, or ProviderError naming the missing one."""
    path = which(name)
    if path is None:
        raise ProviderError(f"{name} not found (looked in PATH and {SYSTEM_PATH})")
    return path


def clean_env() -> dict[str, str]:
    """Environment for the daemons and tools floe starts: no proxies, no DOCKER_* leaks."""
    return {"PATH": SYSTEM_PATH, "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}


def run(args: Sequence[str], *, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a command from an argument list (never a shell); ProviderError on failure if `check`."""
    try:
        proc = subprocess.run(
            list(args), capture_output=True, text=True, timeout=timeout, env=clean_env(), check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProviderError(f"{args[0]} failed: {exc}") from None
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise ProviderError(f"{' '.join(args[:3])}… exited {proc.returncode}: {detail}")
    return proc


def spawn_detached(args: Sequence[str], log: Path, cwd: Path) -> subprocess.Popen:
    """Start a daemon in its own session (it outlives floe), output appended to `log`."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=clean_env(),
            start_new_session=True,
            close_fds=True,
        )
    with _children_lock:
        _children[proc.pid] = proc
    return proc


def cmdline(pid: int) -> list[str]:
    """argv of a process; empty if it is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def running(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie; reaps it if it is our exited child."""
    with _children_lock:
        child = _children.get(pid)
    if child is not None and child.poll() is not None:
        with _children_lock:
            _children.pop(pid, None)
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the last ')' (the command name may contain spaces).
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def read_pid(pidfile: Path) -> int | None:
    """The pid stored in a pidfile, or None."""
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def write_file(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    """Write atomically (temp file + rename) with the given permissions from the start."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    # Before writing: a leftover temp file keeps its old mode, and the umask may have
    # narrowed the one given to open().
    os.fchmod(fd, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def pids_referring_to(text: str) -> dict[int, list[str]]:
    """Processes whose argv mentions `text` (e.g. a node directory), with their argv."""
    found: dict[int, list[str]] = {}
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        argv = cmdline(int(entry.name))
        if any(text in arg for arg in argv):
            found[int(entry.name)] = argv
    return found


def pids_with_path(prefix: str) -> dict[int, list[str]]:
    """Processes with an argument that is a path under `prefix` (alone or after an `=`), with their argv.

    Unlike a substring match, /srv/floe/nodes/ never matches /data/srv/floe/nodes/…: another
    home whose path merely ends like this one is not this one.
    """
    return {
        pid: argv for pid, argv in pids_referring_to(prefix).items()
        if any(arg.startswith(prefix) or f"={prefix}" in arg for arg in argv)
    }


def kill(pids: Iterable[int]) -> None:
    """SIGKILL each pid (callers have checked they are floe's); gone already is fine."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_gone(pids: Iterable[int], timeout: float = 15.0) -> bool:
    """Wait until none of `pids` runs; True if they all went within `timeout`."""
    pending = set(pids)
    deadline = time.monotonic() + timeout
    while pending:
        for pid in list(pending):
            with _children_lock:
                child = _children.get(pid)
            if child is not None:
                try:
                    child.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    return False
                with _children_lock:
                    _children.pop(pid, None)
            if not running(pid):
                pending.discard(pid)
        if pending:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
    return True


def log_tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, for error messages."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


# The kernel's ARP table is one table for every network namespace, with one limit
# (gc_thresh3, 1024 by default): past it no new neighbour can be resolved anywhere and
# connections fail with "no route to host". A swarm is a full mesh (every node gossips with
# every other), so a cluster of N nodes needs about N² entries: 64 nodes need ~4,000.
NEIGH_DIR = Path("/proc/sys/net/ipv4/neigh/default")
_neigh_lock = threading.Lock()


def ensure_neighbour_capacity(entries: int) -> int | None:
    """Raise the host's ARP table limits so that `entries` fit (never lowers them).

    Returns the new gc_thresh3 if it was raised, None if it was already large enough.
    """
    with _neigh_lock:
        current = int((NEIGH_DIR / "gc_thresh3").read_text())
        if entries <= current:
            return None
        # Headroom (the host's own neighbours, containers): powers of two, so the value is stable.
        thresh3 = 1 << (entries * 2 - 1).bit_length()
        try:
            # gc_thresh2 is the soft limit (entries past it are reclaimed after 5 s): half the hard one.
            for name, value in (("gc_thresh3", thresh3), ("gc_thresh2", thresh3 // 2)):
                old = int((NEIGH_DIR / name).read_text())
                if value > old:
                    (NEIGH_DIR / name).write_text(f"{value}\n")
        except OSError as exc:
            raise ProviderError(
                f"the host's ARP table holds {current} entries and these clusters need about {entries}; "
                f"raising net.ipv4.neigh.default.gc_thresh3 failed: {exc}"
            ) from None
        return thresh3

"""Processes floe starts on the host: detached daemons, their pids, /proc lookups, stopping them."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from floe.host.commands import clean_env

# The Popen objects of the nodes and registries this process started: kept so their
# exit is reaped (no zombies in a long-running server) whichever provider stops them.
_children: dict[int, subprocess.Popen] = {}


_children_lock = threading.Lock()


def spawn_detached(args: Sequence[str], log: Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a daemon in its own session (it outlives floe), output appended to `log`; `env`
    replaces the clean environment."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env if env is not None else clean_env(),
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


def terminate(pids: Iterable[int], timeout: float = 15.0) -> None:
    """SIGTERM each pid (callers have checked they are floe's), SIGKILL what is left after `timeout`."""
    targets = set(pids)
    for pid in targets:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    if not wait_gone(targets, timeout):
        kill(targets)
        wait_gone(targets, 5.0)

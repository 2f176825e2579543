"""Programs beside a node's dockerd (a COE's daemons) and a cluster's own daemons on the host.

A node daemon is started as

    nsenter -t INNER -m -u -n -p  →(fork) sh (joins the node's cgroups) →(exec) PROGRAM …

where INNER is the node's pid 1 (docker-init): the program lives in the node's network, mount,
UTS and pid namespaces and its cgroups, so the node's flavor limits it and it dies with the
node (the pid namespace's init takes every process in it along). floe keeps the nsenter
process's pid in the node's directory, under `daemons/<name>.pid`; the marker `floe-daemon-<name>`
(the shell's $0) tells it from a recycled pid.

A cluster daemon (e.g. the cluster's munged, which the host's Slurm clients use) is a plain host
process with its pidfile in the cluster's files directory; purge_cluster finds it by its argv.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from floe.host import cgroups, commands, processes
from floe.providers.base import ProviderError

DAEMON_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
STOP_TIMEOUT = 10.0

# Joins the node's cgroups (the cgroup.procs files before "--"), then runs the program.
ENTER_SCRIPT = r"""
while [ "$1" != "--" ]; do echo 0 > "$1" 2>/dev/null || true; shift; done; shift
exec "$@"
"""


def check_daemon_name(name: str) -> str:
    if not DAEMON_NAME.match(name or ""):
        raise ProviderError(f"invalid daemon name {name!r}")
    return name


def inner_pid(unshare_pid: int) -> int | None:
    """The node's pid 1 (the unshare process's only child), as the host numbers it."""
    try:
        children = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def enter_command(inner: int, cgroup: str, marker: str, argv: list[str]) -> list[str]:
    procs = [str(p) for p in cgroups.daemon_procs_files(cgroup)]
    return [
        commands.binary("nsenter"), "-t", str(inner), "-m", "-u", "-n", "-p", "--",
        "/bin/sh", "-c", ENTER_SCRIPT, marker, *procs, "--", *argv,
    ]


def _env(env: dict[str, str] | None) -> dict[str, str]:
    return {**commands.clean_env(), **(env or {})}


def run_in_node(inner: int, cgroup: str, argv: list[str], timeout: float,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    args = enter_command(inner, cgroup, "floe-node-run", argv)
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=_env(env), check=False)
    except subprocess.TimeoutExpired as exc:
        raise ProviderError(f"{argv[0]} in the node did not finish within {timeout:.0f}s", temporary=True) from exc
    except OSError as exc:
        raise ProviderError(f"{argv[0]} could not run in the node: {exc}") from None


def _marker(daemon: str) -> str:
    return f"floe-daemon-{daemon}"


def live_node_daemon(pidfile: Path, daemon: str) -> int | None:
    """The pid recorded in `pidfile` if it is still that node daemon's nsenter process."""
    pid = processes.read_pid(pidfile)
    if pid is None or not processes.running(pid):
        return None
    return pid if _marker(daemon) in processes.cmdline(pid) else None


def live_host_daemon(directory: Path, daemon: str) -> int | None:
    """The cluster daemon's pid if it runs (its argv names the cluster's directory)."""
    pid = processes.read_pid(directory / f"{daemon}.pid")
    if pid is None or not processes.running(pid):
        return None
    return pid if any(str(directory) in part for part in processes.cmdline(pid)) else None


def start_node_daemon(directory: Path, inner: int, cgroup: str, daemon: str, argv: list[str],
                      env: dict[str, str] | None = None) -> bool:
    """Start the daemon in the node unless it runs (pidfile and log in `directory`)."""
    directory.mkdir(parents=True, exist_ok=True)
    pidfile = directory / f"{daemon}.pid"
    if live_node_daemon(pidfile, daemon) is not None:
        return False
    args = enter_command(inner, cgroup, _marker(daemon), argv)
    proc = processes.spawn_detached(args, directory / f"{daemon}.log", directory, env=_env(env))
    commands.write_file(pidfile, f"{proc.pid}\n")
    return True


def start_host_daemon(directory: Path, daemon: str, argv: list[str]) -> bool:
    """Start a host daemon unless it runs; its argv must name `directory` (how it is recognised)."""
    if not any(str(directory) in part for part in argv):
        raise ProviderError(f"the {daemon} daemon's command line must name {directory}")
    directory.mkdir(parents=True, exist_ok=True)
    if live_host_daemon(directory, daemon) is not None:
        return False
    proc = processes.spawn_detached(argv, directory / f"{daemon}.log", directory)
    commands.write_file(directory / f"{daemon}.pid", f"{proc.pid}\n")
    return True


def stop(pid: int | None, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the daemon (and the program under an nsenter), SIGKILL what is left after `timeout`."""
    if pid is None:
        return
    processes.terminate({pid} | _descendants(pid), timeout)


def _descendants(pid: int) -> set[int]:
    out: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            kids = [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            continue
        out.update(kids)
        todo.extend(kids)
    return out

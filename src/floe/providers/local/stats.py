"""What a local node uses, read from the host: its cgroups, its network namespace, its disk; and its
dockerd's own metrics, fetched from inside the node.

Every number comes from files the kernel keeps (no agent in the node, no `docker stats`):
- CPU and memory: the node's cgroup `floe-<tag>-<node>` (host/cgroups.py `usage`), which holds
  its daemons and, below it, one cgroup per container (dockerd's cgroup-parent);
- network: `/proc/<pid>/net/dev` of the node's first process, which shows the counters of the
  node's own namespace; only floe's interfaces (eth0, eth1, …) count, not docker's bridges and
  veths inside the node (their traffic would be counted twice);
- disk: statvfs of the node's data-root as the node sees it (`/proc/<pid>/root/…`): its own disk
  image when its flavor has a disk size, else the host filesystem that holds it.
Containers are named from their node's dockerd (one container list per node, asked again only
when a container appears that it has not named).

dockerd's metrics: each node's dockerd listens for them on 127.0.0.1:METRICS_PORT inside the node's
network namespace (daemon.json `metrics-addr`), which nothing outside the node can reach; floe
fetches them through a socket it makes in that namespace (host/netns.py `socket_in`). Inside the
node, a container with host networking shares that loopback: an iptables rule in the node's
namespace (`guard_metrics_port`) resets every connection to the port whose socket does not carry
METRICS_MARK, which floe's socket does and which only CAP_NET_ADMIN can set (a container lacks it
by default; the restricted node policy refuses adding it).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import threading
import time
from pathlib import Path

import httpx

from floe.host import cgroups, commands, netns
from floe.providers.base import ContainerStats, InterfaceStats, NodeStats, ProviderError

METRICS_HOST = "127.0.0.1"
METRICS_PORT = 9323
METRICS_TIMEOUT = 5.0
METRICS_MARK = 0x466C6F65  # "Floe": the socket mark of floe's connections to dockerd's metrics
# The interfaces floe gives a node (management eth0, project networks eth1, …).
NODE_INTERFACE = re.compile(r"eth[0-9]+")


def metrics_address() -> str:
    """daemon.json's `metrics-addr` of a node (loopback of the node's own namespace)."""
    return f"{METRICS_HOST}:{METRICS_PORT}"


def interface_counters(pid: int) -> tuple[InterfaceStats, ...]:
    """Byte counters of floe's interfaces in the network namespace of process `pid` (/proc/PID/net/dev)."""
    try:
        text = Path(f"/proc/{pid}/net/dev").read_text()
    except OSError:
        return ()
    found = []
    for line in text.splitlines()[2:]:
        name, _, rest = line.partition(":")
        name, fields = name.strip(), rest.split()
        if NODE_INTERFACE.fullmatch(name) and len(fields) >= 9:
            found.append(InterfaceStats(name, int(fields[0]), int(fields[8])))
    return tuple(sorted(found, key=lambda i: (len(i.name), i.name)))


def disk_usage(pid: int, data_root: Path) -> tuple[int, int]:
    """(used, size) bytes of the filesystem holding the node's data-root, as the node sees it."""
    try:
        st = os.statvfs(f"/proc/{pid}/root{data_root}")
    except OSError:
        return 0, 0
    size = st.f_blocks * st.f_frsize
    return size - st.f_bfree * st.f_frsize, size


class ContainerNames:
    """Container id → name per node, from its dockerd's container list (asked only for new ids)."""

    def __init__(self) -> None:
        self._names: dict[Path, dict[str, str]] = {}
        self._lock = threading.Lock()

    def names(self, sock: Path, ids: list[str]) -> dict[str, str]:
        with self._lock:
            known = self._names.get(sock, {})
        if all(i in known for i in ids):
            return known
        fresh = _list_containers(sock)
        with self._lock:
            self._names[sock] = fresh
        return fresh

    def forget(self, sock: Path) -> None:
        with self._lock:
            self._names.pop(sock, None)


def _list_containers(sock: Path) -> dict[str, str]:
    transport = httpx.HTTPTransport(uds=str(sock), verify=False)
    try:
        with httpx.Client(transport=transport, timeout=5.0, trust_env=False) as client:
            resp = client.get("http://docker/containers/json", params={"all": "1"})
            resp.raise_for_status()
            rows = resp.json()
    except (httpx.HTTPError, ValueError):
        return {}
    return {r["Id"]: (r.get("Names") or ["/" + r["Id"][:12]])[0].lstrip("/") for r in rows if "Id" in r}


def read_node_stats(pid: int, cgroup: str, data_root: Path, sock: Path, names: ContainerNames) -> NodeStats | None:
    """A reading of the running node whose first process is `pid`; None if its cgroup is gone."""
    now = time.time()
    node = cgroups.usage(cgroup)
    if node is None:
        return None
    ids = cgroups.children(cgroup)
    named = names.names(sock, ids) if ids else {}
    containers = []
    for cid in ids:
        u = cgroups.usage(f"{cgroup}/{cid}")
        if u is not None:
            containers.append(ContainerStats(cid, named.get(cid, cid[:12]), u.cpu_seconds, u.memory_bytes))
    used, size = disk_usage(pid, data_root)
    return NodeStats(
        time=now, cpu_seconds=node.cpu_seconds, cpu_limit_cores=node.cpu_limit_cores,
        memory_bytes=node.memory_bytes, memory_limit_bytes=node.memory_limit_bytes,
        disk_used_bytes=used, disk_size_bytes=size, interfaces=interface_counters(pid),
        containers=tuple(containers),
    )


def metrics_guard_rule() -> list[str]:
    """The node's INPUT rule: connections to the metrics port without floe's mark are reset."""
    return [
        "INPUT", "-i", "lo", "-p", "tcp", "--dport", str(METRICS_PORT), "--syn",
        "-m", "mark", "!", "--mark", hex(METRICS_MARK), "-m", "comment", "--comment", "floe-metrics",
        "-j", "REJECT", "--reject-with", "tcp-reset",
    ]


def guard_metrics_port(netns_name: str) -> None:
    """Add the metrics guard to the node's namespace unless it is there (the node's own iptables:
    it goes with the namespace)."""
    base = [commands.binary("nsenter"), f"--net={netns.NETNS_DIR / netns_name}", "--",
            commands.binary("iptables"), "-w"]
    rule = metrics_guard_rule()
    if commands.run([*base, "-C", *rule], check=False).returncode != 0:
        commands.run([*base, "-I", rule[0], "1", *rule[1:]])


def has_metrics_address(config: Path) -> bool:
    """Whether the node's daemon.json gives dockerd a metrics address (nodes started before it had one do not)."""
    try:
        return bool(json.loads(config.read_text()).get("metrics-addr"))
    except (OSError, ValueError):
        return False


def fetch_daemon_metrics(netns_name: str, node: str) -> bytes:
    """GET /metrics of the node's dockerd on 127.0.0.1:METRICS_PORT inside its network namespace."""
    sock = netns.socket_in(netns_name)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, METRICS_MARK)  # passes the node's guard
        sock.settimeout(METRICS_TIMEOUT)
        sock.connect((METRICS_HOST, METRICS_PORT))
        conn = http.client.HTTPConnection(METRICS_HOST, METRICS_PORT, timeout=METRICS_TIMEOUT)
        conn.sock = sock  # already connected, in the node's namespace
        conn.request("GET", "/metrics", headers={"Accept": "text/plain"})
        resp = conn.getresponse()
        body = resp.read()
    except OSError as exc:
        raise ProviderError(f"the dockerd of node {node} does not serve its metrics: {exc}", temporary=True) from None
    except http.client.HTTPException as exc:
        raise ProviderError(f"the dockerd of node {node} answered its metrics badly: {exc!r}", temporary=True) from None
    finally:
        sock.close()
    if resp.status != 200:
        raise ProviderError(f"the dockerd of node {node} answered {resp.status} for its metrics", temporary=True)
    return body

"""Logs on a real Swarm cluster: the memo's pinger stack, unchanged, logging to each node's journal.

The stack file (examples/pinger-stack-memo.yml, SDP Memo 070 section 3.6) uses `image: python`
(floe's registry ships one) and the journald log driver, so every node runs its own
systemd-journald; `docker service logs` reads the replicas' lines back from the nodes' journals.
`ping 1.1.1.1` cannot reach anything (clusters have no route outside, by design): what it
prints, "Network is unreachable", is still its log. Then floe's own `floe cluster logs`, and
nothing of the journals left after the delete.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import DOCKER, FLOE, FloeServer, objects_of
from tests.e2e.test_swarm_cluster import REPO, docker, docker_env

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

MEMO_STACK = REPO / "examples/pinger-stack-memo.yml"
NODES = ("lg-master-0", "lg-node-0", "lg-node-1")


def _lines_within(proc: subprocess.Popen, want, timeout: float) -> list[str]:
    """Lines of `proc`'s stdout until `want(lines)` holds or `timeout` passes."""
    lines: list[str] = []
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while not want(lines) and time.monotonic() < deadline:
        if sel.select(timeout=0.5):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
    sel.close()
    return lines


def _journald_pids(node_dirs: list[Path]) -> dict[int, str]:
    """systemd-journald processes whose /run/log/journal is one of these nodes' journal directories."""
    journals = {}
    for d in node_dirs:
        try:
            st = os.stat(d / "journal")
        except OSError:
            continue
        journals[(st.st_dev, st.st_ino)] = d.name
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() != "systemd-journal":
                continue
            st = os.stat(f"/proc/{pid}/root/run/log/journal")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in journals:
            found[int(pid)] = journals[(st.st_dev, st.st_ino)]
    return found


def _node_processes(node_dir: Path) -> list[str]:
    """'pid ppid state comm' of every process that sees this node's journal directory (its
    mount namespace): says whether the node's journald loop is alive when a restart is late."""
    st = os.stat(node_dir / "journal")
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            seen = os.stat(f"/proc/{pid}/root/run/log/journal")
            if (seen.st_dev, seen.st_ino) != (st.st_dev, st.st_ino):
                continue
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2:].split()[:2]
        found.append(f"{pid} {ppid} {state} {comm}")
    return found


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_memo_stack_logs_through_node_journals(server: FloeServer, tmp_path: Path, request: pytest.FixtureRequest):
    server.floe("template", "create", "logs-e2e", "--coe", "swarm")
    server.floe("cluster", "create", "lg", "--template", "logs-e2e", "--node-count", "2", "--wait")
    # A failure below must not leave the cluster (and its restarting replicas) to the next tests.
    request.addfinalizer(lambda: server.floe("cluster", "delete", "lg", "--wait", check=False))
    (tag,) = {p.parent.name for p in (server.home / "nodes").glob("*/lg-master-0")}
    node_dirs = [server.home / "nodes" / tag / n for n in NODES]
    journalds = _journald_pids(node_dirs)
    assert sorted(journalds.values()) == sorted(NODES), journalds  # one journal per node
    print("journald RSS per node (kB):", [_rss_kb(p) for p in journalds])

    env = docker_env(server, "lg", tmp_path)
    docker(env, "stack", "deploy", "--compose-file", str(MEMO_STACK), "pinger-stack", "--prune")
    spec = json.loads(docker(env, "service", "inspect", "pinger-stack_pinger"))[0]["Spec"]
    assert spec["TaskTemplate"]["LogDriver"] == {"Name": "journald", "Options": {"tag": "pinger"}}
    assert spec["TaskTemplate"]["ContainerSpec"]["Image"].startswith("python:latest")

    # `docker service logs`: each replica's lines, read back by each node's dockerd from its journal.
    seen: set[str] = set()
    out = ""
    end = time.monotonic() + 120
    while time.monotonic() < end and seen != set(NODES):
        out = docker(env, "service", "logs", "pinger-stack_pinger", check=False)
        seen = {ln.split("|")[0].strip().rpartition("@")[2] for ln in out.splitlines()
                if "PING 1.1.1.1" in ln or "Network is unreachable" in ln}
        time.sleep(2)
    assert seen == set(NODES), out[-2000:]
    for d in node_dirs:
        entries = subprocess.run(["journalctl", "-D", str(d / "journal"), "--no-pager", "-q", "-o", "cat",
                                  "CONTAINER_TAG=pinger"], capture_output=True, text=True, timeout=30).stdout
        assert "PING 1.1.1.1" in entries, (d.name, entries[-500:])

    # --follow: new lines arrive as the replicas print them.
    follow = subprocess.Popen([DOCKER, "service", "logs", "--follow", "--since", "1s", "pinger-stack_pinger"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = _lines_within(follow, lambda ls: any("1.1.1.1" in ln or "unreachable" in ln for ln in ls), 60)
    finally:
        follow.kill()
        follow.wait()
    assert any("pinger-stack_pinger." in ln for ln in lines), lines

    # floe cluster logs: dockerd of one node, every node's (prefixed), the journal.
    one = server.floe("cluster", "logs", "lg", "--node", "lg-node-0", "--tail", "5").stdout.splitlines()
    assert 0 < len(one) <= 5 and all("level=" in ln for ln in one), one
    every = server.floe("cluster", "logs", "lg", "--tail", "2").stdout.splitlines()
    assert {ln.split(" | ")[0] for ln in every} == set(NODES), every
    journal = server.floe("cluster", "logs", "lg", "--daemon", "journald", "--tail", "20").stdout
    assert "pinger[" in journal and "lg-node-1 | " in journal, journal[-1000:]
    bad = server.floe("cluster", "logs", "lg", "--node", "lg-node-9", check=False)
    assert bad.returncode != 0 and "no node 'lg-node-9'" in bad.stderr
    bad = server.floe("cluster", "logs", "lg", "--daemon", "slurmd", check=False)
    assert bad.returncode != 0 and "no slurmd log" in bad.stderr and "journald" in bad.stderr

    # floe cluster logs --follow gets a new journal line; Ctrl-C ends it cleanly.
    proc = subprocess.Popen([FLOE, "cluster", "logs", "lg", "--node", "lg-master-0", "--daemon", "journald",
                             "--tail", "0", "--follow"], env=server.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        lines = _lines_within(proc, lambda ls: len(ls) >= 1, 60)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)
    assert lines and "lg-master-0" in lines[0], lines
    assert proc.returncode == 130

    # A journald that dies is started again by its node.
    victim = next(p for p, n in journalds.items() if n == "lg-node-1")
    os.kill(victim, signal.SIGKILL)
    # The node's loop waits 1 s; under a loaded full run its start took longer than 10 s once.
    end = time.monotonic() + 30
    while time.monotonic() < end and "lg-node-1" not in _journald_pids(node_dirs).values():
        time.sleep(0.2)
    said = (node_dirs[2] / "dockerd.log").read_text(errors="replace").splitlines()
    assert "lg-node-1" in _journald_pids(node_dirs).values(), (
        [ln for ln in said if "journal" in ln][-20:], _node_processes(node_dirs[2]))

    docker(env, "stack", "rm", "pinger-stack")
    last = _journald_pids(node_dirs)
    server.floe("cluster", "delete", "lg", "--wait")
    for pid in last:  # each node's journald went with its node
        comm = Path(f"/proc/{pid}/comm")
        assert not comm.exists() or comm.read_text().strip() != "systemd-journal", pid
    assert not any(d.exists() for d in node_dirs)
    objs = objects_of(server.home, tag)
    assert not any(objs.values()), objs

"""Failures with real causes: a create that cannot finish times out with the step named; a failed
update is no dead end; a 3-manager cluster; nothing leaks after any of them."""

from __future__ import annotations

import ipaddress
import os
import subprocess

import pytest

from tests.e2e.conftest import RANGE, FloeServer, objects_of
from tests.e2e.test_swarm_cluster import _tag

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

# In the raw table, before any of floe's own rules (bridged traffic passes here too: br_netfilter).
BLOCK = ["PREROUTING", "-t", "raw", "-p", "tcp", "--dport", "2377",
         "-m", "comment", "--comment", "floe-e2e-block", "-j", "DROP"]


@pytest.fixture(scope="module")
def template(server: FloeServer) -> str:
    server.floe("template", "create", "swarm-fail", "--coe", "swarm")
    return "swarm-fail"


def test_stuck_create_fails_at_create_timeout_naming_the_step(server: FloeServer, template: str):
    # A real fault: swarm's control port is dropped on every bridge, so workers can never join.
    subprocess.run(["iptables", "-w", "-I", *BLOCK], check=True)
    try:
        server.floe("cluster", "create", "stuck", "--template", template, "--node-count", "1", "--timeout", "1")
        c = server.wait_status("stuck", {"CREATE_COMPLETE", "CREATE_FAILED"}, timeout=150)
    finally:
        subprocess.run(["iptables", "-w", "-D", *BLOCK], check=True)
    assert c["status"] == "CREATE_FAILED", c
    reason = c["status_reason"]
    assert "timed out" in reason and "1 minute" in reason, reason
    assert "step swarm_" in reason, reason
    # A failed create is deleted like any other, leaving nothing behind.
    tag = _tag(server, "stuck")
    server.floe("cluster", "delete", "stuck", "--wait")
    assert not any(objects_of(server.home, tag).values())


def _fill_address_range(server: FloeServer) -> list[str]:
    """Take every free /23 of the server's range, as other clusters would (rows in its database)."""
    from sqlalchemy import select

    from floe.db.models import AddressAllocation
    from floe.db.session import Database

    db = Database(f"sqlite:///{server.home / 'floe.db'}")
    try:
        with db.session() as s:
            taken = [ipaddress.ip_network(c) for c in s.scalars(select(AddressAllocation.cidr))]
            free = [b for b in ipaddress.ip_network(RANGE).subnets(new_prefix=23)
                    if not any(b.overlaps(t) for t in taken)]
            s.add_all(AddressAllocation(cidr=str(b), purpose="node-pool", owner="e2e-filler") for b in free)
        return [str(b) for b in free]
    finally:
        db.dispose()


def _free_address_range(server: FloeServer) -> None:
    from sqlalchemy import delete

    from floe.db.models import AddressAllocation
    from floe.db.session import Database

    db = Database(f"sqlite:///{server.home / 'floe.db'}")
    try:
        with db.session() as s:
            s.execute(delete(AddressAllocation).where(AddressAllocation.owner == "e2e-filler"))
    finally:
        db.dispose()


def test_update_failed_is_not_a_dead_end(server: FloeServer, template: str):
    server.floe("cluster", "create", "upd", "--template", template, "--node-count", "1", "--wait")
    # More nodes than floe's address range could ever hold: refused at once, nothing changes.
    res = server.floe("cluster", "resize", "upd", "--node-count", "300", "--wait", check=False)
    assert res.returncode != 0
    assert "400" in res.stderr and "holds at most" in res.stderr, res.stderr
    assert server.cluster("upd")["status"] == "CREATE_COMPLETE"
    # A range that other clusters have filled: the update fails in its plan step, naming why,
    # and changes nothing on the host.
    assert _fill_address_range(server)
    try:
        res = server.floe("cluster", "resize", "upd", "--node-count", "2", "--wait", check=False)
    finally:
        _free_address_range(server)
    assert res.returncode != 0
    assert "UPDATE_FAILED" in res.stderr and "room for 0 more" in res.stderr, res.stderr
    c = server.cluster("upd")
    assert c["status"] == "UPDATE_FAILED" and "step plan" in c["status_reason"]
    assert len(c["node_addresses"]) == 1
    # From UPDATE_FAILED, a resize works ...
    server.floe("cluster", "resize", "upd", "--node-count", "2", "--wait")
    c = server.cluster("upd")
    assert c["status"] == "UPDATE_COMPLETE" and len(c["node_addresses"]) == 2
    # ... and so does a delete.
    tag = _tag(server, "upd")
    server.floe("cluster", "delete", "upd", "--wait")
    assert not any(objects_of(server.home, tag).values())


def test_three_managers_form_a_raft_quorum(server: FloeServer, template: str, tmp_path):
    from tests.e2e.test_swarm_cluster import docker_env, swarm_nodes

    server.floe("cluster", "create", "ha", "--template", template, "--master-count", "3", "--node-count", "1",
                "--wait")
    c = server.cluster("ha")
    assert c["status"] == "CREATE_COMPLETE" and len(c["master_addresses"]) == 3
    env = docker_env(server, "ha", tmp_path)
    nodes = swarm_nodes(env)
    managers = [n for n in nodes if n["ManagerStatus"]]
    assert len(nodes) == 4 and len(managers) == 3, nodes
    assert sorted(n["ManagerStatus"] for n in managers) == ["Leader", "Reachable", "Reachable"]
    # An even or zero manager count is refused up front.
    res = server.floe("cluster", "create", "bad", "--template", template, "--master-count", "2", check=False)
    assert res.returncode != 0 and "master_count" in res.stderr
    tag = _tag(server, "ha")
    server.floe("cluster", "delete", "ha", "--wait")
    assert not any(objects_of(server.home, tag).values())

"""Requests that could take the service down: counts past the address range, and a step that
keeps killing its server. Real `floe server` processes on the simulated provider (see conftest).
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
from sqlalchemy import func, select

from floe.db.models import AddressAllocation, Cluster, Node, Operation
from floe.engine.engine import MAX_INTERRUPTIONS
from tests.engine.conftest import FloeProcess

SMALL_RANGE = "10.0.0.0/16"  # holds at most 117 nodes in one cluster (ipam.max_cluster_nodes)


def _counts(server: FloeProcess) -> tuple[int, ...]:
    db = server.db()
    try:
        with db.session() as s:
            return tuple(
                s.scalar(select(func.count()).select_from(m)) for m in (Cluster, Node, Operation, AddressAllocation)
            )
    finally:
        db.dispose()


def _restart(server: FloeProcess, **env: str) -> None:
    """Start the server again; it may resume the operation, and die of it, before it answers."""
    try:
        server.start(**env)
    except RuntimeError:
        assert server.proc is not None and server.proc.returncode == -signal.SIGKILL


def _create_doomed(server: FloeProcess, name: str, template: str) -> None:
    """POST a create whose engine may take the server down before the 202 is read."""
    try:
        r = server.api("POST", "/v1/clusters", json={"name": name, "cluster_template_id": template})
        assert r.status_code == 202, r.text
    except httpx.HTTPError:
        pass


def _wait_status(server: FloeProcess, name: str, timeout: float = 60) -> dict:
    end = time.monotonic() + timeout
    while True:
        body = server.api("GET", f"/v1/clusters/{name}").json()
        if not body["status"].endswith("IN_PROGRESS"):
            return body
        assert time.monotonic() < end, f"{name} stayed {body['status']}: {body.get('status_reason')}"
        time.sleep(0.05)


def test_counts_past_the_range_are_refused_at_once_and_the_largest_that_fits_is_built(tmp_path: Path) -> None:
    server = FloeProcess(tmp_path / "home", FLOE_ADDRESS_RANGE=SMALL_RANGE)
    server.start()
    try:
        template = server.template()
        r = server.api("POST", "/v1/clusters", json={"name": "big", "cluster_template_id": template, "node_count": 116})
        assert r.status_code == 202, r.text
        assert _wait_status(server, "big")["status"] == "CREATE_COMPLETE"
        before = _counts(server)
        assert before[1] == 117

        t0 = time.monotonic()
        refused = [
            ("POST", "/v1/clusters", {"name": "huge", "cluster_template_id": template, "node_count": 500_000}),
            ("POST", "/v1/clusters", {"name": "one-more", "cluster_template_id": template, "node_count": 117}),
            ("POST", "/v1/clusters", {"name": "i64", "cluster_template_id": template, "node_count": 2**63}),
            ("POST", "/v1/clusters", {"name": "m", "cluster_template_id": template, "master_count": 10**16 + 1}),
            ("POST", "/v1/clusters/big/actions/resize", {"node_count": 10**16}),
            ("POST", "/v1/clusters/big/actions/resize", {"node_count": 117}),
            ("PATCH", "/v1/clusters/big", [{"op": "replace", "path": "/node_count", "value": 10**16}]),
            ("PATCH", "/v1/clusters/big", [{"op": "replace", "path": "/node_count", "value": "117"}]),
        ]
        for method, path, body in refused:
            r = server.api(method, path, json=body)
            assert r.status_code == 400, (path, body, r.text)
            detail = r.json()["errors"][0]["detail"]
            assert "node" in detail or "count" in detail, detail
        assert time.monotonic() - t0 < 10, "refusals must not build anything first"
        assert _counts(server) == before, "a refused request changed the database"
        assert server.api("GET", "/v1/clusters/big").json()["status"] == "CREATE_COMPLETE"

        # The API's bound is for an empty range; what is really free is the plan step's to check:
        # with the range full, a small cluster fails there, naming why, with nothing built.
        r = server.api("POST", "/v1/clusters", json={"name": "late", "cluster_template_id": template, "node_count": 2})
        assert r.status_code == 202, r.text
        late = _wait_status(server, "late")
        assert late["status"] == "CREATE_FAILED"
        assert "exhausted" in late["status_reason"] or "room for" in late["status_reason"], late["status_reason"]
        db = server.db()
        try:
            with db.session() as s:
                late_nodes = select(func.count()).select_from(Node).join(Cluster).where(Cluster.name == "late")
                assert s.scalar(late_nodes) == 0
                assert s.scalar(select(func.count()).where(AddressAllocation.owner == late["uuid"])) == 0
        finally:
            db.dispose()
        assert server.api("DELETE", "/v1/clusters/late").status_code == 204
        # Every other writer is still served.
        assert server.api("POST", "/v1/clustertemplates", json={"name": "after", "coe": "swarm"}).status_code == 201
    finally:
        server.stop()


def test_a_step_that_keeps_killing_its_server_fails_with_a_reason(tmp_path: Path) -> None:
    """FLOE_FAILPOINTS kills the server every time the create reaches `plan`: after
    MAX_INTERRUPTIONS restarts the create fails, naming the step, the server stays up, and the
    cluster deletes."""
    server = FloeProcess(tmp_path / "home")
    server.env["FLOE_FAILPOINTS"] = "create:plan:before"
    server.start()
    kills = 0
    try:
        template = server.template()
        _create_doomed(server, "poison", template)
        while True:
            try:
                server.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # still running: the guard stopped the operation
                break
            assert server.proc.returncode == -signal.SIGKILL
            kills += 1
            assert kills <= MAX_INTERRUPTIONS, "the operation was resumed past the guard"
            _restart(server)
        assert kills == MAX_INTERRUPTIONS  # each run of the step killed its server; none more
        body = _wait_status(server, "poison")
        assert body["status"] == "CREATE_FAILED"
        assert f"step plan was interrupted {MAX_INTERRUPTIONS} times" in body["status_reason"], body["status_reason"]
        assert server.api("DELETE", "/v1/clusters/poison").status_code == 204
        end = time.monotonic() + 30
        while server.api("GET", "/v1/clusters/poison").status_code != 404:
            assert time.monotonic() < end, "the delete did not finish"
            time.sleep(0.05)
        assert server.proc.poll() is None
    finally:
        server.stop()


def test_crashes_in_different_steps_do_not_add_up(tmp_path: Path) -> None:
    """One crash in each of several steps (an ordinary bad day) is resumed every time."""
    server = FloeProcess(tmp_path / "home")
    points = ["create:plan:before", "create:registry:before", "create:network:before", "create:nodes:before"]
    server.start(FLOE_FAILPOINTS=points[0])
    try:
        template = server.template()
        _create_doomed(server, "bumpy", template)
        for nxt in [*points[1:], ""]:
            assert server.wait_exit() == -signal.SIGKILL
            _restart(server, FLOE_FAILPOINTS=nxt)
        assert _wait_status(server, "bumpy")["status"] == "CREATE_COMPLETE"
        db = server.db()
        try:
            with db.session() as s:
                op = s.scalars(select(Operation).join(Cluster).where(Cluster.name == "bumpy")).one()
                assert op.interruptions == 1 and op.interrupted_step == "nodes"
        finally:
            db.dispose()
    finally:
        server.stop()

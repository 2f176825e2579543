"""Crash at every step of create, resize and delete, then a new engine resumes: the operation
finishes and the database matches the (simulated) machines.

The simulated provider and driver stand in for real machines on purpose, so that every crash
point of every pipeline can be tried in seconds; the e2e suite does the same with real nodes.
In-process, a crash is an exception no handler catches (the worker dies mid-operation, its
lease still held, nothing more written) and "restarting" builds a new Engine, which takes the
dead worker's lease over. The last test kills a real `floe server` with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from floe.coe.simulated import SimulatedDriver
from floe.db.models import Cluster, Operation
from floe.engine import failpoints
from floe.engine.engine import Engine
from floe.engine.pipelines import PIPELINES
from floe.providers.base import NodeInfo, NodeSpec
from floe.providers.simulated import SimulatedProvider
from floe.server import engine_drivers
from floe.services import certificates, clusters
from tests.engine.conftest import FloeProcess, Sim, assert_consistent, make_sim


class Crash(BaseException):  # noqa: N818 - it is not an error: it stands for the process dying
    """The process dying at this point: no handler runs and nothing more is written."""


class CrashingProvider(SimulatedProvider):
    """The simulated provider, which can die after a number of start_node or stop_node calls."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.armed: dict[str, int] = {}
        self.lock = threading.Lock()

    def _maybe_crash(self, call: str) -> None:
        with self.lock:
            if call in self.armed:
                self.armed[call] -= 1
                if self.armed[call] < 0:
                    del self.armed[call]
                    raise Crash(call)

    def start_node(self, spec: NodeSpec) -> NodeInfo:
        self._maybe_crash("start_node")
        return super().start_node(spec)

    def stop_node(self, cluster_tag: str, name: str) -> None:
        self._maybe_crash("stop_node")
        super().stop_node(cluster_tag, name)


class Crasher:
    """Arms one failpoint at a time; `restart()` waits for the crash and starts a new engine."""

    def __init__(self, sim: Sim):
        self.sim = sim
        self.point = ""
        self.crashed = threading.Event()

    def hit(self, kind: str, step: str, when: str) -> None:
        if f"{kind}:{step}:{when}" == self.point:
            self.point = ""
            self.crashed.set()
            raise Crash(f"{kind}:{step}:{when}")

    def arm(self, point: str) -> None:
        self.point = point
        self.crashed.clear()

    def restart(self, crashed: bool = True) -> None:
        old = self.sim.runtime.engine
        assert old is not None
        if crashed:
            assert self.crashed.wait(30), f"no crash at {self.point}"
        end = time.monotonic() + 30
        while old.busy():  # the dead worker's thread is gone once its finally blocks ran
            assert time.monotonic() < end
            time.sleep(0.01)
        old.stop(wait=True)
        engine = Engine(self.sim.runtime, engine_drivers(self.sim.runtime.settings))
        self.sim.runtime.engine = engine
        engine.start()


@pytest.fixture
def crashing(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Sim, Crasher]]:
    home = tmp_path / "home"
    provider = CrashingProvider(home, "10.0.0.0/24")
    sim = make_sim(home, database_url, provider=provider)
    crasher = Crasher(sim)
    monkeypatch.setattr(failpoints, "hit", crasher.hit)
    sim.runtime.engine.start()  # type: ignore[union-attr]
    yield sim, crasher
    sim.runtime.engine.stop(wait=True)  # type: ignore[union-attr]
    provider.close()
    sim.db.dispose()


def _steps(kind: str) -> list[str]:
    return [s.name for s in PIPELINES[kind](SimulatedDriver())]


def test_create_resumes_after_a_crash_at_every_step(crashing: tuple[Sim, Crasher]) -> None:
    sim, crasher = crashing
    points = [f"create:{step}:{when}" for step in _steps("create") for when in ("before", "after")]
    for i, point in enumerate(points):
        crasher.arm(point)
        sim.create(f"c{i}", workers=12)
        crasher.restart()
        sim.wait({f"c{i}"}, "CREATE_COMPLETE", timeout=60)
        assert_consistent(sim.db, sim.provider)


def test_resize_resumes_after_a_crash_at_every_step(crashing: tuple[Sim, Crasher]) -> None:
    sim, crasher = crashing
    sim.create("r", workers=6)
    sim.wait({"r"}, "CREATE_COMPLETE")
    # Grow then shrink by turns, so the node steps and remove_nodes both meet real work.
    for i, step in enumerate(_steps("update")):
        for j, when in enumerate(("before", "after")):
            target = 2 if (i + j) % 2 else 9
            crasher.arm(f"update:{step}:{when}")
            clusters.resize_cluster(sim.runtime, sim.caller, "r", target)
            crasher.restart()
            sim.wait({"r"}, "UPDATE_COMPLETE", timeout=60)
            assert_consistent(sim.db, sim.provider)
            with sim.db.session() as s:
                assert s.scalar(select(Cluster.node_count).where(Cluster.name == "r")) == target


def test_delete_resumes_after_a_crash_at_every_step(crashing: tuple[Sim, Crasher]) -> None:
    sim, crasher = crashing
    points = [f"delete:{step}:{when}" for step in _steps("delete") for when in ("before", "after")]
    names = {f"d{i}" for i in range(len(points))}
    for name in sorted(names):
        sim.create(name, workers=4)
    sim.wait(names, "CREATE_COMPLETE")
    for i, point in enumerate(points):
        if point == "delete:release:after":
            continue  # the release step's commit removes the operation itself: nothing is left to resume
        crasher.arm(point)
        clusters.delete_cluster(sim.runtime, sim.caller, f"d{i}")
        crasher.restart()
        sim.wait({f"d{i}"}, "gone", timeout=60)
        assert_consistent(sim.db, sim.provider)


def test_crash_in_the_middle_of_starting_and_stopping_nodes(crashing: tuple[Sim, Crasher]) -> None:
    """Half the nodes started (or stopped) when the process dies: the next engine finishes the rest."""
    sim, crasher = crashing
    provider = sim.provider
    assert isinstance(provider, CrashingProvider)
    provider.armed["start_node"] = 20
    sim.create("half", workers=39)
    end = time.monotonic() + 30
    while "start_node" in provider.armed:
        assert time.monotonic() < end
        time.sleep(0.01)
    crasher.restart(crashed=False)
    sim.wait({"half"}, "CREATE_COMPLETE")
    assert_consistent(sim.db, sim.provider)

    with sim.db.session() as s:
        tag = s.scalar(select(Cluster.host_tag).where(Cluster.name == "half"))
    provider.armed["stop_node"] = 15
    clusters.delete_cluster(sim.runtime, sim.caller, "half")
    while "stop_node" in provider.armed:
        assert time.monotonic() < end
        time.sleep(0.01)
    crasher.restart(crashed=False)
    sim.wait({"half"}, "gone")
    assert provider.nodes_of(tag) == set()
    assert_consistent(sim.db, sim.provider)


def test_kill_9_of_a_real_server_mid_step_and_at_a_failpoint(tmp_path: Path) -> None:
    """A real `floe server` killed with SIGKILL while it starts nodes (from outside), and by its
    own failpoint in a delete: each restart finishes the work, and the simulated machines it
    recorded in its state file match the database."""
    server = FloeProcess(tmp_path / "home", FLOE_SIM_BOOT_DELAY="0.15")
    server.env["FLOE_FAILPOINTS"] = "delete:purge:before"
    server.start()
    try:
        template = server.template()
        r = server.api("POST", "/v1/clusters", json={"name": "k", "cluster_template_id": template, "node_count": 63})
        assert r.status_code == 202, r.text
        end = time.monotonic() + 30
        while not (server.api("GET", "/v1/clusters/k").json().get("status_reason") or "").startswith("step nodes"):
            assert time.monotonic() < end, "the create never reached the nodes step"
            time.sleep(0.01)
        time.sleep(0.2)  # some nodes have booted, most have not
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGKILL)
        assert server.wait_exit() == -signal.SIGKILL
        db, provider = server.db(), server.provider()
        with db.session() as s:
            tag = s.scalar(select(Cluster.host_tag).where(Cluster.name == "k"))
        assert 0 < len(provider.nodes_of(tag)) < 64, "the kill was meant to land while nodes were booting"
        provider.close()
        db.dispose()
        server.start()
        assert server.wait_settled()["k"] == "CREATE_COMPLETE"

        assert server.api("DELETE", "/v1/clusters/k").status_code == 204
        assert server.wait_exit() == -signal.SIGKILL, "the failpoint did not fire"
        server.start(FLOE_FAILPOINTS="")
        end = time.monotonic() + 30
        while server.api("GET", "/v1/clusters/k").status_code != 404:
            assert time.monotonic() < end, "the delete did not finish after the restart"
            time.sleep(0.05)
    finally:
        server.stop()
    provider = server.provider()
    db = server.db()
    try:
        assert provider.owned_cluster_tags() == set()
        assert_consistent(db, provider)
        with db.session() as s:
            assert set(s.scalars(select(Operation.state))) == set()  # the cluster and its operations are gone
    finally:
        provider.close()
        db.dispose()


def test_ca_rotation_resumes_after_a_crash_at_every_step(crashing: tuple[Sim, Crasher]) -> None:
    """Each rotation ends with one new CA and no next CA left behind, wherever it crashed."""
    sim, crasher = crashing
    sim.create("rot", workers=3)
    sim.wait({"rot"}, "CREATE_COMPLETE")

    def ca() -> tuple[str, str | None]:
        with sim.db.session() as s:
            row = s.execute(select(Cluster.ca_cert_pem, Cluster.ca_next_cert_pem).where(Cluster.name == "rot")).one()
            return row.ca_cert_pem, row.ca_next_cert_pem

    seen = {ca()[0]}
    for step in _steps("rotate_ca"):
        for when in ("before", "after"):
            crasher.arm(f"rotate_ca:{step}:{when}")
            certificates.rotate_ca(sim.runtime, sim.caller, "rot")
            crasher.restart()
            sim.wait({"rot"}, "UPDATE_COMPLETE", timeout=60)
            assert_consistent(sim.db, sim.provider)
            current, following = ca()
            assert following is None, f"{step}:{when} left the next CA behind"
            assert current not in seen, f"{step}:{when}: the CA did not change"
            seen.add(current)


def test_nodegroup_changes_and_a_network_attach_resume_after_a_crash_at_every_step(
    crashing: tuple[Sim, Crasher],
) -> None:
    from floe.db.models import Node, NodeGroup, NodeInterface
    from floe.services import networks, nodegroups

    sim, crasher = crashing
    sim.create("g", workers=2)
    sim.wait({"g"}, "CREATE_COMPLETE")

    def group_nodes(name: str) -> tuple[str | None, int]:
        with sim.db.session() as s:
            g = s.scalars(select(NodeGroup).where(NodeGroup.name == name)).first()
            if g is None:
                return None, 0
            return g.status, len(s.scalars(select(Node).where(Node.nodegroup_id == g.id)).all())

    for i, step in enumerate(_steps("update")):
        for when in ("before", "after"):
            name = f"ng{i}{when[0]}"
            crasher.arm(f"update:{step}:{when}")
            nodegroups.create_nodegroup(sim.runtime, sim.caller, "g", nodegroups.NodeGroupSpec(name=name, node_count=2))
            crasher.restart()
            sim.wait({"g"}, "UPDATE_COMPLETE", timeout=60)
            assert_consistent(sim.db, sim.provider)
            assert group_nodes(name) == ("CREATE_COMPLETE", 2)
            crasher.arm(f"update:{step}:{when}")
            nodegroups.delete_nodegroup(sim.runtime, sim.caller, "g", name)
            crasher.restart()
            sim.wait({"g"}, "UPDATE_COMPLETE", timeout=60)
            assert_consistent(sim.db, sim.provider)
            assert group_nodes(name) == (None, 0)

    for i, step in enumerate(_steps("attach_network")):
        for when in ("before", "after"):
            net = networks.create_network(sim.runtime, sim.caller, f"net{i}{when[0]}")
            crasher.arm(f"attach_network:{step}:{when}")
            networks.attach_network(sim.runtime, sim.caller, "g", net.network.name)
            crasher.restart()
            sim.wait({"g"}, "UPDATE_COMPLETE", timeout=60)
            with sim.db.session() as s:
                nodes = s.scalars(select(Node).where(Node.state != "removing")).all()
                on_it = s.scalars(select(NodeInterface).where(NodeInterface.network_id == net.network.id)).all()
                assert len(on_it) == len(nodes) == 3

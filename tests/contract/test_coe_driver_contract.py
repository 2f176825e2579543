"""The COE-driver contract (src/floe/coe/base.py): every driver passes these.

A new driver is added to `DRIVERS` below and must pass the whole suite. The static part (names,
steps) runs for every driver; health on nodes that do not run needs no cluster, so it runs for
every driver too. A full create → health → resize down (remove_nodes) → delete runs on the
simulated driver with the real engine and database; the Swarm driver's full run needs real
nodes and is the end-to-end suite's (tests/e2e/test_swarm_cluster.py, test_recovery.py), as is
the Slurm driver's (tests/e2e/test_slurm_cluster.py, test_slurm_crash.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from floe.coe.base import NOT_RUNNING, SUPPORTED_COES, ClusterHealth, COEDriver, NodeRef
from floe.coe.simulated import SimulatedDriver
from floe.coe.slurm.driver import SlurmDriver
from floe.coe.swarm.driver import SwarmDriver
from floe.db.models import Cluster, Node
from floe.engine import pipelines
from floe.providers.simulated import SimulatedProvider
from floe.steps import Step
from tests.engine.conftest import make_sim

DRIVERS = {"swarm": SwarmDriver, "slurm": SlurmDriver, "simulated": SimulatedDriver}
# Steps the engine's own pipelines name: a driver's steps must not take these names.
ENGINE_STEPS = {"plan", "registry", "network", "nodes", "remove_nodes", "finish", "purge", "release"}

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=sorted(DRIVERS))
def driver(request) -> COEDriver:
    return DRIVERS[request.param]()


def test_names_are_coes_templates_accept(driver: COEDriver) -> None:
    assert driver.name and driver.coe_names
    assert set(driver.coe_names) <= set(SUPPORTED_COES)


@pytest.mark.parametrize("which", ["create_steps", "grow_steps"])
def test_steps_are_named_steps_that_do_not_clash(driver: COEDriver, which: str) -> None:
    steps = getattr(driver, which)()
    assert steps and all(isinstance(s, Step) for s in steps)
    names = [s.name for s in steps]
    assert len(names) == len(set(names)), f"duplicate step names: {names}"
    assert not set(names) & ENGINE_STEPS, f"steps named like the engine's: {set(names) & ENGINE_STEPS}"
    assert all(s.title and callable(s.run) for s in steps)
    assert all(len(s.name) <= 64 for s in steps)  # operations.step is a String(64)


def test_every_pipeline_builds_with_the_driver(driver: COEDriver) -> None:
    for kind, build in pipelines.PIPELINES.items():
        names = [s.name for s in build(driver)]
        assert len(names) == len(set(names)), f"{kind}: {names}"
        assert kind in pipelines.FAILED


def test_health_of_nodes_that_do_not_run_names_every_node(driver: COEDriver, tmp_path: Path) -> None:
    provider = SimulatedProvider(tmp_path, "10.0.0.0/24")
    nodes = [NodeRef(i + 1, f"c-{role}-{i}", role, i, f"10.0.1.{i + 2}", "", "running", None)
             for i, role in enumerate(("manager", "worker", "worker"))]
    report = driver.health(provider, "0badc0de", nodes)
    assert isinstance(report, ClusterHealth) and not report.healthy
    assert [h.name for h in report.nodes] == [n.name for n in nodes]
    assert all(not h.healthy and h.reason for h in report.nodes)


def test_a_full_life_on_the_simulated_driver(tmp_path: Path) -> None:
    """create → every node healthy → a dead node is named → resize down → delete, on the real engine."""
    sim = make_sim(tmp_path / "home", "")
    try:
        uuid = sim.create("contract", workers=3)
        sim.runtime.engine.run_until_idle(timeout=60)
        with sim.db.session() as s:
            c = s.scalars(select(Cluster).where(Cluster.uuid == uuid)).one()
            assert c.status == "CREATE_COMPLETE", c.status_reason
            tag = c.host_tag
            nodes = [NodeRef.of(n) for n in s.scalars(select(Node).where(Node.cluster_id == c.id))]
        driver = sim.runtime.engine.drivers[c.coe]
        report = driver.health(sim.provider, tag, nodes)
        assert report.healthy and len(report.nodes) == 4
        sim.provider.fail_node(tag, nodes[-1].name)
        report = driver.health(sim.provider, tag, nodes)
        assert not report.healthy
        assert [h.reason for h in report.nodes if not h.healthy] == [NOT_RUNNING]
        from floe.services import clusters

        clusters.resize_cluster(sim.runtime, sim.caller, uuid, node_count=1)
        sim.runtime.engine.run_until_idle(timeout=60)
        with sim.db.session() as s:
            c = s.scalars(select(Cluster).where(Cluster.uuid == uuid)).one()
            assert c.status == "UPDATE_COMPLETE", c.status_reason
            assert c.node_count == 1
        clusters.delete_cluster(sim.runtime, sim.caller, uuid)
        sim.runtime.engine.run_until_idle(timeout=60)
        assert sim.provider.nodes_of(tag) == set()
    finally:
        sim.runtime.engine.stop(wait=True)

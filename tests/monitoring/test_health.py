"""The health monitor on the simulated provider: what it writes, when it writes nothing, auto-healing.

The simulated provider stands in for machines (a node "dies" with `fail_node`); the monitor,
the engine, the services and the database are the real ones. The real provider's health
(a killed dockerd, a deleted namespace) is tested end to end in tests/e2e/test_recovery.py.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from floe.coe.base import NOT_RUNNING
from floe.db.models import Cluster, Node, Operation
from floe.monitoring.health import HealthMonitor
from floe.services import clusters
from tests.engine.conftest import Sim


@pytest.fixture
def monitor(sim: Sim):
    m = HealthMonitor(sim.runtime, sim.runtime.engine.drivers)  # type: ignore[union-attr]
    yield m
    m.stop()


def _cluster(sim: Sim, name: str) -> Cluster:
    with sim.db.session() as s:
        c = s.scalars(select(Cluster).where(Cluster.name == name)).one()
        s.expunge(c)
        return c


def _nodes(sim: Sim, name: str) -> dict[str, tuple[str, str]]:
    with sim.db.session() as s:
        rows = s.execute(
            select(Node.name, Node.health_status, Node.health_reason).join(Cluster).where(Cluster.name == name)
        ).all()
    return {r.name: (r.health_status, r.health_reason) for r in rows}


def _create(sim: Sim, name: str, workers: int, labels: dict | None = None) -> Cluster:
    spec = clusters.ClusterSpec(name=name, cluster_template_id=sim.template, node_count=workers, labels=labels)
    clusters.create_cluster(sim.runtime, sim.caller, spec)
    sim.runtime.engine.run_until_idle()  # type: ignore[union-attr]
    return _cluster(sim, name)


def test_a_healthy_round_writes_nothing_and_a_dead_node_is_named(sim: Sim, monitor: HealthMonitor) -> None:
    c = _create(sim, "h", workers=2)
    _create(sim, "other", workers=1)
    assert monitor.check_all() == 0, "a round over healthy clusters changes no row"

    sim.provider.fail_node(c.host_tag, "h-node-1")
    assert monitor.check_all() == 1  # only the cluster with the dead node
    c = _cluster(sim, "h")
    assert c.health_status == "UNHEALTHY"
    assert c.health_status_reason["h-node-1.Ready"] == f"False: {NOT_RUNNING}"
    assert c.health_status_reason["h-node-0.Ready"] == "True" and c.health_status_reason["api"] == "ok"
    assert _nodes(sim, "h")["h-node-1"] == ("UNHEALTHY", NOT_RUNNING)
    assert _nodes(sim, "h")["h-node-0"] == ("HEALTHY", "")
    assert _cluster(sim, "other").health_status == "HEALTHY"
    # No auto-healing label: the node stays down, no operation is queued, and the next round rewrites nothing.
    assert c.status == "CREATE_COMPLETE"
    assert monitor.check_all() == 0


def test_auto_healing_repairs_a_dead_node_and_says_why(sim: Sim, monitor: HealthMonitor) -> None:
    c = _create(sim, "ah", workers=2, labels={"auto_healing_enabled": "true"})
    sim.provider.fail_node(c.host_tag, "ah-node-0")
    assert monitor.check_all() == 1
    c = _cluster(sim, "ah")
    assert c.status == "UPDATE_IN_PROGRESS" and c.status_reason == "repair queued: auto-healing ah-node-0"
    # A cluster under an operation is left to it: the next round does not queue a second repair.
    assert monitor.check_all() == 0
    sim.runtime.engine.run_until_idle()  # type: ignore[union-attr]
    c = _cluster(sim, "ah")
    assert c.status == "UPDATE_COMPLETE", c.status_reason
    assert "auto-healing ah-node-0" in c.status_reason
    assert sim.provider.node_info(c.host_tag, "ah-node-0").running
    assert c.health_status == "HEALTHY" and set(_nodes(sim, "ah").values()) == {("HEALTHY", "")}
    assert monitor.check_all() == 0
    with sim.db.session() as s:
        kinds = s.scalars(select(Operation.kind).where(Operation.cluster_id == c.id).order_by(Operation.id)).all()
    assert kinds == ["create", "repair"]


def test_check_cluster_looks_at_one_cluster(sim: Sim, monitor: HealthMonitor) -> None:
    a = _create(sim, "a", workers=1)
    b = _create(sim, "b", workers=1)
    sim.provider.fail_node(a.host_tag, "a-node-0")
    sim.provider.fail_node(b.host_tag, "b-node-0")
    assert monitor.check_cluster(a.id) is True
    assert _cluster(sim, "a").health_status == "UNHEALTHY"
    assert _cluster(sim, "b").health_status == "HEALTHY", "b was not looked at"
    assert monitor.check_cluster(a.id) is False

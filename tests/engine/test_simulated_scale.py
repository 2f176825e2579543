"""The engine at scale on the simulated provider: many clusters, one big cluster, on SQLite and PostgreSQL.

The simulated provider and COE driver stand in for real machines on purpose (nodes "boot"
and "join" without a process): that is what lets one host drive 500 nodes here, and 10,000 in
bench/control_plane.py. The engine, its leases and threads, the services and the database
are the real ones, so what these tests prove is the control plane's own behaviour.
"""

from __future__ import annotations

from sqlalchemy import func, select

from floe.db.models import AddressAllocation, Cluster, Node, Operation
from floe.services import clusters
from tests.engine.conftest import Sim, assert_consistent


def test_fifty_clusters_of_ten_nodes_complete(sim: Sim) -> None:
    """50 clusters queued at once all reach CREATE_COMPLETE with 500 ready nodes and disjoint addresses."""
    names = {f"c{i:02d}" for i in range(50)}
    for name in sorted(names):
        sim.create(name, workers=9)
    sim.runtime.engine.start()  # type: ignore[union-attr]
    sim.wait(names, "CREATE_COMPLETE")
    assert_consistent(sim.db, sim.provider)
    with sim.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Node).where(Node.state == "ready")) == 500
        assert set(s.scalars(select(Operation.state))) == {"complete"}
        reasons = set(s.scalars(select(Cluster.status_reason)))
    assert reasons == {"create complete: 1 manager(s), 9 worker(s) ready"}


def test_thousand_node_cluster_grows_shrinks_and_is_deleted(sim: Sim) -> None:
    """A 1,000-node cluster: create, grow to fill its /22, shrink, delete; nothing is left behind."""
    sim.runtime.engine.start()  # type: ignore[union-attr]
    sim.create("big", workers=999)
    sim.wait({"big"}, "CREATE_COMPLETE")
    assert_consistent(sim.db, sim.provider)
    with sim.db.session() as s:
        c = s.scalars(select(Cluster).where(Cluster.name == "big")).one()
        assert c.subnet.endswith("/22") and len(c.node_addresses) == 999

    # 1,021 nodes: every host address of the /22 but the gateway's.
    clusters.resize_cluster(sim.runtime, sim.caller, "big", 1020)
    sim.wait({"big"}, "UPDATE_COMPLETE")
    assert_consistent(sim.db, sim.provider)

    clusters.resize_cluster(sim.runtime, sim.caller, "big", 200)
    sim.wait({"big"}, "UPDATE_COMPLETE")
    assert_consistent(sim.db, sim.provider)
    with sim.db.session() as s:
        workers = s.scalars(select(Node.index).where(Node.role == "worker").order_by(Node.index)).all()
    assert workers == list(range(200)), "a scale-down removes the newest workers first"

    tag = c.host_tag
    clusters.delete_cluster(sim.runtime, sim.caller, "big")
    sim.wait({"big"}, "gone")
    assert sim.provider.nodes_of(tag) == set() and tag not in sim.provider.owned_cluster_tags()
    with sim.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Node)) == 0
        assert list(s.scalars(select(AddressAllocation.owner))) == ["floe"]  # only the infra block


def test_a_cluster_larger_than_a_22_gets_a_larger_network(sim: Sim) -> None:
    """More nodes than a /22 holds: the management network grows to the smallest prefix that fits."""
    sim.runtime.engine.start()  # type: ignore[union-attr]
    sim.create("wide", workers=1500)
    sim.wait({"wide"}, "CREATE_COMPLETE")
    assert_consistent(sim.db, sim.provider)
    with sim.db.session() as s:
        assert s.scalar(select(Cluster.subnet).where(Cluster.name == "wide")).endswith("/21")

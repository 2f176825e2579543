"""The engine's side of nodegroups, project networks and GPUs, on the simulated provider.

The simulated provider stands in for machines on purpose (the e2e suite builds the same on
real nodes): what is checked here is the planning — which nodes each nodegroup gets, their
names, interfaces and GPUs — and the operations' statuses, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import select

from floe import ipam
from floe.db.models import Cluster, ClusterNetwork, Flavor, GPUAllocation, Network, Node, NodeGroup, NodeInterface
from floe.engine.operations import start_operation
from floe.engine.planning import group_node_name, group_slug
from floe.errors import InvalidInput
from floe.services import clusters
from tests.engine.conftest import Sim


@pytest.fixture
def sim(sim: Sim) -> Sim:
    sim.runtime.engine.start()  # type: ignore[union-attr]
    return sim


def _groups(sim: Sim, name: str) -> dict[str, NodeGroup]:
    with sim.db.session() as s:
        c = s.scalars(select(Cluster).where(Cluster.name == name)).one()
        return {g.name: g for g in s.scalars(select(NodeGroup).where(NodeGroup.cluster_id == c.id))}


def _nodes(sim: Sim, name: str) -> list[Node]:
    with sim.db.session() as s:
        c = s.scalars(select(Cluster).where(Cluster.name == name)).one()
        return list(s.scalars(select(Node).where(Node.cluster_id == c.id).order_by(Node.name)))


def _queue(sim: Sim, name: str, params: dict, new_group: dict | None = None) -> None:
    """What the nodegroup service does: a row for a new group, then an update operation."""
    with sim.db.session() as s:
        c = s.scalars(select(Cluster).where(Cluster.name == name)).one()
        if new_group is not None:
            g = NodeGroup(cluster_id=c.id, project_id=c.project_id, role="worker", **new_group)
            s.add(g)
            s.flush()
            params = {**params, "nodegroup": g.uuid}
        start_operation(s, c, "update", params)
    sim.runtime.wake_engine("operation")


def _network(sim: Sim, name: str) -> Network:
    with sim.db.session() as s:
        uuid = secrets.token_hex(16)
        (cidr,) = ipam.allocate(s, sim.runtime.settings.network, 24, "project-net", uuid)
        net = Network(project_id=sim.caller.project_id, name=name, cidr=str(cidr), host_tag=secrets.token_hex(4))
        s.add(net)
        s.flush()
        s.expunge(net)
        return net


def test_default_groups_then_a_group_of_its_own_grows_shrinks_and_goes(sim: Sim) -> None:
    sim.create("ng", workers=2)
    sim.wait({"ng"}, "CREATE_COMPLETE")
    groups = _groups(sim, "ng")
    assert {n: (g.role, g.node_count, g.status, g.is_default) for n, g in groups.items()} == {
        "default-master": ("master", 1, "CREATE_COMPLETE", True),
        "default-worker": ("worker", 2, "CREATE_COMPLETE", True),
    }
    assert {n.name: n.nodegroup_id for n in _nodes(sim, "ng")} == {
        "ng-master-0": groups["default-master"].id, "ng-node-0": groups["default-worker"].id,
        "ng-node-1": groups["default-worker"].id,
    }

    # A name no DNS label can hold becomes a slug; the nodes are workers of the new group.
    _queue(sim, "ng", {"node_count": 3}, {"name": "GPU nodes ✓", "node_count": 3, "flavor_id": "m1.tiny",
                                          "status": "CREATE_IN_PROGRESS"})
    sim.wait({"ng"}, "UPDATE_COMPLETE")
    groups = _groups(sim, "ng")
    gpu = groups["GPU nodes ✓"]
    assert (gpu.status, gpu.node_count) == ("CREATE_COMPLETE", 3)
    mine = [n for n in _nodes(sim, "ng") if n.nodegroup_id == gpu.id]
    assert sorted(n.name for n in mine) == [f"ng-gpu-nodes-{i}" for i in range(3)]
    assert {n.role for n in mine} == {"worker"}
    with sim.db.session() as s:
        assert s.scalars(select(Cluster.node_count).where(Cluster.name == "ng")).one() == 5

    # Resizing the group removes its newest nodes and leaves the default workers alone.
    _queue(sim, "ng", {"node_count": 1, "nodegroup": gpu.uuid})
    sim.wait({"ng"}, "UPDATE_COMPLETE")
    names = [n.name for n in _nodes(sim, "ng")]
    assert names == ["ng-gpu-nodes-0", "ng-master-0", "ng-node-0", "ng-node-1"]
    assert _groups(sim, "ng")["GPU nodes ✓"].status == "UPDATE_COMPLETE"

    # Deleting the group removes its nodes, then the group.
    with sim.db.session() as s:
        s.get(NodeGroup, gpu.id).status = "DELETE_IN_PROGRESS"
    _queue(sim, "ng", {"node_count": 0, "nodegroup": gpu.uuid, "delete_nodegroup": True})
    sim.wait({"ng"}, "UPDATE_COMPLETE")
    assert set(_groups(sim, "ng")) == {"default-master", "default-worker"}
    assert [n.name for n in _nodes(sim, "ng")] == ["ng-master-0", "ng-node-0", "ng-node-1"]


def test_resize_without_a_nodegroup_is_the_default_workers(sim: Sim) -> None:
    sim.create("dw", workers=1)
    sim.wait({"dw"}, "CREATE_COMPLETE")
    _queue(sim, "dw", {"node_count": 2}, {"name": "extra", "node_count": 2, "status": "CREATE_IN_PROGRESS"})
    sim.wait({"dw"}, "UPDATE_COMPLETE")
    clusters.resize_cluster(sim.runtime, sim.caller, "dw", 3)
    sim.wait({"dw"}, "UPDATE_COMPLETE")
    groups = _groups(sim, "dw")
    assert (groups["default-worker"].node_count, groups["extra"].node_count) == (3, 2)
    with sim.db.session() as s:
        assert s.scalars(select(Cluster.node_count).where(Cluster.name == "dw")).one() == 5


def test_a_gpu_flavor_the_host_cannot_give_fails_with_the_reason(sim: Sim) -> None:
    with sim.db.session() as s:
        s.add(Flavor(id="gpu-1", name="g1.gpu", vcpus=1, ram=1024, disk=0, gpus=1))
    sim.create("gp", workers=1)
    sim.wait({"gp"}, "CREATE_COMPLETE")
    _queue(sim, "gp", {"node_count": 2}, {"name": "gpu", "node_count": 2, "flavor_id": "g1.gpu",
                                          "status": "CREATE_IN_PROGRESS"})
    _wait_failed(sim, "gp")
    with sim.db.session() as s:
        c = s.scalars(select(Cluster).where(Cluster.name == "gp")).one()
        assert "g1.gpu asks for 1 GPU(s) per node, 2 for the new nodes" in c.status_reason
        assert "this host has 0 GPU(s)" in c.status_reason
        assert s.scalars(select(GPUAllocation)).all() == []
    group = _groups(sim, "gp")["gpu"]
    assert group.status == "CREATE_FAILED" and "GPU" in group.status_reason
    assert [n.name for n in _nodes(sim, "gp")] == ["gp-master-0", "gp-node-0"]  # nothing was built


def _wait_failed(sim: Sim, name: str, timeout: float = 60) -> None:
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not sim.busy() and sim.statuses()[name].endswith("FAILED"):
            return
        time.sleep(0.05)
    raise AssertionError(sim.statuses())


def test_networks_give_every_node_an_interface_also_when_attached_later(sim: Sim) -> None:
    a, b, c = _network(sim, "fast"), _network(sim, "data"), _network(sim, "late")
    spec = clusters.ClusterSpec(
        name="nets", cluster_template_id=sim.template, node_count=2, fixed_network="fast",
        labels={"extra_network_names": "data", "data_path_network": "data"},
    )
    clusters.create_cluster(sim.runtime, sim.caller, spec)
    sim.wait({"nets"}, "CREATE_COMPLETE")

    def interfaces() -> dict[str, dict[str, str]]:
        with sim.db.session() as s:
            rows = s.execute(
                select(Node.name, NodeInterface.ifname, NodeInterface.address, NodeInterface.network_id)
                .join(NodeInterface, NodeInterface.node_id == Node.id)
            )
            out: dict[str, dict[str, str]] = {}
            for name, ifname, address, net_id in rows:
                out.setdefault(name, {})[ifname] = (net_id, address)
            return out

    seen = interfaces()
    assert set(seen) == {"nets-master-0", "nets-node-0", "nets-node-1"}
    for ifaces in seen.values():
        assert {k: v[0] for k, v in ifaces.items()} == {"eth1": a.id, "eth2": b.id}
    for net in (a, b):
        addresses = [i[n][1] for i in seen.values() for n in i if i[n][0] == net.id]
        assert len(set(addresses)) == 3 and all(ip.startswith(net.cidr.rsplit(".", 1)[0]) for ip in addresses)

    # A network for the running cluster: every node gets eth3, and a node added later all three.
    with sim.db.session() as s:
        cl = s.scalars(select(Cluster).where(Cluster.name == "nets")).one()
        s.add(ClusterNetwork(cluster_id=cl.id, network_id=c.id, position=3))
        start_operation(s, cl, "attach_network", {"network": c.uuid})
    sim.runtime.wake_engine("operation")
    sim.wait({"nets"}, "UPDATE_COMPLETE")
    clusters.resize_cluster(sim.runtime, sim.caller, "nets", 3)
    sim.wait({"nets"}, "UPDATE_COMPLETE")
    seen = interfaces()
    assert len(seen) == 4
    for ifaces in seen.values():
        assert {k: v[0] for k, v in ifaces.items()} == {"eth1": a.id, "eth2": b.id, "eth3": c.id}


@pytest.mark.parametrize(("labels", "fixed", "error"), [
    ({}, "nope", "Network nope could not be found"),
    ({"extra_network_names": "fast, nope"}, None, "Network nope could not be found"),
    ({"data_path_network": "fast"}, None, "data_path_network=fast must name one of the cluster's networks"),
])
def test_networks_a_cluster_names_must_be_its_projects(sim: Sim, labels, fixed, error) -> None:
    _network(sim, "fast")
    spec = clusters.ClusterSpec(name="bad", cluster_template_id=sim.template, fixed_network=fixed, labels=labels)
    with pytest.raises(InvalidInput, match=error):
        clusters.create_cluster(sim.runtime, sim.caller, spec)
    assert "bad" not in sim.statuses()


def test_group_slugs_make_dns_labels() -> None:
    assert group_slug("GPU nodes ✓") == "gpu-nodes"
    assert group_slug("✓✓") == "group"
    name = group_node_name("c" * 63, group_slug("x" * 255), 10**6)
    assert len(name) <= 63 and name.endswith("-xxxxxxxxxxxxxxxx-1000000")

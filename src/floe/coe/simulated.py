"""The simulated COE driver: "init" and "join" take a configurable small delay and mark nodes ready.

It pairs with the simulated infra provider to drive floe's engine at a scale no single
machine could run for real (1,000 clusters, a cluster of 5,000 nodes). It keeps the shape
of a real driver (init on the first manager, managers joined one at a time, workers at
once, wait until Ready) so the engine's own work is the same; only the waits are made up.
Its writes are one statement per step, however many nodes a cluster has.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

from sqlalchemy import func, update

from floe.coe.base import (
    NOT_RUNNING,
    SUPPORTED_COES,
    ClusterHealth,
    COEDriver,
    DriverContext,
    NodeHealth,
    NodeRef,
    load,
)
from floe.db.models import Node
from floe.errors import PermanentError, TemporaryError
from floe.steps import Step

if TYPE_CHECKING:
    from floe.providers.base import InfraProvider


class SimulatedDriver(COEDriver):
    name = "simulated"
    coe_names = SUPPORTED_COES  # it stands in for every COE templates accept

    def __init__(self, delay: float = 0.0):
        if delay < 0:
            raise ValueError(f"delay must be >= 0, not {delay}")
        #: Seconds an init, one manager's join, all workers' join or a drain takes.
        self.delay = delay

    def create_steps(self) -> list[Step]:
        return [
            Step("sim_init", self.init, "initialise the (simulated) cluster on the first manager"),
            Step("sim_join", self.join, "join managers and workers"),
            Step("sim_ready", self.wait_ready, "wait until every node is Ready"),
        ]

    def grow_steps(self) -> list[Step]:
        return [
            Step("sim_join", self.join, "join new nodes"),
            Step("sim_ready", self.wait_ready, "wait until every node is Ready"),
        ]

    # --- steps ---------------------------------------------------------------------------
    def init(self, ctx: DriverContext) -> None:
        cluster, nodes = load(ctx)
        with ctx.read() as s:
            if (ctx.cluster(s).coe_state or {}).get("cluster_id"):
                return  # done before a crash
        first = _managers(nodes)[0]
        self._booted(ctx, cluster.tag, [first])
        self._wait(ctx)
        with ctx.session() as s:
            ctx.cluster(s).coe_state = {"cluster_id": f"sim-{uuid.uuid4().hex[:12]}", "first_manager": first.name}

    def join(self, ctx: DriverContext) -> None:
        cluster, nodes = load(ctx, ("planned", "started"))
        if not nodes:
            return
        with ctx.read() as s:
            if not (ctx.cluster(s).coe_state or {}).get("cluster_id"):
                raise PermanentError("the cluster has no state: it was never initialised")
        self._booted(ctx, cluster.tag, nodes)
        # Managers one at a time (as Raft wants), then every worker at once.
        for _ in (n for n in nodes if n.role == "manager"):
            self._wait(ctx)
        if any(n.role == "worker" for n in nodes):
            self._wait(ctx)
        with ctx.session() as s:
            s.execute(
                update(Node)
                .where(Node.cluster_id == cluster.id, Node.state.in_(("planned", "started")))
                .values(state="joined")
            )

    def wait_ready(self, ctx: DriverContext) -> None:
        cluster, _ = load(ctx, ())
        with ctx.session() as s:
            s.execute(
                update(Node)
                .where(Node.cluster_id == cluster.id, Node.state == "joined")
                .values(
                    state="ready",
                    swarm_node_id=func.coalesce(Node.swarm_node_id, "sim-" + Node.uuid),
                    health_status="HEALTHY",
                    health_reason="",
                )
            )

    def remove_nodes(self, ctx: DriverContext, nodes: list[NodeRef]) -> None:
        if nodes:
            self._wait(ctx)  # drain and leave

    # --- health ----------------------------------------------------------------------------
    def health(self, provider: InfraProvider, cluster_tag: str, nodes: list[NodeRef]) -> ClusterHealth:
        reports = []
        for n in nodes:
            info = provider.node_info(cluster_tag, n.name)
            if info is None or not info.running:
                reports.append(NodeHealth(n.name, False, NOT_RUNNING))
            else:
                reports.append(NodeHealth(n.name, True, ""))
        bad = [h for h in reports if not h.healthy]
        return ClusterHealth(not bad, reports, "; ".join(f"{h.name}: {h.reason}" for h in bad))

    # --- helpers ---------------------------------------------------------------------------
    def _wait(self, ctx: DriverContext) -> None:
        if self.delay > 0:
            time.sleep(min(self.delay, ctx.remaining()))
            ctx.check()

    @staticmethod
    def _booted(ctx: DriverContext, tag: str, nodes: list[NodeRef]) -> None:
        down = [n.name for n in nodes if not ((i := ctx.provider.node_info(tag, n.name)) and i.running)]
        if down:
            raise TemporaryError(f"{len(down)} node(s) not running yet ({', '.join(down[:5])})", delay=0.2)


def simulated_drivers(delay: float = 0.0) -> dict[str, COEDriver]:
    """The engine's driver map when floe runs on the simulated provider: every COE name → simulated."""
    driver = SimulatedDriver(delay)
    return {name: driver for name in SUPPORTED_COES}


def _managers(nodes: list[NodeRef]) -> list[NodeRef]:
    managers = sorted((n for n in nodes if n.role == "manager"), key=lambda n: n.index)
    if not managers:
        raise PermanentError("the cluster has no manager node")
    return managers
